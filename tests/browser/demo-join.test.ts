/**
 * Joining by PIN in the demo, in a real Chromium against a real server: PINs
 * as people type and paste them, a message for each wrong input next to its
 * field, nicknames unique in the room, one guest per browser, and a locked
 * room said before any nickname is asked for.
 */
import { suite } from 'uvu';
import * as assert from 'uvu/assert';
import type { Browser, BrowserContext, Page } from 'playwright-core';
import type { RoomView } from '../../shared/schemas.ts';
import { signUp } from '../support/auth.ts';
import { launchBrowser, screenshot } from '../support/browser.ts';
import { connect, request, type TestSocket } from '../support/client.ts';
import { createTestContext, type TestContext } from '../support/context.ts';
import { startTestServer, type TestServer } from '../support/server.ts';

const test = suite('client-demo join flow');

let ctx: TestContext;
let server: TestServer;
let browser: Browser;
const contexts: BrowserContext[] = [];
let hostSocket: TestSocket;
let room: RoomView;

async function newPage(): Promise<Page> {
  const context = await browser.newContext({ viewport: { width: 1000, height: 760 } });
  contexts.push(context);
  const page = await context.newPage();
  page.on('pageerror', (err) => console.error(`page error: ${err.message}`));
  await page.goto(server.url);
  return page;
}

/** The message shown for a field, checking it is tied to the field, marked invalid and focused. */
async function fieldError(page: Page, field: string): Promise<string> {
  await page.waitForFunction((id) => document.getElementById(id)?.getAttribute('aria-invalid') === 'true', field, { timeout: 15_000 });
  const state = await page.$eval(`#${field}`, (el) => {
    const describedBy = el.getAttribute('aria-describedby') ?? '';
    return { text: document.getElementById(describedBy)?.textContent ?? '', describedBy, focused: document.activeElement === el };
  });
  assert.ok(state.describedBy !== '', `${field} has aria-describedby`);
  assert.ok(state.focused, `focus is on ${field}`);
  return state.text;
}

/** Id of the user this page is signed in as (null when none). */
function userIdOf(page: Page): Promise<string | null> {
  return page.evaluate(() => (JSON.parse(localStorage.getItem('pinroom.session') ?? 'null') as { user: { id: string } } | null)?.user.id ?? null);
}

async function enterPin(page: Page, typed: string): Promise<void> {
  await page.fill('#pin-input', typed);
  await page.press('#pin-input', 'Enter');
}

async function memberNames(): Promise<string[]> {
  const ack = await request(hostSocket, 'room:members', { roomId: room.id });
  if (!ack.ok) throw new Error(JSON.stringify(ack.error));
  return ack.data.members.map((m) => m.name);
}

test.before(async () => {
  ctx = createTestContext();
  server = await startTestServer({ ...ctx.env, AUTH_RATE_GUEST_IP: '1000/60', AUTH_RATE_REGISTER_IP: '1000/60' });
  browser = await launchBrowser();
  const host = await signUp(server.url, { displayName: 'Quiz Host' });
  hostSocket = await connect(server.url, { token: host.accessToken });
  const created = await request(hostSocket, 'room:create', { title: 'Join flow' });
  if (!created.ok) throw new Error(JSON.stringify(created.error));
  room = created.data.room;
});

test.after(async () => {
  hostSocket?.close();
  for (const context of contexts) await context.close().catch(() => undefined);
  await browser?.close();
  await server?.stop();
  await ctx.cleanup();
});

test('a PIN typed with spaces or dashes, as the host screen shows it, leads to the nickname screen', async () => {
  for (const typed of [`${room.pin.slice(0, 3)} ${room.pin.slice(3)}`, ` ${room.pin.slice(0, 3)}-${room.pin.slice(3)} `]) {
    const page = await newPage();
    await enterPin(page, typed);
    await page.waitForSelector('#screen-nickname:not([hidden])');
    assert.is(await page.textContent('#nick-room-title'), 'Join flow');
  }
});

test('a PIN pasted from the clipboard with spaces and a line break is taken as its digits', async () => {
  const page = await newPage();
  await contexts[contexts.length - 1]!.grantPermissions(['clipboard-read', 'clipboard-write'], { origin: server.url });
  await page.evaluate((text) => navigator.clipboard.writeText(text), `${room.pin.slice(0, 3)} ${room.pin.slice(3)}\n`);
  await page.focus('#pin-input');
  await page.keyboard.press('Control+V');
  await page.waitForFunction(() => (document.getElementById('pin-input') as HTMLInputElement).value.replace(/\D/g, '').length >= 6);
  await page.press('#pin-input', 'Enter');
  await page.waitForSelector('#screen-nickname:not([hidden])');
  assert.is(await page.inputValue('#pin-input'), room.pin);
});

test('each wrong input is told in its own words next to its field, with the focus on the first one', async () => {
  const page = await newPage();
  await enterPin(page, '');
  assert.match(await fieldError(page, 'pin-input'), 'Enter the PIN');
  await enterPin(page, '12ab34');
  assert.match(await fieldError(page, 'pin-input'), 'digits only');
  await enterPin(page, '12');
  assert.match(await fieldError(page, 'pin-input'), '3 to 10 digits');
  await enterPin(page, room.pin);
  await page.waitForSelector('#screen-nickname:not([hidden])');
  assert.is(await page.getAttribute('#pin-input', 'aria-invalid'), null, 'a good PIN clears the error');

  await page.fill('#nick-input', '   ');
  await page.press('#nick-input', 'Enter');
  assert.match(await fieldError(page, 'nick-input'), 'Enter a nickname');
  await screenshot(page, 'join-01-nickname-error');

  await page.click('#screen-nickname button.back');
  await page.click('#go-host');
  await page.check('input[name=mode][value=register]');
  await page.fill('#auth-username', 'a');
  await page.fill('#auth-password', 'short');
  await page.click('#auth-form button[type=submit]');
  assert.match(await fieldError(page, 'auth-username'), '3 to 32 letters');
  assert.match(await page.textContent('#auth-password-error') ?? '', 'this one has 5');
  assert.is(await page.getAttribute('#auth-password', 'aria-invalid'), 'true');
  await screenshot(page, 'join-02-sign-up-errors');

  await page.fill('#auth-username', `host_${ctx.id}_v`);
  await page.fill('#auth-password', 'correct horse battery');
  await page.click('#auth-form button[type=submit]');
  await page.waitForSelector('#screen-create:not([hidden])');
  await page.fill('#create-title-input', ' ');
  await page.fill('#create-max', '1');
  await page.click('#create-form button[type=submit]');
  assert.match(await fieldError(page, 'create-title-input'), 'Give the room a title');
  assert.match(await page.textContent('#create-max-error') ?? '', '2 to 10,000');
});

test('a nickname someone in the room already uses is refused; the player picks another and stays one guest', async () => {
  const ada = await newPage();
  await enterPin(ada, room.pin);
  await ada.waitForSelector('#screen-nickname:not([hidden])');
  await ada.fill('#nick-input', 'Ada');
  await ada.press('#nick-input', 'Enter');
  await ada.waitForSelector('#screen-room:not([hidden])');

  const other = await newPage();
  await enterPin(other, room.pin);
  await other.waitForSelector('#screen-nickname:not([hidden])');
  await other.fill('#nick-input', ' ada ');
  await other.press('#nick-input', 'Enter');
  assert.match(await fieldError(other, 'nick-input'), 'already uses that nickname');
  const first = await userIdOf(other);
  assert.ok(first, 'a guest was made for the first try');
  await screenshot(other, 'join-03-nickname-taken');

  await other.fill('#nick-input', 'Ada L');
  await other.press('#nick-input', 'Enter');
  await other.waitForSelector('#screen-room:not([hidden])');
  assert.is(await userIdOf(other), first, 'the second try is the same guest');
  assert.match((await other.textContent('#who-name'))!, 'Ada L');
  await other.waitForFunction(() => [...document.querySelectorAll('#member-list .name')].some((el) => el.textContent === 'Ada L (you)'));
  const names = await memberNames();
  assert.equal(names.filter((n) => n.toLowerCase().startsWith('ada')).sort(), ['Ada', 'Ada L']);
});

test('Join pressed twice in a row makes one guest and one member', async () => {
  const page = await newPage();
  await enterPin(page, room.pin);
  await page.waitForSelector('#screen-nickname:not([hidden])');
  await page.fill('#nick-input', 'Twice');
  await page.$eval('#nick-form', (form) => {
    (form as HTMLFormElement).requestSubmit();
    (form as HTMLFormElement).requestSubmit();
  });
  await page.click('#nick-form button[type=submit]').catch(() => undefined);
  await page.waitForSelector('#screen-room:not([hidden])');
  const guests = await ctx.db().selectFrom('users').select('id').where('display_name', '=', 'Twice').execute();
  assert.is(guests.length, 1, 'one guest');
  assert.equal(guests[0]!.id, await userIdOf(page));
  assert.equal((await memberNames()).filter((n) => n === 'Twice'), ['Twice']);
});

test('a locked room is said on the PIN screen, before any nickname is asked for', async () => {
  const locked = await request(hostSocket, 'room:lock', { roomId: room.id, locked: true });
  assert.ok(locked.ok);
  try {
    const page = await newPage();
    await enterPin(page, room.pin);
    assert.match(await fieldError(page, 'pin-input'), 'locked');
    assert.ok(await page.isHidden('#screen-nickname'));
    await screenshot(page, 'join-04-locked');
  } finally {
    await request(hostSocket, 'room:lock', { roomId: room.id, locked: false });
  }
});

test.run();
