/**
 * Debian's nginx running `deploy/nginx.conf` for a test: the upstream
 * addresses (`pinroom-1:3000`, `pinroom-2:3000`) replaced by local ports, the
 * listen port by a spare one, and every path nginx writes (pid, logs, temp
 * folders) under a temp folder that is its prefix. Started in the foreground
 * (`daemon off`) so it stays in the test's process group; as root it runs as
 * `nobody`. tests/setup/ensure-nginx.sh installs the package (the runner calls it).
 */
import { spawn, type ChildProcess } from 'node:child_process';
import { once } from 'node:events';
import { chmodSync, chownSync, existsSync, mkdirSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { tempDirPrefix } from './leftovers.ts';
import { freePort } from './redis-server.ts';

const root = new URL('../..', import.meta.url).pathname;
const NOBODY = 65534;

export interface OwnedNginx {
  url: string;
  port: number;
  /** Everything nginx wrote to its error log so far. */
  errorLog(): string;
  stop(): Promise<void>;
}

/** The nginx binary, or undefined when the package is not installed. */
export function nginxBinary(): string | undefined {
  for (const path of ['/usr/sbin/nginx', '/usr/bin/nginx']) if (existsSync(path)) return path;
  return undefined;
}

/** `deploy/nginx.conf` with its upstreams on `upstreamPorts` (in order) and listening on `port`, writing under `prefix`. */
export function templateNginxConf(upstreamPorts: readonly number[], port: number, prefix: string): string {
  let conf = readFileSync(join(root, 'deploy/nginx.conf'), 'utf8');
  upstreamPorts.forEach((p, i) => {
    const name = `pinroom-${i + 1}:3000`;
    if (!conf.includes(name)) throw new Error(`deploy/nginx.conf names no ${name}`);
    conf = conf.replaceAll(name, `127.0.0.1:${p}`);
  });
  if (!/listen 80;/.test(conf)) throw new Error('deploy/nginx.conf has no `listen 80;`');
  conf = conf.replace('listen 80;', `listen 127.0.0.1:${port};`);
  const paths = [
    `access_log ${prefix}/access.log;`,
    ...['client_body', 'proxy', 'fastcgi', 'uwsgi', 'scgi'].map((t) => `${t}_temp_path ${prefix}/${t};`),
  ].join('\n  ');
  return conf.replace(/^http \{/m, `http {\n  ${paths}`);
}

export async function startNginx(upstreamPorts: readonly number[]): Promise<OwnedNginx> {
  const binary = nginxBinary();
  if (!binary) throw new Error('nginx is not installed (tests/setup/ensure-nginx.sh installs it)');
  const port = await freePort();
  const prefix = mkdtempSync(join(tmpdir(), `${tempDirPrefix()}nginx-`));
  for (const t of ['client_body', 'proxy', 'fastcgi', 'uwsgi', 'scgi']) mkdirSync(join(prefix, t));
  const confPath = join(prefix, 'nginx.conf');
  writeFileSync(confPath, templateNginxConf(upstreamPorts, port, prefix));
  const asRoot = process.getuid?.() === 0;
  if (asRoot) {
    // Unprivileged: the whole prefix belongs to nobody, who runs master and workers.
    chmodSync(prefix, 0o755);
    for (const t of ['', 'client_body', 'proxy', 'fastcgi', 'uwsgi', 'scgi', 'nginx.conf']) chownSync(join(prefix, t), NOBODY, NOBODY);
  }
  const errorLog = join(prefix, 'error.log');
  const child: ChildProcess = spawn(binary, ['-p', prefix, '-c', confPath, '-e', errorLog, '-g', `daemon off; pid ${prefix}/nginx.pid;`], {
    stdio: ['ignore', 'pipe', 'pipe'],
    ...(asRoot ? { uid: NOBODY, gid: NOBODY } : {}),
  });
  let output = '';
  child.stdout!.on('data', (c: Buffer) => (output += c.toString()));
  child.stderr!.on('data', (c: Buffer) => (output += c.toString()));
  const exited = once(child, 'exit');
  const readLog = () => (existsSync(errorLog) ? readFileSync(errorLog, 'utf8') : '');
  const url = `http://127.0.0.1:${port}`;
  const end = Date.now() + 15_000;
  for (;;) {
    if (child.exitCode !== null) throw new Error(`nginx exited with ${child.exitCode}:\n${output}\n${readLog()}`);
    try {
      const res = await fetch(`${url}/healthz`, { signal: AbortSignal.timeout(2000) });
      await res.body?.cancel();
      break;
    } catch {
      if (Date.now() > end) throw new Error(`nginx did not answer on ${port}:\n${output}\n${readLog()}`);
      await new Promise((r) => setTimeout(r, 100));
    }
  }
  return {
    url,
    port,
    errorLog: readLog,
    async stop() {
      if (child.exitCode === null && child.signalCode === null) {
        child.kill('SIGTERM');
        await Promise.race([exited, new Promise((r) => setTimeout(r, 5000))]);
        if (child.exitCode === null && child.signalCode === null) child.kill('SIGKILL');
      }
      rmSync(prefix, { recursive: true, force: true });
    },
  };
}
