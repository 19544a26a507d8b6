/**
 * Approval mode in the demo: the joiner's waiting screen, and the host's
 * waiting list with Admit / Deny and the approval switch. Self-contained: the
 * page hands it a few of its functions and calls `waitFor` when a join
 * answers `awaiting_approval`.
 */
import { PinroomError, type PinroomClient } from './pinroom-client.ts';

const $ = <T extends HTMLElement = HTMLElement>(id: string) => document.getElementById(id) as T;

export interface WaitingRoomDeps {
  client: PinroomClient;
  show(screen: 'waiting' | 'gone'): void;
  enterRoom(pin: string, nickname?: string): Promise<void>;
  banner(text: string): void;
  messageOf(err: unknown): string;
}

export function setupWaitingRoom({ client, show, enterRoom, banner, messageOf }: WaitingRoomDeps) {
  /** The PIN this page waits to be admitted to, if any, and the nickname it asked with. */
  let waitingPin: string | null = null;
  let waitingNickname: string | undefined;

  client.on('admitted', () => {
    if (waitingPin === null) return;
    const pin = waitingPin;
    waitingPin = null;
    enterRoom(pin, waitingNickname).catch((err: unknown) => banner(messageOf(err)));
  });
  client.on('denied', () => {
    if (waitingPin === null) return;
    waitingPin = null;
    $('gone-title').textContent = 'The host did not let you in';
    $('gone-text').textContent = 'You can ask again by entering the PIN.';
    show('gone');
  });
  $('waiting-cancel').addEventListener('click', () => {
    waitingPin = null;
    location.assign('/');
  });

  // ---- host: the list, first page only (the count says how many more)
  const list = $<HTMLUListElement>('waiting-list');
  let refreshing = false;
  let again = false;
  async function refresh(): Promise<void> {
    if (client.role !== 'host') return;
    if (refreshing) {
      again = true;
      return;
    }
    refreshing = true;
    try {
      const page = await client.waitlist();
      list.replaceChildren();
      for (const user of page.waiting) {
        const li = document.createElement('li');
        li.dataset.userId = user.userId;
        const name = document.createElement('span');
        name.className = 'name';
        name.textContent = user.name;
        const admit = document.createElement('button');
        admit.type = 'button';
        admit.textContent = 'Admit';
        admit.setAttribute('aria-label', `Admit ${user.name}`);
        admit.addEventListener('click', () => void decide(() => client.admit(user.userId)));
        const deny = document.createElement('button');
        deny.type = 'button';
        deny.className = 'danger';
        deny.textContent = 'Deny';
        deny.setAttribute('aria-label', `Deny ${user.name}`);
        deny.addEventListener('click', () => void decide(() => client.deny(user.userId)));
        li.append(name, admit, deny);
        list.append(li);
      }
      $('waiting-count').textContent = String(page.count);
      $('waiting-panel').hidden = page.count === 0 && !client.room?.approval;
    } catch (err) {
      banner(messageOf(err));
    } finally {
      refreshing = false;
      if (again) {
        again = false;
        void refresh();
      }
    }
  }
  async function decide(action: () => Promise<void>): Promise<void> {
    try {
      await action();
    } catch (err) {
      banner(messageOf(err));
    }
    await refresh();
  }

  client.on('waiting', () => void refresh());
  client.on('room', (room) => {
    const host = client.role === 'host';
    const button = $<HTMLButtonElement>('btn-approval');
    button.hidden = !host;
    // One label; the state is aria-pressed alone (styles.css draws it), so it is announced once.
    button.setAttribute('aria-pressed', String(room.approval));
    if (host) void refresh();
    else $('waiting-panel').hidden = true;
  });
  $('btn-approval').addEventListener('click', () => {
    client.setApproval(!client.room?.approval).catch((err: unknown) => banner(messageOf(err)));
  });

  return {
    /** After a failed join: true (and the waiting screen shown) when the joiner now waits for the host. */
    waitFor(err: unknown, pin: string, title: string, nickname?: string): boolean {
      if (!(err instanceof PinroomError) || err.code !== 'awaiting_approval') return false;
      waitingPin = pin;
      waitingNickname = nickname;
      $('waiting-room-title').textContent = title;
      show('waiting');
      return true;
    },
  };
}
