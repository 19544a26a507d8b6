import { spawn } from 'node:child_process';
import { mkdtempSync, readdirSync, rmSync, statSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { suite } from 'uvu';
import * as assert from 'uvu/assert';
import { DEV_KEY_FILE, loadSigningKeys } from '../../server/auth/signing-keys.ts';
import { rejects } from '../support/assert.ts';

const test = suite('auth/keys');
const root = new URL('../..', import.meta.url).pathname;
let dir: string;

test.before.each(() => {
  dir = mkdtempSync(join(tmpdir(), 'pinroom-keys-'));
});
test.after.each(() => {
  rmSync(dir, { recursive: true, force: true });
});

/** Load the development key in a separate process; resolves its kid. */
function kidInProcess(dataDir: string): Promise<string> {
  const source = `
    import { loadSigningKeys } from ${JSON.stringify(join(root, 'server/auth/signing-keys.ts'))};
    const keys = await loadSigningKeys({ signingKey: undefined, verifyKeys: [], dataDir: ${JSON.stringify(dataDir)} }, 'development');
    process.stdout.write(keys.currentKid);
  `;
  return new Promise((resolve, reject) => {
    const child = spawn(process.execPath, ['--import', 'tsx', '--input-type=module', '-e', source], { cwd: root, stdio: ['ignore', 'pipe', 'pipe'] });
    let out = '';
    let errOut = '';
    child.stdout.on('data', (c: Buffer) => (out += c.toString()));
    child.stderr.on('data', (c: Buffer) => (errOut += c.toString()));
    child.on('close', (code) => (code === 0 ? resolve(out.trim()) : reject(new Error(`exit ${code}: ${errOut}`))));
  });
}

test('several processes starting at once generate one development key and all use it', async () => {
  const dataDir = join(dir, 'nested', 'data');
  const kids = await Promise.all(Array.from({ length: 6 }, () => kidInProcess(dataDir)));
  assert.is(new Set(kids).size, 1, kids.join(' '));
  assert.equal(readdirSync(dataDir), [DEV_KEY_FILE], 'no temporary file left behind');
  assert.is(statSync(join(dataDir, DEV_KEY_FILE)).mode & 0o777, 0o600);
  // A restart reads the same key.
  const again = await loadSigningKeys({ signingKey: undefined, verifyKeys: [], dataDir }, 'development');
  assert.is(again.currentKid, kids[0]);
  assert.is(again.source, 'data-dir');
});

test('production never generates a key, and a corrupt key file is a clear start-up error', async () => {
  const err = await rejects(() => loadSigningKeys({ signingKey: undefined, verifyKeys: [], dataDir: dir }, 'production'));
  assert.match(String(err), 'AUTH_SIGNING_KEY');
  assert.equal(readdirSync(dir), []);
  const { writeFileSync } = await import('node:fs');
  writeFileSync(join(dir, DEV_KEY_FILE), '{"kty":"RSA"}');
  const corrupt = await rejects(() => loadSigningKeys({ signingKey: undefined, verifyKeys: [], dataDir: dir }, 'development'));
  assert.is((corrupt as Error).name, 'StartupError');
  assert.match(String(corrupt), DEV_KEY_FILE);
});

test('a server process with NODE_ENV=production and no key refuses to start, naming the variable', async () => {
  const child = spawn(process.execPath, ['--import', 'tsx', 'server/main.ts'], {
    cwd: root,
    env: { PATH: process.env.PATH ?? '', NODE_ENV: 'production', CORS_ORIGINS: 'https://a.example', REDIS_URL: 'redis://127.0.0.1:6379', DATABASE_URL: 'postgres://postgres@127.0.0.1:5432/pinroom_never', AUTH_DATA_DIR: dir },
    stdio: ['ignore', 'pipe', 'pipe'],
  });
  let output = '';
  child.stderr.on('data', (c: Buffer) => (output += c.toString()));
  const code = await new Promise<number | null>((resolve) => child.on('close', resolve));
  assert.is.not(code, 0);
  assert.match(output, 'AUTH_SIGNING_KEY');
  assert.equal(readdirSync(dir), [], 'no key was generated');
});

test.run();
