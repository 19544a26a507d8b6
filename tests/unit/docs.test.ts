import { existsSync, readdirSync, readFileSync } from 'node:fs';
import { suite } from 'uvu';
import * as assert from 'uvu/assert';
import { BENCH_TABLE, GENERATED_PAGES, textBetween } from '../../scripts/docs-pages.ts';
import { VARIABLES } from '../../server/config.ts';
import { ERROR_CODES, ERRORS } from '../../shared/errors.ts';

const test = suite('docs');
const root = new URL('../..', import.meta.url);
const read = (path: string) => readFileSync(new URL(path, root), 'utf8');

/** Every Markdown page of the repository's own docs: README.md, docs/, bench/README.md. */
const pages = ['README.md', 'bench/README.md', ...readdirSync(new URL('docs/', root)).filter((n) => n.endsWith('.md')).map((n) => `docs/${n}`)];

/** GitHub's anchor of a heading: lower case, punctuation dropped, spaces to hyphens. */
const slug = (heading: string) =>
  heading
    .trim()
    .toLowerCase()
    .replace(/[^\p{L}\p{N} _-]/gu, '')
    .replaceAll(' ', '-');

function anchorsOf(markdown: string): Set<string> {
  const anchors = new Set<string>();
  const seen = new Map<string, number>();
  for (const line of markdown.replace(/```[\s\S]*?```/g, '').split('\n')) {
    const match = /^#{1,6} (.+)$/.exec(line);
    if (!match) continue;
    const base = slug(match[1]!);
    const n = seen.get(base) ?? 0;
    seen.set(base, n + 1);
    anchors.add(n === 0 ? base : `${base}-${n}`);
  }
  return anchors;
}

test('docs/configuration.md and the error table of docs/protocol.md are what npm run docs writes', () => {
  for (const page of GENERATED_PAGES) {
    const current = read(page.path);
    assert.ok(current === page.render(current), `${page.path} is stale: run npm run docs`);
  }
});

test('bench/README.md holds a benchmark table between the markers the harness writes it to', () => {
  assert.match(textBetween(read('bench/README.md'), BENCH_TABLE), /^Machine: .*\n[\s\S]*\| Scenario \| Measure \| pinroom \|/);
});

test('docs/configuration.md lists every setting the server reads', () => {
  const page = read('docs/configuration.md');
  for (const name of Object.keys(VARIABLES)) assert.ok(page.includes(`| \`${name}\` |`), `${name} missing from docs/configuration.md`);
});

test('docs/protocol.md gives every error code its HTTP status and retryability from the shared table', () => {
  const page = read('docs/protocol.md');
  for (const code of ERROR_CODES) {
    const facts = ERRORS[code];
    assert.ok(page.includes(`| \`${code}\` | ${facts.http} | ${facts.retryable ? 'yes' : 'no'} |`), `${code} missing or different in docs/protocol.md`);
  }
});

test('every relative link in README.md, docs/ and bench/README.md resolves to a file and heading that exist', () => {
  const broken: string[] = [];
  for (const page of pages) {
    const text = read(page).replace(/```[\s\S]*?```/g, '');
    for (const match of text.matchAll(/\]\(([^)\s]+)\)/g)) {
      const target = match[1]!;
      if (/^[a-z]+:/i.test(target)) continue;
      const [path, anchor] = target.split('#') as [string, string | undefined];
      const file = path === '' ? new URL(page, root) : new URL(path, new URL(page, root));
      if (!existsSync(file)) {
        broken.push(`${page}: ${target} (no such file)`);
        continue;
      }
      if (anchor && file.pathname.endsWith('.md') && !anchorsOf(readFileSync(file, 'utf8')).has(anchor)) broken.push(`${page}: ${target} (no such heading)`);
    }
  }
  assert.equal(broken, []);
});

test.run();
