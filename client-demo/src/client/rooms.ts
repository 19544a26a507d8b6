/**
 * Rooms: the room this client is in (with the feed position it has shown),
 * the member list, and the room's requests and events. The first member page
 * comes with the join (or, on a rejoin, from `room:members`), further pages
 * on demand; `room:presence` keeps the list and the online count current (in
 * big rooms members get counts only, the host every change); presence that
 * arrives while a join is in flight is applied after the join's snapshot, not
 * lost.
 */
import type { MemberView, RoomJoined, RoomMembersPage, RoomPresence, RoomView, RoomWaitlistPage } from '../../../shared/schemas.ts';
import type { Connection, PinroomSocket } from './connection.ts';
import type { Emit, Roster } from './events.ts';

/** The room this client is in, the last feed position it has shown, and what it knows of the members. */
export interface CurrentRoom {
  room: RoomView;
  role: MemberView['role'];
  /** The name this user goes by in the room. */
  name: string;
  epoch: string | null;
  lastId: string | null;
  members: Map<string, MemberView>;
  online: number;
  memberCount: number;
  /** Cursor of the next member page; null when every member is loaded. */
  nextAfter: string | null;
}

export type Rooms = ReturnType<typeof createRooms>;

export function createRooms({
  connection,
  emit,
  roomGone,
}: {
  connection: Connection;
  emit: Emit;
  /** The server took this client out of a room (kicked, or the room ended). */
  roomGone: (roomId: string) => void;
}) {
  const { request } = connection;
  let current: CurrentRoom | null = null;
  /** `room:presence` that arrived while a `room:join` was in flight: applied after its snapshot. */
  let heldPresence: RoomPresence[] | null = null;

  function roster(): Roster {
    if (!current) return { members: [], online: 0, memberCount: 0, hasMore: false };
    return { members: [...current.members.values()], online: current.online, memberCount: current.memberCount, hasMore: current.nextAfter !== null };
  }

  function applyPresence(event: RoomPresence): void {
    if (!current || event.roomId !== current.room.id) return;
    for (const member of event.changes) current.members.set(member.userId, member);
    current.online = event.online;
    emit('presence', roster());
  }

  /**
   * `room:join`, then the room's state from its answer: the first member page
   * (read with `room:members` after a rejoin, whose answer carries none), the
   * counts, and the presence that arrived meanwhile.
   */
  async function joinAndLoad(pin: string, nickname: string | undefined, previous: { epoch: string | null; lastId: string | null } | null): Promise<RoomJoined> {
    heldPresence = [];
    let joined: RoomJoined;
    try {
      joined = await request('room:join', nickname ? { pin, nickname } : { pin });
      let page: RoomMembersPage | undefined = joined.members ? { members: joined.members, ...(joined.nextAfter ? { nextAfter: joined.nextAfter } : {}) } : undefined;
      page ??= await request('room:members', { roomId: joined.room.id });
      current = {
        room: joined.room,
        role: joined.role,
        name: joined.name,
        epoch: previous ? previous.epoch : (joined.feed?.epoch ?? null),
        lastId: previous ? previous.lastId : (joined.feed?.lastId ?? null),
        members: new Map(page.members.map((m) => [m.userId, m])),
        online: joined.online,
        memberCount: joined.memberCount,
        nextAfter: page.nextAfter ?? null,
      };
    } finally {
      const held = heldPresence;
      heldPresence = null;
      for (const event of held) applyPresence(event);
    }
    emit('room', joined.room);
    emit('presence', roster());
    return joined;
  }

  /** Put the room listeners on a new socket. */
  function wire(s: PinroomSocket): void {
    s.on('room:presence', (event) => {
      if (heldPresence) heldPresence.push(event);
      else applyPresence(event);
    });
    s.on('room:updated', ({ room }) => {
      if (current && room.id === current.room.id) {
        current.room = room;
        emit('room', room);
      }
    });
    // Only about the room this client is in: one it has just left (a host's leave ends the room,
    // and the ending reaches its socket too) is no news to the page.
    s.on('room:kicked', (event) => {
      roomGone(event.roomId);
      if (!current || event.roomId !== current.room.id) return;
      current = null;
      emit('kicked', event);
    });
    s.on('room:waiting', (notice) => emit('waiting', notice));
    s.on('room:admitted', (event) => emit('admitted', event));
    s.on('room:denied', (event) => emit('denied', event));
    s.on('room:ended', (event) => {
      roomGone(event.roomId);
      if (!current || event.roomId !== current.room.id) return;
      current = null;
      emit('ended', event);
    });
  }

  const roomId = () => current?.room.id;

  return {
    get current() {
      return current;
    },
    /** Forget the room (left, signed out, or gone while away). */
    forget(): void {
      current = null;
    },
    roster,
    joinAndLoad,
    wire,

    async createRoom(title: string, maxMembers?: number, approval = false): Promise<RoomView> {
      const { room } = await request('room:create', { title, ...(maxMembers ? { maxMembers } : {}), ...(approval ? { approval } : {}) });
      return room;
    },

    /** Load the next page of members (big rooms); resolves the roster. */
    async loadMoreMembers(): Promise<Roster> {
      if (!current || current.nextAfter === null) return roster();
      const id = current.room.id;
      const page = await request('room:members', { roomId: id, after: current.nextAfter });
      if (!current || current.room.id !== id) return roster();
      // Presence seen since is newer than the page: keep it.
      for (const member of page.members) if (!current.members.has(member.userId)) current.members.set(member.userId, member);
      current.nextAfter = page.nextAfter ?? null;
      emit('presence', roster());
      return roster();
    },

    async start(): Promise<void> {
      const id = roomId();
      if (id) await request('room:start', { roomId: id });
    },
    async lock(locked: boolean): Promise<void> {
      const id = roomId();
      if (id) await request('room:lock', { roomId: id, locked });
    },
    async kick(userId: string, banSeconds?: number): Promise<void> {
      const id = roomId();
      if (id) await request('room:kick', banSeconds ? { roomId: id, userId, banSeconds } : { roomId: id, userId });
    },
    async end(): Promise<void> {
      const id = roomId();
      if (id) await request('room:end', { roomId: id });
    },
    /** Host: approval mode on or off. */
    async setApproval(approval: boolean): Promise<void> {
      const id = roomId();
      if (id) await request('room:update', { roomId: id, approval });
    },
    /** Host: one page of the waiting room, longest waiting first. */
    async waitlist(after?: string): Promise<RoomWaitlistPage> {
      const id = roomId();
      if (!id) return { waiting: [], count: 0 };
      return request('room:waitlist', after ? { roomId: id, after } : { roomId: id });
    },
    async admit(userId: string): Promise<void> {
      const id = roomId();
      if (id) await request('room:admit', { roomId: id, userId });
    },
    async deny(userId: string): Promise<void> {
      const id = roomId();
      if (id) await request('room:deny', { roomId: id, userId });
    },
  };
}
