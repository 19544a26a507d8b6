/**
 * The demo page: screens and DOM only. Everything about the protocol lives in
 * `pinroom-client.ts`; forms are checked with the same schemas the server uses,
 * and each problem is told next to its field.
 */
import QRCode from 'qrcode';
import { DisplayName, Limits, Password, Pin, Username, type FeedEntry, type RoomView } from '../../shared/schemas.ts';
import { compareIds } from '../../shared/stream-ids.ts';
import { readEntry, type MembersEntryPayload } from '../../shared/feed-entries.ts';
import { createPinroomClient, PinroomError, type ConnectionState, type OutboxItem, type Roster } from './pinroom-client.ts';
import { setupWaitingRoom } from './waiting-room.ts';

const client = createPinroomClient();
Object.assign(globalThis, { pinroom: client }); // handy in the console

const $ = <T extends HTMLElement = HTMLElement>(id: string) => document.getElementById(id) as T;
const screens = ['home', 'nickname', 'host-auth', 'create', 'room', 'gone', 'waiting'] as const;
type Screen = (typeof screens)[number];
const ROOM_KEY = 'pinroom.room';
/** How long "Resumed" / "Reconnected" stays up before the pill says "Connected" again, ms. */
const RESUMED_SHOWN_MS = 4000;
/** A ban from the kick dialog, in seconds. */
const BAN_SECONDS = 600;

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

// ------------------------------------------------------------------ forms

/** Problems with what was typed, each for one field (by the input's id). */
class FieldErrors extends Error {
  constructor(readonly problems: { field: string; message: string }[]) {
    super(problems.map((p) => p.message).join(' '));
  }
}

/** A field's message element: the one its `aria-describedby` names. */
function errorElementOf(input: HTMLElement): HTMLElement {
  return $(input.getAttribute('aria-describedby')!);
}

function clearErrors(form: HTMLFormElement): void {
  for (const input of form.querySelectorAll<HTMLElement>('[aria-invalid]')) input.removeAttribute('aria-invalid');
  for (const el of form.querySelectorAll<HTMLElement>('.field-error, .form-error')) el.textContent = '';
}

/** Show each problem under its field (`aria-invalid`, described by the message) and focus the first. */
function showFieldErrors(problems: { field: string; message: string }[]): void {
  for (const { field, message } of problems) {
    const input = $(field);
    input.setAttribute('aria-invalid', 'true');
    errorElementOf(input).textContent = message;
  }
  if (problems[0]) $(problems[0].field).focus();
}

/**
 * Run a form action with its button disabled. Problems with a field are shown
 * there; a server error goes to the field `fieldOf` names for its code, else
 * to the form's own message.
 */
function onSubmit(formId: string, errorId: string, action: (data: FormData) => Promise<void>, fieldOf: (err: PinroomError) => string | null = () => null): void {
  const form = $<HTMLFormElement>(formId);
  let busy = false;
  form.addEventListener('submit', (event) => {
    event.preventDefault();
    if (busy) return; // pressed again while the first press is still at work
    busy = true;
    const button = form.querySelector<HTMLButtonElement>('button[type=submit]')!;
    clearErrors(form);
    button.disabled = true;
    action(new FormData(form))
      .catch((err: unknown) => {
        if (err instanceof FieldErrors) return showFieldErrors(err.problems);
        const field = err instanceof PinroomError ? fieldOf(err) : null;
        if (field) return showFieldErrors([{ field, message: messageOf(err) }]);
        $(errorId).textContent = messageOf(err);
      })
      .finally(() => {
        busy = false;
        button.disabled = false;
      });
  });
}

/** Collect problems, throwing them all at once. */
function check(...problems: ({ field: string; message: string } | null)[]): void {
  const found = problems.filter((p): p is { field: string; message: string } => p !== null);
  if (found.length > 0) throw new FieldErrors(found);
}

/** A PIN as people type or paste it ("175 994", "175-994", " 175994\n") → its digits; null when it is not a PIN. */
function normalisePin(raw: string): { pin: string } | { problem: string } {
  const compact = raw.replace(/[\s\-‐‑–—.]/g, '');
  if (compact === '') return { problem: 'Enter the PIN shown on the host’s screen.' };
  if (!/^[0-9]+$/.test(compact)) return { problem: 'A PIN has digits only, like 123 456.' };
  if (!Pin.safeParse(compact).success) return { problem: `A PIN has ${Limits.pinMinDigits} to ${Limits.pinMaxDigits} digits.` };
  return { pin: compact };
}

function nicknameProblem(raw: string): string | null {
  if (raw.trim() === '') return 'Enter a nickname, so others know who you are.';
  if (raw.trim().length > Limits.displayNameMax) return `A nickname has at most ${Limits.displayNameMax} characters.`;
  if (!DisplayName.safeParse(raw).success) return 'A nickname can only have printable characters.';
  return null;
}

// ------------------------------------------------------------------ top bar

const STATE_TEXT: Record<ConnectionState['status'], (s: ConnectionState) => string> = {
  offline: () => 'Offline',
  connecting: () => 'Connecting…',
  connected: () => 'Connected',
  reconnecting: () => 'Reconnecting…',
  resumed: (s) => {
    const caughtUp = s.status === 'resumed' ? s.caughtUp : 0;
    return `Resumed · caught up ${caughtUp} ${caughtUp === 1 ? 'entry' : 'entries'}`;
  },
  reloaded: () => 'Reconnected · feed reloaded',
};

let settleTimer: ReturnType<typeof setTimeout> | undefined;
let everConnected = false;

function renderState(status: ConnectionState['status'], text: string): void {
  const el = $('connection');
  el.dataset.status = status;
  el.textContent = text;
}

client.on('state', (state) => {
  clearTimeout(settleTimer);
  if (state.status !== 'offline' && state.status !== 'connecting') everConnected = true;
  // Nothing to say before the first connection: a first-time visitor is not "offline".
  $('connection').hidden = !everConnected && (state.status === 'offline' || state.status === 'connecting');
  renderState(state.status, STATE_TEXT[state.status](state));
  if (state.status === 'resumed' || state.status === 'reloaded') {
    settleTimer = setTimeout(() => {
      if (client.state.status === state.status) renderState('connected', 'Connected');
    }, RESUMED_SHOWN_MS);
  }
});

function renderWho(): void {
  const user = client.user;
  const name = client.memberName ?? user?.name;
  $('who-name').textContent = user ? `${name}${user.kind === 'guest' ? ' (guest)' : ''}` : '';
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

onSubmit(
  'pin-form',
  'pin-error',
  async (data) => {
    const input = $<HTMLInputElement>('pin-input');
    const parsed = normalisePin(String(data.get('pin') ?? ''));
    if ('problem' in parsed) throw new FieldErrors([{ field: 'pin-input', message: parsed.problem }]);
    input.value = parsed.pin;
    const room = await client.lookupPin(parsed.pin);
    // Said before any nickname is asked for.
    if (room.status === 'ended') throw new FieldErrors([{ field: 'pin-input', message: 'That room has ended.' }]);
    if (room.locked) throw new FieldErrors([{ field: 'pin-input', message: `“${room.title}” is locked right now. Ask the host to unlock it, then try again.` }]);
    if (room.full) throw new FieldErrors([{ field: 'pin-input', message: `“${room.title}” is full.` }]);
    pendingPin = parsed.pin;
    $('nick-room-title').textContent = room.title;
    const nick = $<HTMLInputElement>('nick-input');
    nick.value = client.memberName ?? client.user?.name ?? '';
    show('nickname');
  },
  (err) => (['room_not_found', 'rate_limited', 'room_locked', 'room_full', 'bad_request'].includes(err.code) ? 'pin-input' : null),
);

onSubmit(
  'nick-form',
  'nick-error',
  async (data) => {
    const raw = String(data.get('nickname') ?? '');
    check(nicknameProblem(raw) ? { field: 'nick-input', message: nicknameProblem(raw)! } : null);
    const nickname = raw.trim();
    // One guest per browser: a guest is made once, then every join (another
    // room, another nickname after one was taken) goes by that same guest.
    if (!client.user) await client.signInGuest(nickname);
    await enterRoom(pendingPin, nickname);
  },
  (err) => (err.code === 'nickname_taken' ? 'nick-input' : null),
);

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

onSubmit(
  'auth-form',
  'auth-error',
  async (data) => {
    const rawName = String(data.get('username') ?? '');
    const rawPassword = String(data.get('password') ?? '');
    const register = data.get('mode') === 'register';
    const display = String(data.get('displayName') ?? '').trim();
    const username = Username.safeParse(rawName);
    const password = Password.safeParse(rawPassword);
    check(
      rawName === ''
        ? { field: 'auth-username', message: 'Enter a username.' }
        : username.success
          ? null
          : { field: 'auth-username', message: `A username has ${Limits.usernameMin} to ${Limits.usernameMax} letters, digits, “_”, “.” or “-”.` },
      rawPassword === ''
        ? { field: 'auth-password', message: 'Enter a password.' }
        : password.success
          ? null
          : { field: 'auth-password', message: `A password has ${Limits.passwordMin} to ${Limits.passwordMax} characters; this one has ${rawPassword.length}.` },
      register && display !== '' && !DisplayName.safeParse(display).success
        ? { field: 'auth-display', message: `A display name has 1 to ${Limits.displayNameMax} printable characters.` }
        : null,
    );
    if (register) await client.signUp(username.data!, password.data!, display || undefined);
    else await client.logIn(username.data!, password.data!);
    renderWho();
    show('create');
  },
  (err) => (err.code === 'username_taken' ? 'auth-username' : null),
);

onSubmit('create-form', 'create-error', async (data) => {
  const title = String(data.get('title') ?? '').trim();
  const maxRaw = String(data.get('maxMembers') ?? '').trim();
  const maxMembers = maxRaw === '' ? 50 : Number(maxRaw);
  check(
    title === '' ? { field: 'create-title-input', message: 'Give the room a title, like “Friday quiz”.' } : null,
    title.length > Limits.titleMax ? { field: 'create-title-input', message: `A title has at most ${Limits.titleMax} characters.` } : null,
    !Number.isInteger(maxMembers) || maxMembers < Limits.maxMembersMin || maxMembers > Limits.maxMembersMax
      ? { field: 'create-max', message: `A room holds ${Limits.maxMembersMin} to ${Limits.maxMembersMax.toLocaleString('en')} people.` }
      : null,
  );
  const room = await client.createRoom(title, maxMembers, data.get('approval') === 'on');
  await enterRoom(room.pin);
});

for (const back of document.querySelectorAll<HTMLButtonElement>('button.back')) back.addEventListener('click', () => show('home'));

// ------------------------------------------------------------------ room view

const feedList = $<HTMLOListElement>('feed-list');
const shown = new Set<string>();
let oldestShown: string | null = null;
let loadingOlder = false;
let reachedStart = false;
/** Members known to have left or been removed (feed entries say so): not listed. */
const departed = new Set<string>();

async function enterRoom(pin: string, nickname?: string): Promise<void> {
  let joined;
  try {
    joined = await client.joinRoom(pin, nickname);
  } catch (err) {
    // Approval mode: wait on the waiting screen; the host's decision continues from there.
    if (waitingRoom.waitFor(err, pin, $('nick-room-title').textContent ?? '', nickname)) return;
    throw err;
  }
  sessionStorage.setItem(ROOM_KEY, pin);
  resetFeed();
  departed.clear();
  renderRoom(joined.room);
  renderWho();
  shownMembers = MEMBERS_STEP;
  renderMembers(client.roster);
  renderPending(client.outbox);
  show('room');
  await loadOlder();
}

const joinLink = (pin: string) => `${location.origin}/?pin=${pin}`;
let qrFor = '';

function renderRoom(room: RoomView): void {
  $('room-title').textContent = room.title;
  $('room-pin').textContent = room.pin.replace(/(\d{3})(?=\d)/g, '$1 ');
  const status = $('room-status');
  status.textContent = room.status === 'lobby' ? 'Lobby' : room.status === 'live' ? 'Live' : 'Ended';
  status.dataset.status = room.status;
  $('room-locked').hidden = !room.locked;
  const host = client.role === 'host';
  $('host-controls').hidden = !host;
  $('lobby').hidden = !host;
  $('screen-room').classList.toggle('is-host', host);
  $('btn-leave').textContent = host ? 'Leave and end the room' : 'Leave room';
  $<HTMLButtonElement>('btn-start').disabled = room.status !== 'lobby';
  $('btn-lock').setAttribute('aria-pressed', String(room.locked));
  if (host && qrFor !== room.pin) {
    qrFor = room.pin;
    const link = joinLink(room.pin);
    const a = $<HTMLAnchorElement>('join-link');
    a.href = link;
    a.textContent = link.replace(/^https?:\/\//, '');
    QRCode.toCanvas($<HTMLCanvasElement>('join-qr'), link, { width: 180, margin: 2, errorCorrectionLevel: 'M' }).catch(() => undefined);
  }
}

/** Members drawn at once: a room of thousands shows the first ones and its counts, and pages on. */
const MEMBERS_STEP = 100;
let shownMembers = MEMBERS_STEP;

function memberItem(member: Roster['members'][number]): HTMLLIElement {
  const li = document.createElement('li');
  li.className = member.online ? 'online' : 'offline';
  li.dataset.userId = member.userId;
  const dot = document.createElement('span');
  dot.className = 'dot';
  dot.setAttribute('aria-hidden', 'true');
  const name = document.createElement('span');
  name.className = 'name';
  const self = member.userId === client.user?.id;
  // The host's own tile is short: the lobby is about the players.
  name.textContent = self && member.role === 'host' ? 'You · host' : member.name + (member.role === 'host' ? ' · host' : '') + (self ? ' (you)' : '');
  name.title = name.textContent;
  const sr = document.createElement('span');
  sr.className = 'sr-only';
  sr.textContent = member.online ? ' online' : ' away';
  li.append(dot, name, sr);
  if (client.role === 'host' && member.userId !== client.user?.id) {
    const kick = document.createElement('button');
    kick.type = 'button';
    kick.className = 'kick';
    kick.textContent = 'Remove';
    kick.setAttribute('aria-label', `Remove ${member.name}`);
    kick.addEventListener('click', () => askKick(member.userId, member.name));
    li.append(kick);
  }
  return li;
}

function renderMembers(roster: Roster): void {
  const { online, memberCount, hasMore } = roster;
  const members = roster.members.filter((m) => !departed.has(m.userId));
  const list = $('member-list');
  list.classList.toggle('tiles', client.role === 'host');
  // Online first (the host leading), then those who dropped and may come back.
  const sorted = [...members].sort((a, b) => Number(b.online) - Number(a.online) || (a.role === 'host' ? -1 : b.role === 'host' ? 1 : a.name.localeCompare(b.name)));
  const items: HTMLElement[] = [];
  let awayHeading = false;
  for (const member of sorted.slice(0, shownMembers)) {
    if (!member.online && !awayHeading) {
      awayHeading = true;
      const h = document.createElement('li');
      h.className = 'group';
      h.textContent = 'Away';
      items.push(h);
    }
    items.push(memberItem(member));
  }
  list.replaceChildren(...items);
  $('member-count').textContent = `(${online} online)`;
  const players = Math.max(0, online - 1);
  $('lobby-count').textContent = players.toLocaleString('en');
  $('lobby-count-label').textContent = players === 1 ? 'player here' : 'players here';
  const count = Math.min(sorted.length, shownMembers);
  const total = Math.max(memberCount, sorted.length);
  $('member-more').hidden = count >= total && !hasMore;
  $('member-more-text').textContent = `Showing ${count} of ${total.toLocaleString('en')}`;
}

$('btn-more-members').addEventListener('click', () => {
  shownMembers += MEMBERS_STEP;
  const roster = client.roster;
  if (roster.members.length < shownMembers && roster.hasMore) client.loadMoreMembers().catch((err: unknown) => banner(messageOf(err)));
  else renderMembers(roster);
});

// ---- kick / ban, after a confirmation

const kickDialog = $<HTMLDialogElement>('kick-dialog');
let kickTarget: { userId: string; name: string } | null = null;

function askKick(userId: string, name: string): void {
  kickTarget = { userId, name };
  $('kick-name').textContent = name;
  kickDialog.showModal();
  $('kick-cancel').focus();
}
function closeKick(banSeconds: number | null): void {
  const target = kickTarget;
  kickTarget = null;
  kickDialog.close();
  if (target && banSeconds !== null) client.kick(target.userId, banSeconds || undefined).catch((err: unknown) => banner(messageOf(err)));
}
$('kick-cancel').addEventListener('click', () => closeKick(null));
$('kick-confirm').addEventListener('click', () => closeKick(0));
$('ban-confirm').addEventListener('click', () => closeKick(BAN_SECONDS));

// ---- the feed

function describeEntry(entry: FeedEntry): { text: string; kind: string } {
  const who = entry.actor?.name ?? 'pinroom';
  const known = readEntry(entry);
  switch (known?.type) {
    case 'chat.message':
      return { text: known.payload.text, kind: 'chat' };
    case 'reaction':
      return { text: `${who} reacted ${known.payload.emoji}`, kind: 'event' };
    case 'room.created':
      return { text: `${who} opened the room`, kind: 'event' };
    case 'member.joined':
      return { text: `${who} joined`, kind: 'event' };
    case 'member.left':
      return { text: `${who} left`, kind: 'event' };
    case 'members.joined':
    case 'members.left':
      return { text: describeCrowd(known.payload, known.type === 'members.joined' ? 'joined' : 'left'), kind: 'event' };
    case 'member.kicked':
      return { text: `${known.payload.name} was ${known.payload.bannedUntil ? 'banned' : 'removed'} by the host`, kind: 'event' };
    case 'room.started':
      return { text: 'The host started the room', kind: 'event' };
    case 'room.locked':
      return { text: known.payload.locked ? 'The host locked the room' : 'The host unlocked the room', kind: 'event' };
    case 'room.ended':
      return { text: 'The room has ended', kind: 'event' };
    default:
      return { text: `${who}: ${entry.type.replace(/^host\./, '')}`, kind: 'event' };
  }
}

/** "Ann, Bo and 38 others joined" for an aggregated membership entry of a big room. */
function describeCrowd(p: MembersEntryPayload, verb: string): string {
  const names = p.users.slice(0, 3).map((u) => u.name);
  const others = p.count - names.length;
  if (others <= 0) return `${names.join(', ').replace(/, ([^,]*)$/, ' and $1')} ${verb}`;
  return `${names.join(', ')} and ${others} ${others === 1 ? 'other' : 'others'} ${verb}`;
}

/** A chat line: the speaker, a separator screen readers say too, the text. */
function chatParts(author: string, text: string): HTMLElement[] {
  const who = document.createElement('span');
  who.className = 'author';
  who.textContent = `${author}:`;
  const body = document.createElement('span');
  body.className = 'text';
  body.textContent = text;
  return [who, body];
}

function entryElement(entry: FeedEntry): HTMLLIElement {
  const { text, kind } = describeEntry(entry);
  const li = document.createElement('li');
  li.className = `entry ${kind}`;
  li.dataset.id = entry.id;
  li.dataset.type = entry.type;
  if (kind === 'chat') li.append(...chatParts(entry.actor?.name ?? 'pinroom', text));
  else li.textContent = text;
  const time = document.createElement('time');
  time.dateTime = new Date(entry.ts).toISOString();
  time.textContent = new Date(entry.ts).toLocaleTimeString([], { hour: '2-digit', minute: '2-digit' });
  li.append(time);
  return li;
}

/** Membership entries keep the list of who is here honest: who left or was removed is not listed. */
function trackMembership(entry: FeedEntry): void {
  const known = readEntry(entry);
  let changed = true;
  if (known?.type === 'member.left' && entry.actor) departed.add(entry.actor.id);
  else if (known?.type === 'member.kicked') departed.add(known.payload.userId);
  else if (known?.type === 'members.left') for (const u of known.payload.users) departed.add(u.id);
  else if (known?.type === 'member.joined' && entry.actor) departed.delete(entry.actor.id);
  else if (known?.type === 'members.joined') for (const u of known.payload.users) departed.delete(u.id);
  else changed = false;
  if (changed) renderMembers(client.roster);
}

/** Live chat is read out as "Ada: hello"; reactions and membership changes are not read out. */
function announce(entry: FeedEntry): void {
  const known = readEntry(entry);
  if (known?.type !== 'chat.message') return;
  $('feed-announcer').textContent = `${entry.actor?.name ?? 'pinroom'}: ${known.payload.text}`;
}

function appendEntry(entry: FeedEntry, live: boolean): void {
  if (shown.has(entry.id)) return;
  shown.add(entry.id);
  const atBottom = feedList.scrollHeight - feedList.scrollTop - feedList.clientHeight < 40;
  // Keep stream order even if an entry arrives after a newer one was shown.
  const next = [...feedList.children].find((el) => compareIds((el as HTMLElement).dataset.id!, entry.id) > 0);
  feedList.insertBefore(entryElement(entry), next ?? null);
  oldestShown ??= entry.id;
  if (atBottom) feedList.scrollTop = feedList.scrollHeight;
  trackMembership(entry);
  if (live && entry.actor?.id !== client.user?.id) announce(entry);
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

// ---- what was typed and not yet acknowledged

function renderPending(items: OutboxItem[]): void {
  const list = $('pending-list');
  list.replaceChildren(
    ...items.map((item) => {
      const li = document.createElement('li');
      li.className = 'entry pending';
      li.dataset.clientMsgId = item.clientMsgId;
      li.dataset.type = item.type;
      const you = client.memberName ?? client.user?.name ?? 'You';
      if (item.type === 'chat.message') li.append(...chatParts(you, String(item.payload.text ?? '')));
      else li.textContent = `${you} reacted ${String(item.payload.emoji ?? '')}`;
      const state = document.createElement('span');
      state.className = 'sending';
      state.textContent = 'Sending…';
      li.append(state);
      return li;
    }),
  );
  list.hidden = items.length === 0;
}

client.on('outbox', (items) => renderPending(items));
client.on('sendFailed', (item, err) => {
  if (item.type === 'chat.message') {
    const input = $<HTMLInputElement>('chat-input');
    if (input.value === '') input.value = String(item.payload.text ?? '');
    showFieldErrors([{ field: 'chat-input', message: `Not sent: ${err.message}` }]);
  } else {
    banner(`Reaction not sent: ${err.message}`);
  }
});

client.on('entry', (entry, live) => appendEntry(entry, live));
client.on('reset', () => {
  resetFeed();
  void loadOlder();
});
client.on('presence', (roster) => renderMembers(roster));
client.on('room', (room) => renderRoom(room));
client.on('kicked', (event) => {
  sessionStorage.removeItem(ROOM_KEY);
  renderWho();
  $('gone-title').textContent = 'You were removed from the room';
  $('gone-text').textContent = event.bannedUntil
    ? `The host removed you. You can rejoin after ${new Date(event.bannedUntil).toLocaleTimeString()}.`
    : 'The host removed you from this room. You can join again.';
  show('gone');
});
client.on('ended', (event) => {
  sessionStorage.removeItem(ROOM_KEY);
  renderWho();
  $('gone-title').textContent = 'The room has ended';
  $('gone-text').textContent = event.reason === 'host_left' ? 'The host left and did not come back.' : 'Thanks for joining.';
  show('gone');
});

const chatForm = $<HTMLFormElement>('chat-form');
chatForm.addEventListener('submit', (event) => {
  event.preventDefault();
  clearErrors(chatForm);
  const input = $<HTMLInputElement>('chat-input');
  const text = input.value.trim();
  if (!text) return;
  if (text.length > Limits.chatTextMax) return showFieldErrors([{ field: 'chat-input', message: `A message has at most ${Limits.chatTextMax} characters.` }]);
  try {
    client.send('chat.message', { text });
    input.value = '';
  } catch (err) {
    showFieldErrors([{ field: 'chat-input', message: messageOf(err) }]);
  }
});
for (const button of document.querySelectorAll<HTMLButtonElement>('.reactions button')) {
  button.addEventListener('click', () => {
    try {
      client.send('reaction', { emoji: button.dataset.emoji! });
    } catch (err) {
      banner(messageOf(err));
    }
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
  if (client.role === 'host' && !confirm('You are the host: leaving ends the room for everyone. Leave and end it?')) return;
  sessionStorage.removeItem(ROOM_KEY);
  client.leaveRoom().catch(() => undefined);
  renderWho();
  show('home');
});
$('gone-home').addEventListener('click', () => show('home'));

const waitingRoom = setupWaitingRoom({ client, show, enterRoom, banner, messageOf });

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
