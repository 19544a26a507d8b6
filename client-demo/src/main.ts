/**
 * The demo page: screens and DOM only. Everything about the protocol lives in
 * `pinroom-client.ts`; forms are checked with the same schemas the server uses.
 */
import { DisplayName, Password, Pin, RoomCreatePayload, Username, type FeedEntry, type MemberView, type RoomView } from '../../shared/schemas.ts';
import { compareIds } from '../../shared/stream-ids.ts';
import { createPinroomClient, PinroomError, type ConnectionState, type Roster } from './pinroom-client.ts';

const client = createPinroomClient();
Object.assign(globalThis, { pinroom: client }); // handy in the console

const $ = <T extends HTMLElement = HTMLElement>(id: string) => document.getElementById(id) as T;
const screens = ['home', 'nickname', 'host-auth', 'create', 'room', 'gone'] as const;
type Screen = (typeof screens)[number];
const ROOM_KEY = 'pinroom.room';

function show(screen: Screen): void {
  for (const name of screens) $(`screen-${name}`).hidden = name !== screen;
  const focus = $(`screen-${screen}`).querySelector<HTMLElement>('input:not([type=radio]), button.primary');
  focus?.focus();
  hideBanner();
}

function banner(text: string): void {
  const el = $('banner');
  el.textContent = text;
  el.hidden = false;
}
function hideBanner(): void {
  $('banner').hidden = true;
}

function messageOf(err: unknown): string {
  return err instanceof PinroomError ? err.message : 'Something went wrong. Try again.';
}

/** Run a form action with its button disabled and errors shown in the form. */
function onSubmit(formId: string, errorId: string, action: (data: FormData) => Promise<void>): void {
  const form = $<HTMLFormElement>(formId);
  form.addEventListener('submit', (event) => {
    event.preventDefault();
    const button = form.querySelector<HTMLButtonElement>('button[type=submit]')!;
    const error = $(errorId);
    error.textContent = '';
    button.disabled = true;
    action(new FormData(form))
      .catch((err: unknown) => {
        error.textContent = messageOf(err);
      })
      .finally(() => {
        button.disabled = false;
      });
  });
}

function invalid(message: string): never {
  throw new PinroomError({ code: 'bad_request', message }) as never;
}

// ------------------------------------------------------------------ top bar

const STATE_TEXT: Record<ConnectionState['status'], (s: ConnectionState) => string> = {
  offline: () => 'Offline',
  connecting: () => 'Connecting…',
  connected: () => 'Connected',
  reconnecting: () => 'Reconnecting…',
  resumed: (s) => `Resumed · caught up ${(s as { caughtUp: number }).caughtUp} ${(s as { caughtUp: number }).caughtUp === 1 ? 'entry' : 'entries'}`,
  reloaded: () => 'Reconnected · feed reloaded',
};

client.on('state', (state) => {
  const el = $('connection');
  el.dataset.status = state.status;
  el.textContent = STATE_TEXT[state.status](state);
});

function renderWho(): void {
  const user = client.user;
  $('who-name').textContent = user ? `${user.name}${user.kind === 'guest' ? ' (guest)' : ''}` : '';
  $('sign-out').hidden = !user;
}

$('sign-out').addEventListener('click', () => {
  void client.logOut();
});
client.on('signedOut', (reason) => {
  sessionStorage.removeItem(ROOM_KEY);
  renderWho();
  show('home');
  if (reason !== 'logout') banner('Your session has ended. Please sign in again.');
});

// ------------------------------------------------------------------ join flow

let pendingPin = '';

onSubmit('pin-form', 'pin-error', async (data) => {
  const pin = Pin.safeParse(String(data.get('pin') ?? '').trim());
  if (!pin.success) invalid('A PIN is a number of 3 to 10 digits.');
  const room = await client.lookupPin(pin.data);
  if (room.status === 'ended') invalid('That room has ended.');
  pendingPin = pin.data;
  $('nick-room-title').textContent = room.title;
  if (room.locked) banner('This room is locked right now; you can join once the host unlocks it.');
  // Already signed in (e.g. a host joining as a player): straight in.
  if (client.user) return enterRoom(pendingPin);
  show('nickname');
});

onSubmit('nick-form', 'nick-error', async (data) => {
  const name = DisplayName.safeParse(String(data.get('nickname') ?? ''));
  if (!name.success) invalid('A nickname has 1 to 32 printable characters.');
  await client.signInGuest(name.data);
  renderWho();
  await enterRoom(pendingPin);
});

// ------------------------------------------------------------------ host flow

$('go-host').addEventListener('click', () => {
  if (client.user?.kind === 'registered') show('create');
  else show('host-auth');
});

const authForm = $<HTMLFormElement>('auth-form');
authForm.addEventListener('change', () => {
  const register = new FormData(authForm).get('mode') === 'register';
  for (const el of authForm.querySelectorAll<HTMLElement>('.register-only')) el.hidden = !register;
  $<HTMLInputElement>('auth-password').autocomplete = register ? 'new-password' : 'current-password';
});

onSubmit('auth-form', 'auth-error', async (data) => {
  const username = Username.safeParse(String(data.get('username') ?? ''));
  const password = Password.safeParse(String(data.get('password') ?? ''));
  if (!username.success) invalid('A username has 3 to 32 letters, digits, “_”, “.” or “-”.');
  if (!password.success) invalid('A password has 8 to 128 characters.');
  if (data.get('mode') === 'register') {
    const display = String(data.get('displayName') ?? '').trim();
    await client.signUp(username.data, password.data, display || undefined);
  } else {
    await client.logIn(username.data, password.data);
  }
  renderWho();
  show('create');
});

onSubmit('create-form', 'create-error', async (data) => {
  const parsed = RoomCreatePayload.safeParse({ title: String(data.get('title') ?? ''), maxMembers: Number(data.get('maxMembers') || 50) });
  if (!parsed.success) invalid('A title has 1 to 80 characters, and a room holds 2 to 10,000 people.');
  const room = await client.createRoom(parsed.data.title, parsed.data.maxMembers);
  await enterRoom(room.pin);
});

for (const back of document.querySelectorAll<HTMLButtonElement>('button.back')) back.addEventListener('click', () => show('home'));

// ------------------------------------------------------------------ room view

const feedList = $<HTMLOListElement>('feed-list');
const shown = new Set<string>();
let oldestShown: string | null = null;
let loadingOlder = false;
let reachedStart = false;

async function enterRoom(pin: string): Promise<void> {
  const joined = await client.joinRoom(pin);
  sessionStorage.setItem(ROOM_KEY, pin);
  resetFeed();
  renderRoom(joined.room);
  shownMembers = MEMBERS_STEP;
  renderMembers(client.roster);
  show('room');
  await loadOlder();
}

function renderRoom(room: RoomView): void {
  $('room-title').textContent = room.title;
  $('room-pin').textContent = room.pin.replace(/(\d{3})(?=\d)/g, '$1 ');
  const status = $('room-status');
  status.textContent = room.status === 'lobby' ? 'Lobby' : room.status === 'live' ? 'Live' : 'Ended';
  status.dataset.status = room.status;
  $('room-locked').hidden = !room.locked;
  const host = client.role === 'host';
  $('host-controls').hidden = !host;
  $('screen-room').classList.toggle('is-host', host);
  $<HTMLButtonElement>('btn-start').disabled = room.status !== 'lobby';
  const lock = $<HTMLButtonElement>('btn-lock');
  lock.textContent = room.locked ? 'Unlock' : 'Lock';
  lock.setAttribute('aria-pressed', String(room.locked));
}

/** Members drawn at once: a room of thousands shows the first ones and its counts. */
const MEMBERS_STEP = 100;
let shownMembers = MEMBERS_STEP;

function renderMembers(roster: Roster): void {
  const { members, online, memberCount, hasMore } = roster;
  const list = $('member-list');
  list.replaceChildren();
  const sorted = [...members].sort((a, b) => Number(b.online) - Number(a.online) || (a.role === 'host' ? -1 : b.role === 'host' ? 1 : a.name.localeCompare(b.name)));
  for (const member of sorted.slice(0, shownMembers)) {
    const li = document.createElement('li');
    li.className = member.online ? 'online' : 'offline';
    li.dataset.userId = member.userId;
    const dot = document.createElement('span');
    dot.className = 'dot';
    dot.setAttribute('aria-hidden', 'true');
    const name = document.createElement('span');
    name.className = 'name';
    name.textContent = member.name + (member.role === 'host' ? ' · host' : '') + (member.userId === client.user?.id ? ' (you)' : '');
    const sr = document.createElement('span');
    sr.className = 'sr-only';
    sr.textContent = member.online ? ' online' : ' away';
    li.append(dot, name, sr);
    if (client.role === 'host' && member.userId !== client.user?.id) {
      const kick = document.createElement('button');
      kick.type = 'button';
      kick.className = 'kick';
      kick.textContent = 'Kick';
      kick.setAttribute('aria-label', `Kick ${member.name}`);
      kick.addEventListener('click', () => {
        client.kick(member.userId, 300).catch((err: unknown) => banner(messageOf(err)));
      });
      li.append(kick);
    }
    list.append(li);
  }
  $('member-count').textContent = `(${online} online)`;
  const shown = Math.min(sorted.length, shownMembers);
  const total = Math.max(memberCount, sorted.length);
  $('member-more').hidden = shown >= total && !hasMore;
  $('member-more-text').textContent = `Showing ${shown} of ${total}`;
}

$('btn-more-members').addEventListener('click', () => {
  shownMembers += MEMBERS_STEP;
  const roster = client.roster;
  if (roster.members.length < shownMembers && roster.hasMore) client.loadMoreMembers().catch((err: unknown) => banner(messageOf(err)));
  else renderMembers(roster);
});

function describeEntry(entry: FeedEntry): { text: string; kind: string } {
  const who = entry.actor?.name ?? 'pinroom';
  const p = entry.payload as Record<string, unknown>;
  switch (entry.type) {
    case 'chat.message':
      return { text: String(p.text ?? ''), kind: 'chat' };
    case 'reaction':
      return { text: `${who} reacted ${String(p.emoji ?? '')}`, kind: 'event' };
    case 'room.created':
      return { text: `${who} opened the room`, kind: 'event' };
    case 'member.joined':
      return { text: `${String(p.name ?? who)} joined`, kind: 'event' };
    case 'member.left':
      return { text: `${String(p.name ?? who)} left`, kind: 'event' };
    case 'members.joined':
    case 'members.left':
      return { text: describeCrowd(p as { users?: { name: string }[]; count?: number }, entry.type === 'members.joined' ? 'joined' : 'left'), kind: 'event' };
    case 'member.kicked':
      return { text: `${String(p.name ?? 'Someone')} was removed by the host`, kind: 'event' };
    case 'room.started':
      return { text: 'The host started the room', kind: 'event' };
    case 'room.locked':
      return { text: p.locked === false ? 'The host unlocked the room' : 'The host locked the room', kind: 'event' };
    case 'room.ended':
      return { text: 'The room has ended', kind: 'event' };
    default:
      return { text: `${who}: ${entry.type.replace(/^host\./, '')}`, kind: 'event' };
  }
}

/** "Ann, Bo and 38 others joined" for an aggregated membership entry of a big room. */
function describeCrowd(p: { users?: { name: string }[]; count?: number }, verb: string): string {
  const names = (p.users ?? []).slice(0, 3).map((u) => u.name);
  const others = (p.count ?? names.length) - names.length;
  if (others <= 0) return `${names.join(', ').replace(/, ([^,]*)$/, ' and $1')} ${verb}`;
  return `${names.join(', ')} and ${others} ${others === 1 ? 'other' : 'others'} ${verb}`;
}

function entryElement(entry: FeedEntry): HTMLLIElement {
  const { text, kind } = describeEntry(entry);
  const li = document.createElement('li');
  li.className = `entry ${kind}`;
  li.dataset.id = entry.id;
  li.dataset.type = entry.type;
  if (kind === 'chat') {
    const author = document.createElement('span');
    author.className = 'author';
    author.textContent = entry.actor?.name ?? 'pinroom';
    const body = document.createElement('span');
    body.className = 'text';
    body.textContent = text;
    li.append(author, body);
  } else {
    li.textContent = text;
  }
  const time = document.createElement('time');
  time.dateTime = new Date(entry.ts).toISOString();
  time.textContent = new Date(entry.ts).toLocaleTimeString([], { hour: '2-digit', minute: '2-digit' });
  li.append(time);
  return li;
}

function appendEntry(entry: FeedEntry): void {
  if (shown.has(entry.id)) return;
  shown.add(entry.id);
  const atBottom = feedList.scrollHeight - feedList.scrollTop - feedList.clientHeight < 40;
  // Keep stream order even if an entry arrives after a newer one was shown.
  const next = [...feedList.children].find((el) => compareIds((el as HTMLElement).dataset.id!, entry.id) > 0);
  feedList.insertBefore(entryElement(entry), next ?? null);
  oldestShown ??= entry.id;
  if (atBottom) feedList.scrollTop = feedList.scrollHeight;
}

function resetFeed(): void {
  feedList.replaceChildren();
  shown.clear();
  oldestShown = null;
  reachedStart = false;
}

/** Load the page of entries older than the oldest shown (newest first from the server). */
async function loadOlder(): Promise<void> {
  if (loadingOlder || reachedStart) return;
  loadingOlder = true;
  try {
    const page = await client.history(oldestShown ?? undefined);
    const before = feedList.scrollHeight;
    for (const entry of page.entries) {
      if (shown.has(entry.id)) continue;
      shown.add(entry.id);
      const next = [...feedList.children].find((el) => compareIds((el as HTMLElement).dataset.id!, entry.id) > 0);
      feedList.insertBefore(entryElement(entry), next ?? null);
      if (oldestShown === null || compareIds(entry.id, oldestShown) < 0) oldestShown = entry.id;
    }
    if (!page.nextBefore) reachedStart = true;
    feedList.scrollTop += feedList.scrollHeight - before;
    if (oldestShown === null) reachedStart = true;
  } catch (err) {
    banner(messageOf(err));
  } finally {
    loadingOlder = false;
  }
}

feedList.addEventListener('scroll', () => {
  if (feedList.scrollTop < 60) void loadOlder();
});

client.on('entry', (entry) => appendEntry(entry));
client.on('reset', () => {
  resetFeed();
  void loadOlder();
});
client.on('presence', (roster) => renderMembers(roster));
client.on('room', (room) => renderRoom(room));
client.on('kicked', (event) => {
  sessionStorage.removeItem(ROOM_KEY);
  $('gone-title').textContent = 'You were removed from the room';
  $('gone-text').textContent = event.bannedUntil
    ? `The host removed you. You can rejoin after ${new Date(event.bannedUntil).toLocaleTimeString()}.`
    : 'The host removed you from this room.';
  show('gone');
});
client.on('ended', (event) => {
  sessionStorage.removeItem(ROOM_KEY);
  $('gone-title').textContent = 'The room has ended';
  $('gone-text').textContent = event.reason === 'host_left' ? 'The host left and did not come back.' : 'Thanks for joining.';
  show('gone');
});

onSubmit('chat-form', 'chat-error', async (data) => {
  const text = String(data.get('text') ?? '').trim();
  if (!text) return;
  $<HTMLInputElement>('chat-input').value = '';
  await client.publish('chat.message', { text });
});
for (const button of document.querySelectorAll<HTMLButtonElement>('.reactions button')) {
  button.addEventListener('click', () => {
    client.publish('reaction', { emoji: button.dataset.emoji! }).catch((err: unknown) => banner(messageOf(err)));
  });
}

const hostAction = (id: string, action: () => Promise<void>) =>
  $(id).addEventListener('click', () => {
    action().catch((err: unknown) => banner(messageOf(err)));
  });
hostAction('btn-start', () => client.start());
hostAction('btn-lock', () => client.lock(!client.room?.locked));
hostAction('btn-end', async () => {
  if (confirm('End the room for everyone?')) await client.end();
});
$('btn-leave').addEventListener('click', () => {
  sessionStorage.removeItem(ROOM_KEY);
  client.leaveRoom().catch(() => undefined);
  show('home');
});
$('gone-home').addEventListener('click', () => show('home'));

// ------------------------------------------------------------------ start

void (async () => {
  const user = await client.restore();
  renderWho();
  const pin = sessionStorage.getItem(ROOM_KEY);
  if (user && pin) {
    try {
      await enterRoom(pin);
      return;
    } catch (err) {
      sessionStorage.removeItem(ROOM_KEY);
      banner(messageOf(err));
    }
  }
  const fromUrl = new URLSearchParams(location.search).get('pin');
  if (fromUrl) $<HTMLInputElement>('pin-input').value = fromUrl;
  show('home');
})();
