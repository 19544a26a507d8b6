/**
 * How the demo's files go over HTTP: pre-compressed (brotli or gzip) when the
 * browser accepts it, a long cache on content-hashed names, `index.html`
 * revalidated, and no source map.
 */
import { get } from 'node:http';
import { readdirSync, rmSync, writeFileSync } from 'node:fs';
import { brotliDecompressSync, gunzipSync } from 'node:zlib';
import { suite } from 'uvu';
import * as assert from 'uvu/assert';
import { createTestContext, type TestContext } from '../support/context.ts';
import { startTestServer, type TestServer } from '../support/server.ts';

const test = suite('demo/delivery');
const DIST = new URL('../../client-demo/dist/', import.meta.url).pathname;
/** A source map put in the folder before the server starts (the build writes none). */
const STRAY_MAP = `stray-${process.pid}.js.map`;
let ctx: TestContext;
let server: TestServer;

interface Raw {
  status: number;
  headers: Record<string, string | string[] | undefined>;
  body: Buffer;
}

/** A GET with exactly these headers, the body as sent (not decompressed). */
function rawGet(path: string, headers: Record<string, string> = {}): Promise<Raw> {
  return new Promise((resolve, reject) => {
    get(`${server.url}${path}`, { headers }, (res) => {
      const chunks: Buffer[] = [];
      res.on('data', (c: Buffer) => chunks.push(c));
      res.on('end', () => resolve({ status: res.statusCode ?? 0, headers: res.headers, body: Buffer.concat(chunks) }));
      res.on('error', reject);
    }).on('error', reject);
  });
}

function decode(res: Raw): string {
  const encoding = res.headers['content-encoding'];
  if (encoding === 'br') return brotliDecompressSync(res.body).toString();
  if (encoding === 'gzip') return gunzipSync(res.body).toString();
  return res.body.toString();
}

let appPath = '';
let cssPath = '';

test.before(async () => {
  ctx = createTestContext();
  writeFileSync(`${DIST}${STRAY_MAP}`, '{"version":3}');
  server = await startTestServer(ctx.env);
  const html = decode(await rawGet('/'));
  appPath = /src="(\/app-[0-9a-f]{12}\.js)"/.exec(html)?.[1] ?? '';
  cssPath = /href="(\/styles-[0-9a-f]{12}\.css)"/.exec(html)?.[1] ?? '';
});
test.after(async () => {
  rmSync(`${DIST}${STRAY_MAP}`, { force: true });
  await server?.stop();
  await ctx.cleanup();
});

test('index.html points at content-hashed app and stylesheet, and is revalidated on every use', async () => {
  assert.ok(appPath, 'index.html names app-<hash>.js');
  assert.ok(cssPath, 'index.html names styles-<hash>.css');
  const res = await rawGet('/', { 'accept-encoding': 'gzip' });
  assert.is(res.status, 200);
  assert.is(res.headers['cache-control'], 'no-cache');
  assert.is(res.headers['content-encoding'], 'gzip');
  assert.match(decode(res), '<title>pinroom</title>');
});

test('app.js comes back brotli when accepted, gzip when only that is, plain otherwise; the same code each time, cached for a year', async () => {
  const plain = await rawGet(appPath);
  assert.is(plain.status, 200);
  assert.is(plain.headers['content-encoding'], undefined);
  const br = await rawGet(appPath, { 'accept-encoding': 'gzip, deflate, br' });
  const gz = await rawGet(appPath, { 'accept-encoding': 'gzip' });
  assert.is(br.headers['content-encoding'], 'br');
  assert.is(gz.headers['content-encoding'], 'gzip');
  assert.ok(br.body.length < plain.body.length / 2, `brotli ${br.body.length} bytes vs ${plain.body.length}`);
  assert.ok(gz.body.length < plain.body.length / 2, `gzip ${gz.body.length} bytes vs ${plain.body.length}`);
  assert.is(decode(br), plain.body.toString());
  assert.is(decode(gz), plain.body.toString());
  for (const res of [plain, br, gz]) {
    assert.is(res.headers['cache-control'], 'public, max-age=31536000, immutable');
    assert.match(String(res.headers.vary), /accept-encoding/i);
    assert.match(String(res.headers['content-type']), 'javascript');
  }
  const css = await rawGet(cssPath, { 'accept-encoding': 'br' });
  assert.is(css.headers['content-encoding'], 'br');
  assert.is(css.headers['cache-control'], 'public, max-age=31536000, immutable');
});

test('no source map is built, referenced or served', async () => {
  assert.equal(
    readdirSync(DIST).filter((f) => f.endsWith('.map') && f !== STRAY_MAP),
    [],
  );
  assert.not.match((await rawGet(appPath)).body.toString(), 'sourceMappingURL');
  for (const path of [`${appPath}.map`, '/app.js.map']) assert.is((await rawGet(path)).status, 404, path);
  // Not even a map left in the folder when the server started.
  assert.is((await rawGet(`/${STRAY_MAP}`)).status, 404);
});

test.run();
