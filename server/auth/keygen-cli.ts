/**
 * `npm run keygen -- <dir> [--owner uid:gid]`: make sure `<dir>` holds an
 * access-token signing key (`auth-signing-key.json`, a private Ed25519 JWK,
 * mode 0600), generating it when missing and never replacing one. Point
 * `AUTH_SIGNING_KEY_FILE` at the file. Several runs at once leave exactly one
 * key. Prints the key's `kid`, never the key. compose.yaml's one-shot
 * `keygen` service runs this into a volume the nodes mount read-only.
 */
import { chown } from 'node:fs/promises';
import { join, resolve } from 'node:path';
import { StartupError } from '../errors.ts';
import { DEV_KEY_FILE, ensureDevKey } from './signing-keys.ts';

const args = process.argv.slice(2);
const ownerAt = args.indexOf('--owner');
const owner = ownerAt >= 0 ? args.splice(ownerAt, 2)[1] : undefined;
const [dir] = args;
try {
  if (!dir || args.length !== 1) throw new StartupError('usage: keygen <dir> [--owner uid:gid]');
  const ids = owner?.match(/^(\d+):(\d+)$/);
  if (owner !== undefined && !ids) throw new StartupError(`--owner ${owner}: expected uid:gid (numbers)`);
  const { jwk, created } = await ensureDevKey(dir);
  const path = resolve(join(dir, DEV_KEY_FILE));
  if (ids) await chown(path, Number(ids[1]), Number(ids[2]));
  console.log(`${created ? 'generated' : 'kept'} signing key ${jwk.kid} in ${path}`);
} catch (err) {
  console.error(`pinroom keygen: ${err instanceof Error ? err.message : String(err)}`);
  process.exit(1);
}
