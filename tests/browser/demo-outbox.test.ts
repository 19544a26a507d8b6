/**
 * Nothing typed is lost: a player types while the server is down; the page
 * shows it pending, and once the server is back and the page has rejoined and
 * resumed the feed, it lands exactly once. The outage is real: the page talks
 * to the server through a TCP proxy that resets every connection and refuses
 * new ones for five seconds. The server reaches PostgreSQL through a second
 * proxy, so a test can take the database away while the page's socket is up.
 */
import { randomUUID } from 'node:crypto';
import { suite } from 'uvu';
import * as assert from 'uvu/assert';
import type { Browser, BrowserContext, Page } from 'playwright-core';
import type { FeedEntry, RoomView } from '../../shared/schemas.ts';
import { signUp } from '../support/auth.ts';
import { launchBrowser, screenshot } from '../support/browser.ts';
import { connect, request, type TestSocket } from '../support/client.ts';
import { createTestContext, type TestContext } from '../support/context.ts';
import { startTestServer, type TestServer } from '../support/server.ts';
import { startTcpProxy, type TcpProxy } from '../support/tcp-proxy.ts';

const test = suite('client-demo outbox');
const OUTAGE_MS = 5000;

let ctx: TestContext;
let server: TestServer;
let proxy: TcpProxy;
/** Between the server and PostgreSQL, to take the database away while the page's socket stays up. */
let pgProxy: TcpProxy;
let browser: Browser;
let context: BrowserContext;
let player: Page;
let hostToken: string;
let room: RoomView;
const sockets: TestSocket[] = [];

async function hostSocket(): Promise<TestSocket> {
  const socket = await connect(server.url, { token: hostToken });
  sockets.push(socket);
  return socket;
}

/** The host's socket that reads the room's feed from the server: joined once, made again if it dropped. */
let reader: TestSocket | undefined;

/** Every entry of the room, read from the server (history, newest first → oldest first). */
async function entriesOnServer(): Promise<FeedEntry[]> {
  if (!reader?.connected) {
    reader = await hostSocket();
    const joined = await request(reader, 'room:join', { pin: room.pin });
    if (!joined.ok) throw new Error(JSON.stringify(joined.error));
  }
  const page = await request(reader, 'feed:history', { roomId: room.id, limit: 100 });
  if (!page.ok) throw new Error(JSON.stringify(page.error));
  return page.data.entries.reverse();
}

/** Every chat text of the room, read from the server, oldest first. */
async function chatTextsOnServer(): Promise<string[]> {
  return (await entriesOnServer()).filter((e) => e.type === 'chat.message').map((e) => String(e.payload.text));
}

/** Every reaction emoji of the room, read from the server, oldest first. */
async function reactionsOnServer(): Promise<string[]> {
  return (await entriesOnServer()).filter((e) => e.type === 'reaction').map((e) => String(e.payload.emoji));
}

async function shownTexts(page: Page): Promise<string[]> {
  return page.$$eval('#feed-list li[data-type="chat.message"] .text', (els) => els.map((el) => el.textContent ?? ''));
}

test.before(async () => {
  ctx = createTestContext();
  const pg = new URL(ctx.databaseUrl);
  pgProxy = await startTcpProxy(pg.hostname, Number(pg.port || 5432));
  server = await startTestServer({ ...ctx.env, DATABASE_URL: pgProxy.url(ctx.databaseUrl), DB_CONNECT_TIMEOUT_MS: '1000', WS_PING_INTERVAL_MS: '1000', WS_PING_TIMEOUT_MS: '1500' });
  proxy = await startTcpProxy('127.0.0.1', server.port);
  browser = await launchBrowser();
  const host = await signUp(server.url, { displayName: 'Outbox host' });
  hostToken = host.accessToken;
  const created = await request(await hostSocket(), 'room:create', { title: 'Outbox' });
  if (!created.ok) throw new Error(JSON.stringify(created.error));
  room = created.data.room;

  context = await browser.newContext({ viewport: { width: 1000, height: 760 } });
  player = await context.newPage();
  player.on('pageerror', (err) => console.error(`page error: ${err.message}`));
  await player.goto(`${proxy.url(server.url).replace(/\/$/, '')}/?pin=${room.pin}`);
  await player.press('#pin-input', 'Enter');
  await player.waitForSelector('#screen-nickname:not([hidden])');
  await player.fill('#nick-input', 'Pat');
  await player.press('#nick-input', 'Enter');
  await player.waitForSelector('#screen-room:not([hidden])');
});

test.after(async () => {
  for (const s of sockets) s.close();
  await context?.close().catch(() => undefined);
  await browser?.close();
  await proxy?.close();
  await server?.stop();
  await pgProxy?.close();
  await ctx.cleanup();
});

test('a message typed during a 5 s server outage shows pending, then is delivered once after the reconnect', async () => {
  const before = `before the outage ${randomUUID().slice(0, 8)}`;
  await player.fill('#chat-input', before);
  await player.press('#chat-input', 'Enter');
  await player.waitForFunction((t) => [...document.querySelectorAll('#feed-list .text')].some((el) => el.textContent === t), before);

  proxy.cut();
  const downAt = Date.now();
  await player.waitForFunction(() => document.querySelector('#connection')?.getAttribute('data-status') === 'reconnecting', undefined, { timeout: 15_000 });
  // Typed near the end of the outage: the server is back well within one request's timeout of it.
  await new Promise((r) => setTimeout(r, Math.max(0, OUTAGE_MS - 1500 - (Date.now() - downAt))));
  const during = `typed while the server was down ${randomUUID().slice(0, 8)}`;
  await player.fill('#chat-input', during);
  await player.press('#chat-input', 'Enter');
  await player.click('.reactions button[data-emoji="🎉"]');
  assert.is(await player.inputValue('#chat-input'), '', 'the box is cleared: the message is in the outbox');
  await player.waitForFunction((t) => [...document.querySelectorAll('#pending-list .text')].some((el) => el.textContent === t), during);
  assert.match((await player.textContent('#pending-list'))!, 'Sending…');
  assert.is(await player.evaluate(() => JSON.parse(sessionStorage.getItem('pinroom.outbox') ?? '[]').length), 2, 'the outbox is kept in sessionStorage');
  await screenshot(player, 'outbox-01-pending');

  await new Promise((r) => setTimeout(r, Math.max(0, OUTAGE_MS - (Date.now() - downAt))));
  proxy.restore();

  await player.waitForFunction((t) => [...document.querySelectorAll('#feed-list .text')].some((el) => el.textContent === t), during, { timeout: 30_000 });
  await player.waitForFunction(() => document.querySelectorAll('#pending-list li').length === 0, undefined, { timeout: 30_000 });
  await player.waitForFunction(() => [...document.querySelectorAll('#feed-list li[data-type="reaction"]')].some((el) => (el.textContent ?? '').includes('🎉')), undefined, { timeout: 30_000 });
  assert.is(await player.evaluate(() => sessionStorage.getItem('pinroom.outbox')), null, 'the outbox is empty once acknowledged');
  assert.ok(await player.isHidden('#banner'), 'no error was shown');
  assert.is(await player.textContent('#chat-error'), '');

  // A later message marks the end of what the outbox could still send: it was sent exactly once.
  const after = `after the outage ${randomUUID().slice(0, 8)}`;
  await player.fill('#chat-input', after);
  await player.press('#chat-input', 'Enter');
  await player.waitForFunction((t) => [...document.querySelectorAll('#feed-list .text')].some((el) => el.textContent === t), after);
  assert.equal(await shownTexts(player), [before, during, after]);
  assert.equal(await chatTextsOnServer(), [before, during, after]);
  assert.equal(await reactionsOnServer(), ['🎉'], 'the reaction sent during the outage is in the feed exactly once');
  await screenshot(player, 'outbox-02-delivered');
});

test('after the reconnect the connection pill settles back on "Connected"', async () => {
  await player.waitForFunction(() => document.querySelector('#connection')?.textContent === 'Connected', undefined, { timeout: 15_000 });
  assert.is(await player.getAttribute('#connection', 'data-status'), 'connected');
});

test('a message typed during an outage is kept across a reload of the tab and lands once after it', async () => {
  const base = proxy.url(server.url).replace(/\/$/, '');
  proxy.cut();
  await player.waitForFunction(() => document.querySelector('#connection')?.getAttribute('data-status') === 'reconnecting', undefined, { timeout: 15_000 });
  const kept = `kept across a reload ${randomUUID().slice(0, 8)}`;
  await player.fill('#chat-input', kept);
  await player.press('#chat-input', 'Enter');
  await player.waitForFunction((t) => [...document.querySelectorAll('#pending-list .text')].some((el) => el.textContent === t), kept);
  // The reload fails (the server is unreachable): the tab shows an error page, its sessionStorage stays.
  await player.reload().catch(() => undefined);
  await player.waitForURL(/^chrome-error:/, { timeout: 15_000 }).catch(() => undefined);
  proxy.restore();
  // Back to the app in the same tab (a late error page may still interrupt the first try).
  for (let attempt = 1; ; attempt++) {
    try {
      await player.goto(base);
      break;
    } catch (err) {
      if (attempt >= 5) throw err;
    }
  }
  await player.waitForSelector('#screen-room:not([hidden])', { timeout: 30_000 });
  await player.waitForFunction((t) => [...document.querySelectorAll('#feed-list .text')].some((el) => el.textContent === t), kept, { timeout: 30_000 });
  await player.waitForFunction(() => sessionStorage.getItem('pinroom.outbox') === null, undefined, { timeout: 30_000 });
  const marker = `after the reload ${randomUUID().slice(0, 8)}`;
  await player.fill('#chat-input', marker);
  await player.press('#chat-input', 'Enter');
  await player.waitForFunction((t) => [...document.querySelectorAll('#feed-list .text')].some((el) => el.textContent === t), marker);
  const texts = await chatTextsOnServer();
  assert.equal(texts.slice(-2), [kept, marker]);
  assert.is(texts.filter((t) => t === kept).length, 1);
  assert.is((await shownTexts(player)).filter((t) => t === kept).length, 1);
});

test('when the rejoin after a reconnect finds the database down, the page tries again and its outbox lands once the database is back', async () => {
  await player.waitForFunction(() => document.querySelector('#connection')?.textContent === 'Connected', undefined, { timeout: 15_000 });
  proxy.cut();
  await player.waitForFunction(() => document.querySelector('#connection')?.getAttribute('data-status') === 'reconnecting', undefined, { timeout: 15_000 });
  const typed = `typed before a failed rejoin ${randomUUID().slice(0, 8)}`;
  await player.fill('#chat-input', typed);
  await player.press('#chat-input', 'Enter');
  await player.waitForFunction((t) => [...document.querySelectorAll('#pending-list .text')].some((el) => el.textContent === t), typed);

  // The socket comes back while PostgreSQL is unreachable: the rejoin's room:join is refused.
  pgProxy.cut();
  const acceptedBefore = proxy.accepted.total;
  proxy.restore();
  const deadline = Date.now() + 20_000;
  while (proxy.accepted.total === acceptedBefore) {
    if (Date.now() > deadline) throw new Error('the page did not reconnect');
    await new Promise((r) => setTimeout(r, 100));
  }
  // Held down longer than one request's timeout (8 s), so a rejoin that gives up has given up.
  await new Promise((r) => setTimeout(r, 10_000));
  assert.ok(await player.evaluate((t) => [...document.querySelectorAll('#pending-list .text')].some((el) => el.textContent === t), typed), 'still pending while the database is down');
  assert.ok(pgProxy.accepted.duringCut > 0, 'the server tried the database during the cut');
  pgProxy.restore();

  await player.waitForFunction((t) => [...document.querySelectorAll('#feed-list .text')].some((el) => el.textContent === t), typed, { timeout: 30_000 });
  await player.waitForFunction(() => sessionStorage.getItem('pinroom.outbox') === null, undefined, { timeout: 30_000 });
  await player.waitForFunction(() => document.querySelector('#connection')?.textContent === 'Connected', undefined, { timeout: 15_000 });
  const marker = `after the database came back ${randomUUID().slice(0, 8)}`;
  await player.fill('#chat-input', marker);
  await player.press('#chat-input', 'Enter');
  await player.waitForFunction((t) => [...document.querySelectorAll('#feed-list .text')].some((el) => el.textContent === t), marker);
  const texts = await chatTextsOnServer();
  assert.equal(texts.slice(-2), [typed, marker]);
  assert.is(texts.filter((t) => t === typed).length, 1);
  assert.is((await shownTexts(player)).filter((t) => t === typed).length, 1);
});

test('a chat message the server refuses is put back in the box, told with what was wrong', async () => {
  await player.waitForFunction(() => document.querySelector('#connection')?.textContent === 'Connected', undefined, { timeout: 15_000 });
  await player.waitForFunction(() => sessionStorage.getItem('pinroom.outbox') === null, undefined, { timeout: 30_000 });
  // Half of an emoji's surrogate pair passes the page's own check (the length) and
  // reaches the server's schema. Made in the page: it would not survive the trip from here.
  const marker = randomUUID().slice(0, 8);
  await player.evaluate((m) => {
    document.querySelector<HTMLInputElement>('#chat-input')!.value = `half an emoji ${String.fromCharCode(0xd83d)} ${m}`;
  }, marker);
  await player.press('#chat-input', 'Enter');
  await player.waitForFunction(() => (document.querySelector('#chat-error')?.textContent ?? '') !== '', undefined, { timeout: 30_000 });
  assert.is(await player.textContent('#chat-error'), 'Not sent: That input is not valid: no NUL characters or unpaired surrogates.');
  assert.ok(
    await player.evaluate((m) => document.querySelector<HTMLInputElement>('#chat-input')!.value === `half an emoji ${String.fromCharCode(0xd83d)} ${m}`, marker),
    'the refused message is back in the box, as typed',
  );
  assert.is(await player.getAttribute('#chat-input', 'aria-invalid'), 'true');
  assert.is(await player.evaluate(() => sessionStorage.getItem('pinroom.outbox')), null, 'a refused message leaves the outbox');
  assert.not.ok((await chatTextsOnServer()).some((t) => t.includes(marker)), 'nothing was stored');
});

test.run();
