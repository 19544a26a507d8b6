/**
 * `npm run docs`: write the pages generated from code (scripts/docs-pages.ts).
 * tests/unit/docs.test.ts fails when one of them is stale.
 */
import { readFileSync, writeFileSync } from 'node:fs';
import { GENERATED_PAGES } from './docs-pages.ts';

const root = new URL('..', import.meta.url);
for (const page of GENERATED_PAGES) {
  const url = new URL(page.path, root);
  let current = '';
  try {
    current = readFileSync(url, 'utf8');
  } catch {
    // a page written whole need not exist yet
  }
  const next = page.render(current);
  if (next !== current) {
    writeFileSync(url, next);
    console.log(`wrote ${page.path}`);
  } else {
    console.log(`${page.path} is current`);
  }
}
