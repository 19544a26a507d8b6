/**
 * Password hashing off the event loop *and* behind it. `crypto.scrypt` runs on
 * the libuv thread pool at the same scheduling priority as the event loop, so
 * on a busy machine (or one core) a login flood still takes CPU time the
 * sockets need. Here each derivation runs in one of `size` worker threads
 * whose own priority is lowered (nice `NICE` on Linux, via the thread's id),
 * so the kernel gives the event loop the CPU first and hashing the rest.
 * Elsewhere (no `/proc/thread-self`) the workers keep the normal priority.
 *
 * Workers start on the first hash (a node that never hashes pays nothing),
 * keep the process alive only while they hash, and are replaced if one
 * dies; `stop()` terminates them. Callers bound concurrency (hash slots), so
 * jobs rarely queue here; they would, in order.
 */
import { Worker } from 'node:worker_threads';
import type { Derive, DeriveJob } from './passwords.ts';

/** Nice value of the hashing threads (19: the lowest priority). */
const NICE = 19;

// CommonJS source evaluated in the worker: no loader or build step involved.
const WORKER_SOURCE = `
const { parentPort, workerData } = require('node:worker_threads');
const { scryptSync } = require('node:crypto');
try {
  const tid = Number(require('node:fs').readlinkSync('/proc/thread-self').split('/').pop());
  require('node:os').setPriority(tid, workerData.nice);
} catch {}
parentPort.on('message', ({ id, password, salt, keyBytes, options }) => {
  try {
    const key = scryptSync(password, Buffer.from(salt), keyBytes, options);
    parentPort.postMessage({ id, key });
  } catch (err) {
    parentPort.postMessage({ id, error: String((err && err.message) || err) });
  }
});
`;

interface Pending {
  job: DeriveJob;
  resolve: (key: Buffer) => void;
  reject: (err: Error) => void;
}

interface Slot {
  worker: Worker;
  busy: (Pending & { id: number }) | undefined;
}

export type HashWorkers = ReturnType<typeof createHashWorkers>;

export function createHashWorkers({ size }: { size: number }) {
  const slots: Slot[] = [];
  const queue: Pending[] = [];
  let nextId = 0;
  let stopped = false;

  function spawn(): Slot {
    const slot: Slot = { worker: new Worker(WORKER_SOURCE, { eval: true, workerData: { nice: NICE } }), busy: undefined };
    slot.worker.on('message', (msg: { id: number; key?: Uint8Array; error?: string }) => {
      const done = slot.busy;
      if (!done || done.id !== msg.id) return;
      slot.busy = undefined;
      slot.worker.unref();
      if (msg.key) done.resolve(Buffer.from(msg.key));
      else done.reject(new Error(`scrypt failed: ${msg.error}`));
      pump();
    });
    const lost = (err: Error) => {
      const index = slots.indexOf(slot);
      if (index >= 0) slots.splice(index, 1);
      slot.busy?.reject(err);
      slot.busy = undefined;
      pump();
    };
    slot.worker.on('error', lost);
    slot.worker.on('exit', (code) => lost(new Error(`hash worker exited (${code})`)));
    // Idle workers never keep the process alive; a worker with a job does (pump).
    // After the listeners: adding a 'message' listener refs the worker again.
    slot.worker.unref();
    slots.push(slot);
    return slot;
  }

  function pump(): void {
    while (!stopped && queue.length > 0) {
      const slot = slots.find((s) => !s.busy) ?? (slots.length < size ? spawn() : undefined);
      if (!slot) return;
      const pending = queue.shift()!;
      const id = nextId++;
      slot.busy = { ...pending, id };
      slot.worker.ref();
      const { password, salt, keyBytes, options } = pending.job;
      slot.worker.postMessage({ id, password, salt, keyBytes, options });
    }
  }

  const derive: Derive = (job) =>
    new Promise<Buffer>((resolve, reject) => {
      if (stopped) return reject(new Error('hash workers stopped'));
      queue.push({ job, resolve, reject });
      pump();
    });

  return {
    derive,
    /** Terminate the workers; jobs still queued are refused. */
    async stop(): Promise<void> {
      stopped = true;
      for (const pending of queue.splice(0)) pending.reject(new Error('hash workers stopped'));
      await Promise.all(slots.splice(0).map((s) => s.worker.terminate()));
    },
  };
}
