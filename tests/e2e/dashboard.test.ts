/**
 * The Grafana dashboard (deploy/grafana/dashboards/pinroom.json) and its
 * provisioning: the JSON parses, every panel queries the provisioned
 * Prometheus, and every series it queries exists in a live server's
 * `/metrics`, down to the label values it selects, once the server has seen
 * a join, a publish and its delivery.
 */
import { readFileSync } from 'node:fs';
import { suite } from 'uvu';
import * as assert from 'uvu/assert';
import { parse as parseYaml } from 'yaml';
import { signInGuest, signUp } from '../support/auth.ts';
import { connect, nextEvent, request, type TestSocket } from '../support/client.ts';
import { createTestContext, type TestContext } from '../support/context.ts';
import { until } from '../support/faults.ts';
import { startTestServer, type TestServer } from '../support/server.ts';

const test = suite('deploy/dashboard');
const root = new URL('../..', import.meta.url);
const read = (path: string) => readFileSync(new URL(path, root), 'utf8');
const METRICS_TOKEN = 'dashboard-token-0123456789abcdef';

interface Target {
  expr: string;
  datasource: { type: string; uid: string };
}
interface Panel {
  title: string;
  type: string;
  datasource: { type: string; uid: string };
  targets: Target[];
}
const dashboard = JSON.parse(read('deploy/grafana/dashboards/pinroom.json')) as { uid: string; title: string; panels: Panel[] };
const exprs = dashboard.panels.flatMap((p) => p.targets.map((t) => t.expr));

/** Selectors of a PromQL expression: each metric name with its equality matchers (`name{a="b"}` → { name, labels: { a: 'b' } }). */
function selectors(expr: string): { name: string; labels: Record<string, string> }[] {
  const found: { name: string; labels: Record<string, string> }[] = [];
  const stripped = expr
    .replace(/\[[^\]]*\]/g, '') // range selectors
    .replace(/\b(by|without)\s*\([^)]*\)/g, ''); // grouping labels
  for (const m of stripped.matchAll(/\b([a-zA-Z_:][a-zA-Z0-9_:]*)\s*(\{[^}]*\})?/g)) {
    // A name followed by `(` is a function or an aggregation, not a metric.
    if (stripped.slice(m.index + m[0].length).trimStart().startsWith('(')) continue;
    const labels: Record<string, string> = {};
    for (const l of (m[2] ?? '').matchAll(/(\w+)\s*=\s*"([^"]*)"/g)) labels[l[1]!] = l[2]!;
    found.push({ name: m[1]!, labels });
  }
  return found;
}

let ctx: TestContext;
let server: TestServer;
const sockets: TestSocket[] = [];

test.before(async () => {
  ctx = createTestContext();
  server = await startTestServer({ ...ctx.env, METRICS_TOKEN });
});
test.after(async () => {
  for (const s of sockets) s.close();
  await server?.kill();
  await ctx.cleanup();
});

test('the dashboard JSON parses, and every panel queries the Prometheus that provisioning creates', () => {
  const datasources = (parseYaml(read('deploy/grafana/provisioning/datasources/prometheus.yaml')) as { datasources: { uid: string; type: string }[] }).datasources;
  const provider = (parseYaml(read('deploy/grafana/provisioning/dashboards/pinroom.yaml')) as { providers: { options: { path: string } }[] }).providers[0]!;
  assert.is(provider.options.path, '/var/lib/grafana/dashboards');
  assert.is(datasources.length, 1);
  const { uid, type } = datasources[0]!;
  assert.ok(dashboard.panels.length >= 6, 'panels');
  for (const panel of dashboard.panels) {
    assert.ok(panel.targets.length > 0, `${panel.title} has queries`);
    assert.equal(panel.datasource, { type, uid }, panel.title);
    for (const target of panel.targets) assert.equal(target.datasource, { type, uid }, `${panel.title}: ${target.expr}`);
  }
  // The compose profile mounts what provisioning points at.
  const compose = parseYaml(read('compose.yaml')) as { services: Record<string, { profiles?: string[]; volumes?: string[] }> };
  for (const name of ['prometheus', 'grafana']) assert.equal(compose.services[name]!.profiles, ['observability'], name);
  assert.ok(compose.services.grafana!.volumes!.includes('./deploy/grafana/dashboards:/var/lib/grafana/dashboards:ro'));
});

test('the dashboard covers connections, joins, feed entries, publish → delivery latency, archive lag and Redis/PostgreSQL errors', () => {
  const names = new Set(exprs.flatMap((e) => selectors(e).map((s) => s.name)));
  for (const name of [
    'pinroom_sockets_connected',
    'pinroom_socket_acks_total',
    'pinroom_feed_entries_total',
    'pinroom_feed_delivery_seconds_bucket',
    'pinroom_feed_archive_lag_seconds',
    'pinroom_redis_errors_total',
    'pinroom_pg_errors_total',
  ]) {
    assert.ok(names.has(name), `${name} is queried`);
  }
});

test('every series the dashboard queries exists in /metrics of a server that has seen a join, a publish and its delivery', async () => {
  const host = await signUp(server.url);
  const hostSocket = await connect(server.url, { token: host.accessToken });
  sockets.push(hostSocket);
  const created = await request(hostSocket, 'room:create', { title: 'Dashboard' });
  if (!created.ok) throw new Error(JSON.stringify(created));
  const guest = await signInGuest(server.url);
  const member = await connect(server.url, { token: guest.accessToken });
  sockets.push(member);
  const joined = await request(member, 'room:join', { pin: created.data.room.pin });
  assert.ok(joined.ok, JSON.stringify(joined));
  const roomId = created.data.room.id;
  const subscribed = await request(member, 'feed:subscribe', { roomId });
  assert.ok(subscribed.ok, JSON.stringify(subscribed));
  const delivered = nextEvent(member, 'feed:entry', (e) => e.type === 'chat.message');
  const published = await request(hostSocket, 'feed:publish', { roomId, type: 'chat.message', payload: { text: 'hello' }, clientMsgId: 'dash-1' });
  assert.ok(published.ok, JSON.stringify(published));
  await delivered;

  let text = '';
  const scrape = async () => {
    const res = await fetch(`${server.url}/metrics`, { headers: { authorization: `Bearer ${METRICS_TOKEN}` } });
    assert.is(res.status, 200);
    text = await res.text();
    return text;
  };
  const count = (line: RegExp) => Number(line.exec(text)?.[1] ?? 0);
  await until(async () => {
    await scrape();
    return count(/^pinroom_feed_delivery_seconds_count (\d+)/m) >= 1 && count(/^pinroom_feed_entries_total\{feed="room"\} (\d+)/m) >= 1;
  }, 'the publish and its delivery in /metrics');

  const lines = text.split('\n').filter((l) => l && !l.startsWith('#'));
  const missing: string[] = [];
  for (const expr of exprs) {
    for (const { name, labels } of selectors(expr)) {
      const present = lines.some((line) => {
        if (!line.startsWith(name) || (line[name.length] !== ' ' && line[name.length] !== '{')) return false;
        return Object.entries(labels).every(([k, v]) => line.includes(`${k}="${v}"`));
      });
      if (!present) missing.push(`${name}${JSON.stringify(labels)} (in ${expr})`);
    }
  }
  assert.equal(missing, []);
});

test.run();
