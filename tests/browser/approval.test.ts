/**
 * Approval mode in the demo, in a real Chromium against a real server: the
 * host creates a room that admits each new member, a player waits on the
 * waiting screen until the host clicks Admit, another is turned away with
 * Deny. Screenshots land in tests/artifacts/.
 */
import { suite } from 'uvu';
import * as assert from 'uvu/assert';
import type { Browser, BrowserContext, Page } from 'playwright-core';
import { accessibleState, launchBrowser, screenshot } from '../support/browser.ts';
import { createTestContext, type TestContext } from '../support/context.ts';
import { startTestServer, type TestServer } from '../support/server.ts';

const test = suite('client-demo approval mode in chromium');

let ctx: TestContext;
let server: TestServer;
let browser: Browser;
const contexts: BrowserContext[] = [];
let host: Page;
let pin = '';

async function newPage(): Promise<Page> {
  const context = await browser.newContext({ viewport: { width: 1100, height: 780 } });
  contexts.push(context);
  const page = await context.newPage();
  page.on('pageerror', (err) => console.error(`page error: ${err.message}`));
  await page.goto(server.url);
  return page;
}

/** Enter the PIN and a nickname; the page then shows the waiting screen. */
async function askToJoin(page: Page, nickname: string): Promise<void> {
  await page.fill('#pin-input', pin);
  await page.press('#pin-input', 'Enter');
  await page.waitForSelector('#screen-nickname:not([hidden])');
  await page.fill('#nick-input', nickname);
  await page.press('#nick-input', 'Enter');
  await page.waitForSelector('#screen-waiting:not([hidden])', { timeout: 15_000 });
}

/** The names in the host's waiting list. */
const waitingNames = (page: Page) => page.$$eval('#waiting-list .name', (els) => els.map((el) => el.textContent ?? ''));

test.before(async () => {
  ctx = createTestContext();
  server = await startTestServer(ctx.env);
  browser = await launchBrowser();
});

test.after(async () => {
  for (const context of contexts) await context.close().catch(() => undefined);
  await browser?.close();
  await server?.stop();
  await ctx.cleanup();
});

test('a host creates a room that admits each new member', async () => {
  host = await newPage();
  await host.click('#go-host');
  await host.check('input[name=mode][value=register]');
  await host.fill('#auth-username', `host_${ctx.id}`);
  await host.fill('#auth-password', 'correct horse battery');
  await host.click('#auth-form button[type=submit]');
  await host.waitForSelector('#screen-create:not([hidden])');
  await host.fill('#create-title-input', 'Guarded room');
  await host.check('#create-approval');
  await host.click('#create-form button[type=submit]');
  await host.waitForSelector('#screen-room:not([hidden])');
  pin = (await host.textContent('#room-pin'))!.replace(/\s/g, '');
  assert.match(pin, /^\d{6}$/);
  assert.ok(await host.isVisible('#waiting-panel'), 'the waiting list is shown, empty');
  assert.is(await host.getAttribute('#btn-approval', 'aria-pressed'), 'true');
});

test("the host's waiting-room switch keeps one label and says on or off only as its pressed state", async () => {
  const seen = async () => ({ text: (await host.textContent('#btn-approval'))?.trim(), ...(await accessibleState(host, '#btn-approval')) });
  assert.equal(await seen(), { text: 'Waiting room', name: 'Waiting room', pressed: 'true' });

  await host.click('#btn-approval');
  await host.waitForSelector('#btn-approval[aria-pressed="false"]', { timeout: 15_000 });
  assert.equal(await seen(), { text: 'Waiting room', name: 'Waiting room', pressed: 'false' }, 'switched off: same label, only the pressed state changed');

  await host.click('#btn-approval');
  await host.waitForSelector('#btn-approval[aria-pressed="true"]', { timeout: 15_000 });
  assert.equal(await seen(), { text: 'Waiting room', name: 'Waiting room', pressed: 'true' }, 'switched back on for the tests below');
});

test('a player waits on the waiting screen until the host admits them, then is in the room', async () => {
  const ada = await newPage();
  await askToJoin(ada, 'Ada');
  await host.waitForFunction(() => [...document.querySelectorAll('#waiting-list .name')].some((el) => el.textContent === 'Ada'), undefined, { timeout: 15_000 });
  assert.equal(await waitingNames(host), ['Ada']);
  assert.is(await host.textContent('#waiting-count'), '1');
  assert.ok(await ada.isVisible('#screen-waiting'), 'still waiting: nothing happens before the host decides');
  await screenshot(ada, 'approval-01-player-waiting');
  await screenshot(host, 'approval-01-host-waiting-list');

  await host.click('#waiting-list button[aria-label="Admit Ada"]');
  await ada.waitForSelector('#screen-room:not([hidden])', { timeout: 15_000 });
  await host.waitForFunction(() => [...document.querySelectorAll('#member-list li.online .name')].some((el) => (el.textContent ?? '').startsWith('Ada')), undefined, { timeout: 15_000 });
  await host.waitForFunction(() => document.querySelectorAll('#waiting-list li').length === 0);
  await screenshot(ada, 'approval-02-player-admitted');
});

test('a player the host denies is told so and is not in the room', async () => {
  const eve = await newPage();
  await askToJoin(eve, 'Eve');
  await host.waitForFunction(() => [...document.querySelectorAll('#waiting-list .name')].some((el) => el.textContent === 'Eve'), undefined, { timeout: 15_000 });
  await host.click('#waiting-list button[aria-label="Deny Eve"]');
  await eve.waitForSelector('#screen-gone:not([hidden])', { timeout: 15_000 });
  assert.match((await eve.textContent('#gone-title'))!, 'did not let you in');
  const names = await host.$$eval('#member-list .name', (els) => els.map((el) => el.textContent ?? ''));
  assert.ok(!names.some((n) => n.startsWith('Eve')), names.join(','));
  await screenshot(eve, 'approval-03-player-denied');
});

test.run();
