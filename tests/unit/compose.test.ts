/**
 * compose.yaml cannot run here (no Docker), so its wiring is checked by
 * reading it: `docker compose up` alone must bring a working stack, with the
 * signing key generated into a volume and read through AUTH_SIGNING_KEY_FILE.
 */
import { readFileSync } from 'node:fs';
import { suite } from 'uvu';
import * as assert from 'uvu/assert';
import { parse } from 'yaml';
import { loadConfig, VARIABLES } from '../../server/config.ts';

const test = suite('deploy/compose');
const root = new URL('../..', import.meta.url);

interface Service {
  image?: string;
  build?: string;
  user?: string;
  command?: string[] | string;
  profiles?: string[];
  environment?: Record<string, string>;
  volumes?: string[];
  depends_on?: Record<string, { condition: string; required?: boolean }>;
}
const compose = parse(readFileSync(new URL('compose.yaml', root), 'utf8'), { merge: true }) as { services: Record<string, Service>; volumes: Record<string, unknown> };
const { services } = compose;
const nodes = ['pinroom-1', 'pinroom-2'] as const;
const defaultServices = Object.entries(services).filter(([, s]) => !s.profiles?.length).map(([name]) => name);

test('the default stack needs no .env: no node reads a variable that compose takes from the environment without a default', () => {
  for (const name of nodes) {
    for (const [key, value] of Object.entries(services[name]!.environment ?? {})) {
      assert.not.match(String(value), /\$\{[A-Z_]+\}/, `${name} ${key}: \${VAR} without a default needs a .env`);
      assert.not.match(String(value), /\$\{[A-Z_]+:\?/, `${name} ${key}: \${VAR:?} fails without a .env`);
    }
  }
});

test('a one-shot keygen service writes the signing key into a volume that every node mounts read-only and names in AUTH_SIGNING_KEY_FILE', () => {
  const keygen = services.keygen!;
  assert.ok(defaultServices.includes('keygen'), 'keygen runs with a plain `docker compose up`');
  const command = ([] as string[]).concat(keygen.command ?? []);
  assert.ok(command.includes('server/auth/keygen-cli.ts'), 'it runs the keygen command');
  const [volume, mountPoint] = keygen.volumes![0]!.split(':') as [string, string];
  assert.ok(volume in compose.volumes, `${volume} is a named volume`);
  assert.is(command[command.indexOf('server/auth/keygen-cli.ts') + 1], mountPoint, 'it writes into the mounted volume');
  const owner = command[command.indexOf('--owner') + 1];
  assert.is(owner, '1000:1000', 'the key file is handed to the image\'s node user');
  for (const name of nodes) {
    const node = services[name]!;
    assert.is(node.depends_on?.keygen?.condition, 'service_completed_successfully', `${name} starts after the key exists`);
    assert.ok(node.volumes?.includes(`${volume}:${mountPoint}:ro`), `${name} mounts the key volume read-only`);
    const file = node.environment!.AUTH_SIGNING_KEY_FILE!;
    assert.ok(file.startsWith(`${mountPoint}/`), `${name}'s AUTH_SIGNING_KEY_FILE is in the volume`);
    assert.is(file, `${mountPoint}/auth-signing-key.json`, 'the file name keygen writes');
    assert.not.ok('AUTH_SIGNING_KEY' in node.environment!, `${name} does not also set AUTH_SIGNING_KEY (both set are refused)`);
  }
});

test('the nodes\' environment is a valid production config once the key file is there', () => {
  for (const name of nodes) {
    const env = Object.fromEntries(Object.entries(services[name]!.environment!).map(([k, v]) => [k, String(v).replace(/\$\{[A-Z_]+:-([^}]*)\}/g, '$1')]));
    for (const key of Object.keys(env)) assert.ok(key in VARIABLES, `${name}: ${key} is a variable pinroom reads`);
    const jwk = JSON.stringify({ kty: 'OKP', crv: 'Ed25519', x: '11qYAYKxCrfVS_7TyWQHOg7hcvPapiMlrwIaaPcHURo', d: 'nWGxne_9WmC6hEr0kuwsxERJxWl7MmkZcDusAxyuf2A' });
    const config = loadConfig(env, () => jwk);
    assert.is(config.env, 'production');
    assert.ok(config.auth.signingKey);
  }
});

test('the redis-cluster profile starts three cluster-enabled masters and a one-shot that joins them, which the nodes wait for only when it is enabled', () => {
  const members = Object.entries(services).filter(([, s]) => s.profiles?.includes('redis-cluster') && ([] as string[]).concat(s.command ?? []).includes('--cluster-enabled'));
  assert.is(members.length, 3);
  const init = services['redis-cluster-init']!;
  assert.ok(init.profiles?.includes('redis-cluster'));
  assert.match(([] as string[]).concat(init.command ?? []).join(' '), /redis-cli --cluster create/);
  for (const [name] of members) assert.is(init.depends_on?.[name]?.condition, 'service_healthy');
  for (const name of nodes) {
    const dep = services[name]!.depends_on?.['redis-cluster-init'];
    assert.equal(dep, { condition: 'service_completed_successfully', required: false });
    assert.match(services[name]!.environment!.REDIS_CLUSTER_NODES!, /^\$\{PINROOM_REDIS_CLUSTER_NODES:-\}$/);
  }
});

test.run();
