/**
 * Build the demo into client-demo/dist: one minified ES module bundle
 * (page + client module + shared contract + socket.io-client + qrcode) and the
 * stylesheet, each under a content-hashed name (`app-<hash>.js`,
 * `styles-<hash>.css`) that `index.html` points at, so they can be cached for a
 * year while `index.html` is revalidated. Every file also gets a brotli (`.br`)
 * and a gzip (`.gz`) copy, served as they are to browsers that accept them
 * (server/http/demo.ts). No source map is written: `--dev` builds an
 * unminified bundle with an inline one, for local debugging only.
 *   node --import tsx client-demo/build.ts [--dev]
 */
import { createHash } from 'node:crypto';
import { mkdirSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { brotliCompressSync, constants, gzipSync } from 'node:zlib';
import { build } from 'esbuild';

const dev = process.argv.includes('--dev');
const here = new URL('./', import.meta.url);
const out = new URL('dist/', here);
rmSync(out, { recursive: true, force: true });
mkdirSync(out, { recursive: true });

const hashOf = (bytes: Uint8Array) => createHash('sha256').update(bytes).digest('hex').slice(0, 12);

const result = await build({
  entryPoints: [new URL('src/main.ts', here).pathname],
  bundle: true,
  format: 'esm',
  platform: 'browser',
  target: ['es2022'],
  minify: !dev,
  sourcemap: dev ? 'inline' : false,
  legalComments: 'none',
  write: false,
  logLevel: 'warning',
});
const js = result.outputFiles[0]!.contents;
const css = readFileSync(new URL('styles.css', here));
const names = { js: `app-${hashOf(js)}.js`, css: `styles-${hashOf(css)}.css` };
const html = readFileSync(new URL('index.html', here), 'utf8').replace('src="/app.js"', `src="/${names.js}"`).replace('href="/styles.css"', `href="/${names.css}"`);
if (!html.includes(names.js) || !html.includes(names.css)) throw new Error('index.html no longer references /app.js and /styles.css');

const files: [string, Uint8Array][] = [
  [names.js, js],
  [names.css, css],
  ['index.html', Buffer.from(html)],
];
for (const [name, bytes] of files) {
  writeFileSync(new URL(name, out), bytes);
  writeFileSync(new URL(`${name}.br`, out), brotliCompressSync(bytes, { params: { [constants.BROTLI_PARAM_QUALITY]: 11, [constants.BROTLI_PARAM_SIZE_HINT]: bytes.length } }));
  writeFileSync(new URL(`${name}.gz`, out), gzipSync(bytes, { level: 9 }));
}

const kib = (n: number) => `${(n / 1024).toFixed(1)} KiB`;
const br = readFileSync(new URL(`${names.js}.br`, out)).length;
console.log(`client-demo built: ${names.js} ${kib(js.length)} (brotli ${kib(br)}), ${names.css}${dev ? ' [dev: unminified, inline source map]' : ''}`);
