/**
 * The relay as a real child process (`node out/node/src-main/cli/main.js relay …`), as users run
 * it: password via the environment, `--port 0`, address parsed from the `listening on` line.
 */
import { relayTestArgs } from './relay-data-dir.js';
import { spawn, type ChildProcess } from 'node:child_process';
import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import { TEST_PASSWORD } from './group.js';
import { Waiters } from './waiters.js';

export const CLI = join(process.cwd(), 'out', 'node', 'src-main', 'cli', 'main.js');

export interface RelayProcess {
  child: ChildProcess;
  host: string;
  port: number;
  /** Everything the process wrote to stdout. */
  stdout(): string;
  /** Parsed JSON log lines from stderr. */
  logs(): Record<string, unknown>[];
  /**
   * Resolves once a log line matching `predicate` has been read. stderr is its own pipe: a line the
   * relay wrote before a frame can still be unread when the frame arrives, so wait, never just look.
   */
  waitForLog(
    predicate: (line: Record<string, unknown>) => boolean,
    what: string,
    timeoutMs?: number,
  ): Promise<void>;
  /** Resident set size of the relay process, from /proc (MiB). */
  rssMiB(): number;
  alive(): boolean;
  /** Sends `signal` (default SIGTERM) and resolves with the exit code. */
  stop(signal?: NodeJS.Signals, timeoutMs?: number): Promise<number | null>;
}

export async function startRelay(
  bundle: string,
  args: string[] = [],
  timeoutMs = 30_000,
): Promise<RelayProcess> {
  const child = spawn(
    process.execPath,
    [CLI, 'relay', '--bundle', bundle, '--port', '0', ...relayTestArgs(bundle, args)],
    {
      env: { ...process.env, SECURECHAT_PASSWORD: TEST_PASSWORD, NO_COLOR: '1' },
      stdio: ['ignore', 'pipe', 'pipe'],
    },
  );
  let out = '';
  let err = '';
  let exitCode: number | null | undefined;
  const logWaiters = new Waiters();
  // 'close', not 'exit': 'exit' can come before the last stdout/stderr bytes are read, and tests
  // read the logs right after the relay exits.
  const exited = new Promise<number | null>((resolve) =>
    child.on('close', (code) => {
      exitCode = code;
      resolve(code);
    }),
  );
  const { stdout, stderr } = child;
  if (!stdout || !stderr) throw new Error('relay child without pipes');
  stdout.setEncoding('utf8').on('data', (d: string) => (out += d));
  stderr.setEncoding('utf8').on('data', (d: string) => {
    err += d;
    logWaiters.notify();
  });
  const address = await new Promise<{ host: string; port: number }>((resolve, reject) => {
    const timer = setTimeout(() => reject(new Error(`relay did not start: ${err}`)), timeoutMs);
    const check = (): void => {
      const m = /^listening on (\S+):(\d+)\n/.exec(out);
      if (m) {
        clearTimeout(timer);
        resolve({ host: m[1] ?? '', port: Number(m[2]) });
      }
    };
    stdout.on('data', check);
    void exited.then((code) => {
      clearTimeout(timer);
      reject(new Error(`relay exited with ${code} before listening: ${err}`));
    });
  });
  // Only complete lines: a chunk can end mid-line.
  const logs = (): Record<string, unknown>[] =>
    err
      .split('\n')
      .slice(0, -1)
      .filter((l) => l.startsWith('{'))
      .map((l) => JSON.parse(l) as Record<string, unknown>);
  return {
    child,
    ...address,
    stdout: () => out,
    logs,
    waitForLog: (predicate, what, logTimeoutMs = 20_000) =>
      logWaiters.until(
        () => logs().some(predicate),
        logTimeoutMs,
        () => `relay: timed out waiting for the log line ${what}; stderr: ${err.slice(-2000)}`,
      ),
    rssMiB: () => {
      const status = readFileSync(`/proc/${child.pid}/status`, 'utf8');
      const kb = Number(/VmRSS:\s+(\d+)\s+kB/.exec(status)?.[1]);
      return kb / 1024;
    },
    alive: () => exitCode === undefined,
    stop: async (signal = 'SIGTERM', stopTimeoutMs = 15_000) => {
      if (exitCode !== undefined) return exitCode;
      child.kill(signal);
      const timer = setTimeout(() => child.kill('SIGKILL'), stopTimeoutMs);
      const code = await exited;
      clearTimeout(timer);
      return code;
    },
  };
}
