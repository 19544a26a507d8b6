/**
 * Build the demo into client-demo/dist: one minified ES module bundle
 * (page + client module + shared contract + socket.io-client) and the static files.
 *   node --import tsx client-demo/build.ts
 */
import { copyFileSync, mkdirSync } from 'node:fs';
import { build } from 'esbuild';

const here = new URL('./', import.meta.url);
const out = new URL('dist/', here);
mkdirSync(out, { recursive: true });

const result = await build({
  entryPoints: [new URL('src/main.ts', here).pathname],
  outfile: new URL('app.js', out).pathname,
  bundle: true,
  format: 'esm',
  platform: 'browser',
  target: ['es2022'],
  minify: true,
  sourcemap: true,
  legalComments: 'none',
  metafile: true,
  logLevel: 'warning',
});
copyFileSync(new URL('index.html', here), new URL('index.html', out));
copyFileSync(new URL('styles.css', here), new URL('styles.css', out));

const bytes = Object.values(result.metafile.outputs).find((o) => o.entryPoint)?.bytes ?? 0;
console.log(`client-demo built: app.js ${(bytes / 1024).toFixed(1)} KiB`);
