/**
 * The demo client in a real Chromium (Debian's, through playwright-core),
 * against a real pinroom server process. The steps build on each other: a
 * host, two players in their own browser contexts, chat, a kick, and a player
 * who goes offline and comes back. Screenshots land in tests/artifacts/.
 */
import { suite } from 'uvu';
import * as assert from 'uvu/assert';
import { createRequire } from 'node:module';
import { readFileSync } from 'node:fs';
import { sql } from 'kysely';
import jsQRModule from 'jsqr';
import type { Browser, BrowserContext, Page } from 'playwright-core';
import { launchBrowser, screenshot } from '../support/browser.ts';
import { createTestContext, type TestContext } from '../support/context.ts';
import { startTestServer, type TestServer } from '../support/server.ts';

const test = suite('client-demo in chromium');
// jsqr is CommonJS with an ES-style `default`: at run time the import is the function itself.
const jsQR = ((jsQRModule as unknown as { default?: typeof jsQRModule }).default ?? jsQRModule) as unknown as typeof jsQRModule.default;
const AXE_SOURCE = readFileSync(createRequire(import.meta.url).resolve('axe-core/axe.min.js'), 'utf8');
const REPLAY_MAX = 8;

let ctx: TestContext;
let server: TestServer;
let browser: Browser;
const contexts: BrowserContext[] = [];
let host: Page;
let ada: Page;
let bob: Page;
let pin = '';

async function newPage(width = 1100, height = 780): Promise<Page> {
  const context = await browser.newContext({ viewport: { width, height } });
  contexts.push(context);
  const page = await context.newPage();
  page.on('pageerror', (err) => console.error(`page error: ${err.message}`));
  await page.goto(server.url);
  return page;
}

/** WCAG 2 A and AA violations axe-core finds in the page as it is now (colour contrast included). */
async function accessibilityViolations(page: Page): Promise<string[]> {
  await page.evaluate(AXE_SOURCE);
  return page.evaluate(async () => {
    const axe = (globalThis as unknown as { axe: { run(ctx: Document, opts: unknown): Promise<{ violations: { id: string; nodes: { target: string[]; failureSummary?: string }[] }[] }> } }).axe;
    const result = await axe.run(document, { runOnly: { type: 'tag', values: ['wcag2a', 'wcag2aa', 'wcag21a', 'wcag21aa'] } });
    return result.violations.flatMap((v) => v.nodes.map((n) => `${v.id} at ${n.target.join(' ')}: ${n.failureSummary ?? ''}`));
  });
}

/** Texts of the chat messages shown in a page's feed, in order. */
async function chatTexts(page: Page): Promise<string[]> {
  return page.$$eval('#feed-list li[data-type="chat.message"] .text', (els) => els.map((el) => el.textContent ?? ''));
}

async function joinAs(page: Page, nickname: string): Promise<void> {
  await page.fill('#pin-input', pin);
  await page.press('#pin-input', 'Enter');
  await page.waitForSelector('#screen-nickname:not([hidden])');
  await page.fill('#nick-input', nickname);
  await page.press('#nick-input', 'Enter');
  await page.waitForSelector('#screen-room:not([hidden])');
}

/** Take Ada offline, have Bob send `texts` (each shown on his page), then bring Ada back online. */
async function sendWhileAdaIsAway(texts: string[]): Promise<void> {
  const offline = ada.context();
  await offline.setOffline(true);
  await ada.waitForFunction(() => document.querySelector('#connection')?.getAttribute('data-status') === 'reconnecting', undefined, { timeout: 15_000 });
  for (const text of texts) await say(bob, text);
  await offline.setOffline(false);
}

/** Send a chat message from `page` and wait until that page shows it. */
async function say(page: Page, text: string): Promise<void> {
  await page.fill('#chat-input', text);
  await page.press('#chat-input', 'Enter');
  await page.waitForFunction((t) => [...document.querySelectorAll('#feed-list .text')].some((el) => el.textContent === t), text);
}

test.before(async () => {
  ctx = createTestContext();
  server = await startTestServer({
    ...ctx.env,
    // Short heartbeats so a browser that goes offline notices within seconds.
    WS_PING_INTERVAL_MS: '1000',
    WS_PING_TIMEOUT_MS: '1500',
    // Small enough that a longer absence cannot be replayed (the "reloaded" path), large enough for the short one.
    FEED_REPLAY_MAX: String(REPLAY_MAX),
    // Room for the phone test to fill a feed from one player.
    FEED_PUBLISH_RATE_USER_ROOM: '100/10',
  });
  browser = await launchBrowser();
});

test.after(async () => {
  for (const context of contexts) await context.close().catch(() => undefined);
  await browser?.close();
  await server?.stop();
  await ctx.cleanup();
});

test('a wrong PIN is refused with a message a person understands', async () => {
  const page = await newPage();
  assert.ok(await page.isHidden('#connection'), 'no connection state (no "Offline") before a first connection');
  assert.equal(await accessibilityViolations(page), [], 'the join view');
  await page.fill('#pin-input', '000000');
  await page.press('#pin-input', 'Enter');
  await page.waitForFunction(() => (document.querySelector('#pin-error')?.textContent ?? '').length > 0);
  assert.match((await page.textContent('#pin-error'))!, 'No room has that PIN');
  assert.ok(await page.isVisible('#screen-home'));
  await screenshot(page, '01-wrong-pin');
});

test('a host signs up, creates a room and sees its PIN large', async () => {
  host = await newPage();
  await page_signUpAndCreate(host);
  pin = (await host.textContent('#room-pin'))!.replace(/\s/g, '');
  assert.match(pin, /^\d{6}$/);
  const size = await host.$eval('#room-pin', (el) => parseFloat(getComputedStyle(el).fontSize));
  assert.ok(size >= 48, `PIN font size ${size}px`);
  assert.ok(await host.isVisible('#host-controls'));
  await screenshot(host, '02-host-room');
});

test('the host lobby shows the join link and a QR code that encodes it', async () => {
  const link = `${server.url}/?pin=${pin}`;
  assert.is(await host.getAttribute('#join-link', 'href'), link);
  await host.waitForFunction(() => {
    const canvas = document.getElementById('join-qr') as HTMLCanvasElement;
    return canvas.getContext('2d')!.getImageData(0, 0, 1, 1).data[3] !== 0;
  });
  const image = await host.$eval('#join-qr', (el) => {
    const canvas = el as HTMLCanvasElement;
    const data = canvas.getContext('2d')!.getImageData(0, 0, canvas.width, canvas.height);
    return { width: data.width, height: data.height, pixels: [...data.data] };
  });
  const decoded = jsQR(Uint8ClampedArray.from(image.pixels), image.width, image.height);
  assert.is(decoded?.data, link);
  assert.is(await host.textContent('#lobby-count'), '0');
  // Checked with the "Locked" badge showing, then unlocked again.
  await host.click('#btn-lock');
  await host.waitForSelector('#room-locked:not([hidden])');
  assert.equal(await accessibilityViolations(host), [], 'the host lobby');
  await host.click('#btn-lock');
  await host.waitForSelector('#room-locked', { state: 'hidden' });
});

async function page_signUpAndCreate(page: Page): Promise<void> {
  await page.click('#go-host');
  await page.check('input[name=mode][value=register]');
  await page.fill('#auth-username', `host_${ctx.id}`);
  await page.fill('#auth-password', 'correct horse battery');
  await page.fill('#auth-display', 'Quiz Host');
  await page.click('#auth-form button[type=submit]');
  await page.waitForSelector('#screen-create:not([hidden])');
  await page.fill('#create-title-input', 'Friday quiz');
  await page.click('#create-form button[type=submit]');
  await page.waitForSelector('#screen-room:not([hidden])');
}

test('two players join by PIN in their own browsers and the host sees both arrive', async () => {
  ada = await newPage();
  bob = await newPage(390, 844); // a phone-sized screen
  await joinAs(ada, 'Ada');
  await joinAs(bob, 'Bob');
  await host.waitForFunction(() => document.getElementById('lobby-count')?.textContent === '2');
  await host.waitForFunction(() => {
    const names = [...document.querySelectorAll('#member-list li.online .name')].map((el) => el.textContent ?? '');
    return names.some((n) => n.startsWith('Ada')) && names.some((n) => n.startsWith('Bob'));
  });
  await screenshot(host, '03-host-sees-players');
  await screenshot(bob, '03-player-phone');
});

test('the nickname and room views pass an automated WCAG AA check', async () => {
  const page = await newPage();
  await page.fill('#pin-input', pin);
  await page.press('#pin-input', 'Enter');
  await page.waitForSelector('#screen-nickname:not([hidden])');
  assert.equal(await accessibilityViolations(page), [], 'the nickname view');
  assert.equal(await accessibilityViolations(ada), [], 'the room view');
  assert.equal(await accessibilityViolations(bob), [], 'the room view on a phone');
});

test('a chat message appears for all three, and the live region reads it with the speaker set apart', async () => {
  await ada.fill('#chat-input', 'hello from Ada');
  await ada.press('#chat-input', 'Enter');
  for (const page of [host, ada, bob]) {
    await page.waitForFunction(() => [...document.querySelectorAll('#feed-list .text')].some((el) => el.textContent === 'hello from Ada'));
    assert.equal(
      (await chatTexts(page)).filter((t) => t === 'hello from Ada'),
      ['hello from Ada'],
    );
  }
  await host.waitForFunction(() => document.getElementById('feed-announcer')?.textContent === 'Ada: hello from Ada');
  assert.ok(await host.$eval('#feed-list', (el) => !el.hasAttribute('aria-live')), 'the feed itself is not a live region');
  await ada.click('.reactions button[data-emoji="👏"]');
  await host.waitForFunction(() => [...document.querySelectorAll('#feed-list li[data-type="reaction"]')].some((el) => (el.textContent ?? '').includes('👏')));
  assert.is(await host.textContent('#feed-announcer'), 'Ada: hello from Ada', 'a reaction is not read out');
  await screenshot(host, '04-chat');
});

test('a player who goes offline while messages are sent comes back with each message once, in order', async () => {
  const sent = ['one', 'two', 'three', 'four', 'five'].map((w) => `while away: ${w}`);
  await sendWhileAdaIsAway(sent);
  await ada.waitForFunction(() => document.querySelector('#connection')?.getAttribute('data-status') === 'resumed', undefined, { timeout: 20_000 });
  await ada.waitForFunction((n) => document.querySelectorAll('#feed-list li[data-type="chat.message"]').length >= n, sent.length + 1);
  const texts = await chatTexts(ada);
  assert.equal(texts, ['hello from Ada', ...sent]);
  assert.match((await ada.textContent('#connection'))!, 'Resumed');
  await screenshot(ada, '05-resumed');
});

test('a player away for more entries than FEED_REPLAY_MAX comes back "reloaded", showing every message once, in order', async () => {
  const before = await chatTexts(ada);
  const sent = Array.from({ length: REPLAY_MAX + 2 }, (_, i) => `long away: ${i + 1}`);
  await sendWhileAdaIsAway(sent);
  await ada.waitForFunction(() => document.querySelector('#connection')?.getAttribute('data-status') === 'reloaded', undefined, { timeout: 20_000 });
  assert.match((await ada.textContent('#connection'))!, 'feed reloaded');
  await ada.waitForFunction((n) => document.querySelectorAll('#feed-list li[data-type="chat.message"]').length >= n, before.length + sent.length);
  // A later message marks the end of what the reload and the live feed bring: nothing shows twice before it.
  await say(bob, 'after the reload');
  await ada.waitForFunction(() => [...document.querySelectorAll('#feed-list .text')].some((el) => el.textContent === 'after the reload'));
  assert.equal(await chatTexts(ada), [...before, ...sent, 'after the reload']);
  await screenshot(ada, '05b-reloaded');
});

test('a reload keeps the session and rejoins the room', async () => {
  await ada.reload();
  await ada.waitForSelector('#screen-room:not([hidden])');
  assert.match((await ada.textContent('#who-name'))!, 'Ada');
  await ada.waitForFunction(() => document.querySelectorAll('#feed-list li[data-type="chat.message"]').length >= 6);
  assert.equal((await chatTexts(ada)).slice(0, 1), ['hello from Ada']);
});

test('on a phone, with a full feed, the message box and the reactions stay at the bottom of the screen wherever the page is scrolled', async () => {
  // The feed scrolls inside itself (it is capped at 45vh), so what makes the page long is the
  // list of people under it: 25 who joined and went away, put straight into PostgreSQL.
  const db = ctx.db();
  const roomId = (await db.selectFrom('rooms').select('id').where('pin', '=', pin).where('status', '<>', 'ended').executeTakeFirstOrThrow()).id;
  await sql`with u as (insert into users (display_name, kind) select 'Away ' || g, 'guest' from generate_series(1, 25) g returning id, display_name)
    insert into room_members (room_id, user_id, role, name) select ${roomId}::uuid, id, 'member', display_name from u`.execute(db);
  await sql`update rooms set member_count = member_count + 25 where id = ${roomId}::uuid`.execute(db);
  await bob.reload();
  await bob.waitForSelector('#screen-room:not([hidden])');
  await bob.waitForFunction(() => document.querySelectorAll('#member-list li[data-user-id]').length >= 25, undefined, { timeout: 15_000 });
  for (let i = 1; i <= 30; i++) await say(bob, `filler ${i}`);
  const page = await bob.evaluate(() => {
    const list = document.getElementById('feed-list')!;
    return { scrollable: document.documentElement.scrollHeight - innerHeight, feedOverflows: list.scrollHeight > list.clientHeight };
  });
  assert.ok(page.feedOverflows, 'the feed holds more than it can show');
  assert.ok(page.scrollable >= 422, `the page scrolls well past one screen (${JSON.stringify(page)})`);
  for (const y of [0, Math.round(page.scrollable / 2), page.scrollable]) {
    await bob.evaluate((to) => window.scrollTo(0, to), y);
    assert.is(await bob.evaluate(() => Math.round(window.scrollY)), y, 'the page scrolled');
    for (const selector of ['#chat-input', '.reactions']) {
      const box = (await bob.locator(selector).boundingBox())!;
      assert.ok(box.y >= 0 && box.y + box.height <= 844, `${selector} is on screen (scrolled to ${y}): ${JSON.stringify(box)}`);
    }
    const composer = (await bob.locator('.composer').boundingBox())!;
    assert.ok(Math.abs(composer.y + composer.height - 844) <= 1, `the composer sits on the bottom edge of the screen (scrolled to ${y}): ${JSON.stringify(composer)}`);
    if (y === Math.round(page.scrollable / 2)) await screenshot(bob, '05c-phone-composer-mid-page');
  }
});

test('the host kicks a player after confirming; the player is told why and the feed names whom the kick removed', async () => {
  await host.click('#member-list li:has-text("Bob") button.kick');
  await host.waitForSelector('#kick-dialog[open]');
  assert.match((await host.textContent('#kick-title'))!, 'Remove Bob?');
  await host.click('#kick-cancel');
  assert.ok(await host.isHidden('#kick-dialog'), 'cancel closes the dialog');
  await host.click('#member-list li:has-text("Bob") button.kick');
  await host.click('#kick-confirm');
  await bob.waitForSelector('#screen-gone:not([hidden])');
  assert.match((await bob.textContent('#gone-title'))!, 'removed');
  assert.match((await bob.textContent('#gone-text'))!, 'You can join again');
  await host.waitForFunction(() => [...document.querySelectorAll('#feed-list li[data-type="member.kicked"]')].some((el) => (el.textContent ?? '').startsWith('Bob was removed by the host')));
  // Whoever was removed is no longer listed, online or away.
  await host.waitForFunction(() => ![...document.querySelectorAll('#member-list .name')].some((el) => (el.textContent ?? '').startsWith('Bob')));
  await screenshot(bob, '06-kicked');
  await screenshot(host, '06-host-after-kick');
});

test('a kicked player can come back; banned, they are removed, the feed names them, and they cannot rejoin', async () => {
  // Kicked, not banned: Bob may join again.
  await bob.click('#gone-home');
  await joinAs(bob, 'Bob');
  await host.waitForFunction(() => [...document.querySelectorAll('#member-list li.online .name')].some((el) => (el.textContent ?? '').startsWith('Bob')), undefined, { timeout: 15_000 });

  await host.click('#member-list li:has-text("Bob") button.kick');
  await host.waitForSelector('#kick-dialog[open]');
  await host.click('#ban-confirm');
  await bob.waitForSelector('#screen-gone:not([hidden])', { timeout: 15_000 });
  assert.match((await bob.textContent('#gone-text'))!, 'You can rejoin after');
  await host.waitForFunction(() => [...document.querySelectorAll('#feed-list li[data-type="member.kicked"]')].some((el) => (el.textContent ?? '').startsWith('Bob was banned by the host')), undefined, { timeout: 15_000 });
  await host.waitForFunction(() => ![...document.querySelectorAll('#member-list .name')].some((el) => (el.textContent ?? '').startsWith('Bob')), undefined, { timeout: 15_000 });
  await screenshot(host, '06b-host-after-ban');

  // Banned: the join is refused on the nickname screen, and Bob is not back in the room.
  await bob.click('#gone-home');
  await bob.fill('#pin-input', pin);
  await bob.press('#pin-input', 'Enter');
  await bob.waitForSelector('#screen-nickname:not([hidden])');
  await bob.fill('#nick-input', 'Bob');
  await bob.press('#nick-input', 'Enter');
  await bob.waitForFunction(() => (document.getElementById('nick-error')?.textContent ?? '') !== '', undefined, { timeout: 15_000 });
  assert.match((await bob.textContent('#nick-error'))!, 'The host removed you from this room');
  assert.ok(await bob.isHidden('#screen-room'), 'the banned player is not let into the room');
  const db = ctx.db();
  const inRoom = await db
    .selectFrom('room_members')
    .innerJoin('rooms', 'rooms.id', 'room_members.room_id')
    .select('room_members.name')
    .where('rooms.pin', '=', pin)
    .where('rooms.status', '<>', 'ended')
    .where('room_members.left_at', 'is', null)
    .execute();
  assert.equal(inRoom.map((m) => m.name).filter((n) => n === 'Bob'), [], 'the server holds no current membership for Bob');
  await screenshot(bob, '06c-banned-rejoin-refused');
});

test('in a room of 1,000 the host sees the first page of player tiles and the counts, and pages through the rest', async () => {
  // 1,000 members who joined and went away, added straight into PostgreSQL.
  const db = ctx.db();
  const roomId = (await db.selectFrom('rooms').select('id').where('pin', '=', pin).where('status', '<>', 'ended').executeTakeFirstOrThrow()).id;
  await sql`with u as (insert into users (display_name, kind) select 'Crowd ' || g, 'guest' from generate_series(1, 1000) g returning id, display_name)
    insert into room_members (room_id, user_id, role, name) select ${roomId}::uuid, id, 'member', display_name from u`.execute(db);
  await sql`update rooms set member_count = member_count + 1000 where id = ${roomId}::uuid`.execute(db);
  const total = (await db.selectFrom('rooms').select('member_count').where('id', '=', roomId).executeTakeFirstOrThrow()).member_count;

  await host.reload();
  await host.waitForSelector('#screen-room:not([hidden])');
  await host.waitForFunction(() => !(document.querySelector('#member-more') as HTMLElement).hidden);
  assert.is(await host.$$eval('#member-list li[data-user-id]', (els) => els.length), 100);
  assert.is(await host.textContent('#member-more-text'), `Showing 100 of ${total.toLocaleString('en')}`);
  assert.match((await host.textContent('#member-count'))!, '(2 online)');
  assert.is(await host.textContent('#lobby-count'), '1');
  for (let shown = 200; shown < total + 100; shown += 100) {
    await host.click('#btn-more-members');
    await host.waitForFunction((n) => document.querySelectorAll('#member-list li[data-user-id]').length === n, Math.min(shown, total));
  }
  assert.ok(await host.isHidden('#member-more'), 'everyone is shown');
  await screenshot(host, '07-host-big-room');
});

test("the host's Leave says it ends the room and asks first", async () => {
  const asked: string[] = [];
  host.once('dialog', (dialog) => {
    asked.push(dialog.message());
    void dialog.dismiss();
  });
  await host.click('#btn-leave');
  assert.match(asked[0] ?? '', 'ends the room for everyone');
  assert.ok(await host.isVisible('#screen-room'), 'still in the room after saying no');
  host.once('dialog', (dialog) => void dialog.accept());
  await host.click('#btn-leave');
  await ada.waitForSelector('#screen-gone:not([hidden])');
  assert.match((await ada.textContent('#gone-title'))!, 'ended');
  // The ending reached the host's socket too; the host, who chose to leave, stays on the home screen.
  await host.waitForSelector('#screen-home:not([hidden])');
  await host.waitForTimeout(500);
  assert.ok(await host.isVisible('#screen-home'), 'the host who left is not shown "the room has ended"');
});

test.run();
