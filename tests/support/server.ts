/**
 * Real pinroom server processes for end-to-end tests: `node --import tsx
 * server/main.ts` with its own environment, on a free port.
 */
import { spawn, type ChildProcess } from 'node:child_process';
import { once } from 'node:events';

const root = new URL('../..', import.meta.url).pathname;

export interface TestServer {
  url: string;
  port: number;
  process: ChildProcess;
  /** Everything the process printed so far. */
  output(): string;
  /** Send a signal and wait for the exit (and the output); resolves the exit code (or the signal name). */
  stop(signal?: NodeJS.Signals): Promise<number | string>;
  /** SIGKILL, as a crash. */
  kill(): Promise<void>;
}

export interface StartOptions {
  /** Wait for `/readyz` 200. @default true */
  waitReady?: boolean;
  timeoutMs?: number;
}

/** Spawn a server with `env` and wait until it listens (and is ready). */
export async function startTestServer(env: Record<string, string>, options: StartOptions = {}): Promise<TestServer> {
  const timeoutMs = options.timeoutMs ?? 30_000;
  const child = spawn(process.execPath, ['--import', 'tsx', 'server/main.ts'], {
    cwd: root,
    env: { PATH: process.env.PATH ?? '', ...env, LOG_LEVEL: env.LOG_LEVEL && env.LOG_LEVEL !== 'silent' ? env.LOG_LEVEL : 'info' },
    stdio: ['ignore', 'pipe', 'pipe'],
  });
  let output = '';
  let resolveUrl: (url: string) => void;
  const listening = new Promise<string>((resolve) => {
    resolveUrl = resolve;
  });
  const onData = (chunk: Buffer) => {
    output += chunk.toString();
    const match = /"url":"(http:\/\/[^"]+)"[^\n]*"msg":"pinroom listening/.exec(output);
    if (match) resolveUrl(match[1]!);
  };
  child.stdout!.on('data', onData);
  child.stderr!.on('data', onData);
  const exited = once(child, 'exit');
  // Output can still be in the pipes at 'exit'; 'close' comes once they are drained (bounded:
  // a child left running, a worker the primary could not stop, may hold them open).
  const drained = once(child, 'close');
  const outputComplete = () => Promise.race([drained, new Promise((r) => setTimeout(r, 2000).unref())]);

  const deadline = new Promise<never>((_, reject) => setTimeout(() => reject(new Error(`server did not start within ${timeoutMs} ms:\n${output}`)), timeoutMs).unref());
  const early = exited.then(([code]) => {
    throw new Error(`server exited early with ${code}:\n${output}`);
  });
  const url = await Promise.race([listening, deadline, early]);
  early.catch(() => undefined);
  if (options.waitReady !== false) {
    await Promise.race([waitForReady(url, timeoutMs), deadline]);
  }
  const port = Number(new URL(url).port);

  return {
    url,
    port,
    process: child,
    output: () => output,
    async stop(signal = 'SIGTERM') {
      if (child.exitCode !== null || child.signalCode !== null) return child.exitCode ?? child.signalCode!;
      child.kill(signal);
      const [code, sig] = (await exited) as [number | null, NodeJS.Signals | null];
      await outputComplete();
      return code ?? sig!;
    },
    async kill() {
      if (child.exitCode !== null || child.signalCode !== null) return;
      child.kill('SIGKILL');
      await exited;
    },
  };
}

export async function waitForReady(url: string, timeoutMs = 15_000): Promise<void> {
  const end = Date.now() + timeoutMs;
  for (;;) {
    try {
      const res = await fetch(`${url}/readyz`, { signal: AbortSignal.timeout(5000) });
      if (res.status === 200) return;
    } catch {
      // not listening yet
    }
    if (Date.now() > end) throw new Error(`${url}/readyz not 200 within ${timeoutMs} ms`);
    await new Promise((r) => setTimeout(r, 100));
  }
}
