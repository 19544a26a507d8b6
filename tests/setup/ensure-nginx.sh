#!/usr/bin/env bash
# The load-balancer test runs Debian's nginx (unprivileged, its own prefix under
# a temp folder) in front of pinroom nodes. Install the package when it is missing.
set -euo pipefail
if command -v nginx >/dev/null 2>&1 || [ -x /usr/sbin/nginx ]; then
  exit 0
fi
if [ "$(id -u)" != "0" ]; then
  echo "nginx is missing; install it with: sudo apt-get install -y nginx-light" >&2
  exit 1
fi
echo "installing nginx (Debian package)"
export DEBIAN_FRONTEND=noninteractive
apt-get update -qq
# nginx-light has the upstream hash and map modules the config uses; the test
# starts its own nginx, so the package's service is not needed (and in a
# container policy-rc.d keeps it from starting).
apt-get install -y -qq nginx-light >/dev/null
command -v nginx || ls /usr/sbin/nginx
