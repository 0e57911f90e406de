/**
 * The relay and terminal clients as real child processes (out/node, built by global-setup), the
 * way users run them: stdin drives a member, its --json stdout lines are parsed into events.
 */
import { relayTestArgs } from './relay-data-dir.js';
import { Waiters } from './waiters.js';
import { execFileSync, spawn, type ChildProcessWithoutNullStreams } from 'node:child_process';
import { cpSync, mkdtempSync, symlinkSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { createInterface } from 'node:readline';
import { TEST_PASSWORD } from './group.js';

let snapshot: string | undefined;

/**
 * A private copy of out/node, taken once per test file: other suites (and people) rebuild out/node
 * while these tests run, and a child process that loads a module mid-rewrite fails for reasons that
 * have nothing to do with the client. The copy is checked by loading the commands used.
 */
function cli(): string {
  if (snapshot) return snapshot;
  let lastError: unknown;
  for (let attempt = 0; attempt < 5; attempt++) {
    const dir = mkdtempSync(join(tmpdir(), 'scx-chat-build-'));
    cpSync(join(process.cwd(), 'out', 'node'), dir, { recursive: true });
    writeFileSync(join(dir, 'package.json'), '{"type":"module"}\n');
    symlinkSync(join(process.cwd(), 'node_modules'), join(dir, 'node_modules'), 'dir');
    const main = join(dir, 'src-main', 'cli', 'main.js');
    try {
      for (const cmd of [['chat'], ['relay'], ['group', 'publish']])
        execFileSync(process.execPath, [main, ...cmd, '--help'], { stdio: 'pipe' });
      snapshot = main;
      return main;
    } catch (err) {
      lastError = err;
      execFileSync('sleep', ['1']);
    }
  }
  throw new Error(`cannot get a working copy of the CLI build: ${String(lastError)}`);
}

function childEnv(): NodeJS.ProcessEnv {
  return { ...process.env, SECURECHAT_PASSWORD: TEST_PASSWORD, NO_COLOR: '1' };
}

export interface RelayProcess {
  host: string;
  port: number;
  address: string;
  proc: ChildProcessWithoutNullStreams;
  exited: Promise<number | null>;
  kill(signal?: NodeJS.Signals): Promise<void>;
}

/** Relay flags that keep tests quick: PRESENCE not coalesced, no rate limit. */
export const FAST_RELAY_FLAGS = ['--presence-interval-ms', '0', '--rate-frames', '0', '--log-level', 'warn'];

export async function startRelay(
  bundle: string,
  port = 0,
  extra: string[] = FAST_RELAY_FLAGS,
): Promise<RelayProcess> {
  const proc = spawn(
    process.execPath,
    [cli(), 'relay', '--bundle', bundle, '--port', String(port), ...relayTestArgs(bundle, extra)],
    {
      env: childEnv(),
    },
  );
  let stderr = '';
  proc.stderr.on('data', (d: Buffer) => (stderr += d.toString()));
  // 'close' (stdio drained), not 'exit', as for ChatProcess.
  const exited = new Promise<number | null>((resolve) => proc.once('close', (code) => resolve(code)));
  const address = await new Promise<string>((resolve, reject) => {
    const rl = createInterface({ input: proc.stdout });
    rl.once('line', (line) => {
      const m = /^listening on (\S+):(\d+)$/.exec(line);
      if (m) resolve(`${m[1]}:${m[2]}`);
      else reject(new Error(`unexpected relay output: ${line}`));
    });
    void exited.then((code) => reject(new Error(`relay exited (${code}) before listening: ${stderr}`)));
  });
  const [host, p] = address.split(':') as [string, string];
  return {
    host,
    port: Number(p),
    address,
    proc,
    exited,
    async kill(signal = 'SIGTERM') {
      if (proc.exitCode === null && proc.signalCode === null) proc.kill(signal);
      await exited;
    },
  };
}

/** Runs one CLI command to its end (stdin closed), e.g. `group publish`. */
export function runCli(
  args: string[],
  timeoutMs = 60_000,
): Promise<{ code: number | null; stdout: string; stderr: string }> {
  const proc = spawn(process.execPath, [cli(), ...args], { env: childEnv() });
  proc.stdin.end();
  let stdout = '';
  let stderr = '';
  proc.stdout.on('data', (d: Buffer) => (stdout += d.toString()));
  proc.stderr.on('data', (d: Buffer) => (stderr += d.toString()));
  return new Promise((resolve, reject) => {
    const timer = setTimeout(() => {
      proc.kill('SIGKILL');
      reject(new Error(`securechat-x ${args.join(' ')} did not exit within ${timeoutMs} ms: ${stderr}`));
    }, timeoutMs);
    proc.once('close', (code) => {
      clearTimeout(timer);
      resolve({ code, stdout, stderr });
    });
  });
}

/** `group publish` of `roster` to `relay`, logged in with `bundle`. */
export function publishRoster(
  roster: string,
  bundle: string,
  relay: string,
): Promise<{ code: number | null; stdout: string; stderr: string }> {
  return runCli(['group', 'publish', '--roster', roster, '--bundle', bundle, '--relay', relay]);
}

/** One parsed --json line. */
export type ChatJsonEvent = { event: string } & Record<string, unknown>;

export interface ChatProcessOptions {
  extraArgs?: string[];
  /**
   * The member's --state-dir. Default: a new empty folder per process, so that each start is a
   * member without history (as before the state store existed); a restart test passes the same one.
   */
  stateDir?: string;
  /** false: human output (its lines land in `badLines`). Default true: --json. */
  json?: boolean;
  /** Short timeouts so failover and reconnect happen quickly in tests. */
  fast?: boolean;
}

export class ChatProcess {
  readonly events: ChatJsonEvent[] = [];
  /** stdout lines that were not a JSON object (the contract says there are none). */
  readonly badLines: string[] = [];
  stderr = '';
  readonly exited: Promise<number | null>;
  private readonly waiters = new Waiters();

  private constructor(
    readonly name: string,
    readonly proc: ChildProcessWithoutNullStreams,
  ) {
    // 'close', not 'exit': 'exit' can come before the last stdout lines are read, and tests check
    // the final state and errors as soon as the process has exited.
    this.exited = new Promise((resolve) => proc.once('close', (code) => resolve(code)));
    createInterface({ input: proc.stdout }).on('line', (line) => {
      try {
        const parsed: unknown = JSON.parse(line);
        if (parsed === null || typeof parsed !== 'object' || Array.isArray(parsed))
          throw new Error('not an object');
        this.events.push(parsed as ChatJsonEvent);
      } catch {
        this.badLines.push(line);
      }
      this.waiters.notify();
    });
    proc.stderr.on('data', (d: Buffer) => {
      this.stderr += d.toString();
      this.waiters.notify();
    });
    void this.exited.then(() => {
      this.waiters.notify();
    });
  }

  static start(name: string, bundle: string, relay: string, options: ChatProcessOptions = {}): ChatProcess {
    const fast =
      options.fast === false
        ? []
        : ['--key-timeout-ms', '2000', '--reconnect-min-ms', '100', '--reconnect-max-ms', '1000'];
    const stateDir = options.stateDir ?? mkdtempSync(join(tmpdir(), `scx-state-${name}-`));
    const proc = spawn(
      process.execPath,
      [
        cli(),
        'chat',
        '--bundle',
        bundle,
        '--relay',
        relay,
        ...(options.json === false ? [] : ['--json']),
        '--state-dir',
        stateDir,
        ...fast,
        ...(options.extraArgs ?? []),
      ],
      { env: childEnv() },
    );
    return new ChatProcess(name, proc);
  }

  send(text: string): void {
    this.proc.stdin.write(`${text}\n`);
  }

  /** End of input: the client sends what is queued, says DISCONNECT and exits. */
  end(): void {
    this.proc.stdin.end();
  }

  of(kind: string): ChatJsonEvent[] {
    return this.events.filter((e) => e.event === kind);
  }

  messages(): { from: string; text: string; epoch: number; seq: number }[] {
    return this.of('message') as unknown as { from: string; text: string; epoch: number; seq: number }[];
  }

  lastKey(): { epoch: number; safetyNumber: string; members: string[] } | undefined {
    const keys = this.of('key');
    return keys[keys.length - 1] as unknown as
      { epoch: number; safetyNumber: string; members: string[] } | undefined;
  }

  get state(): string | undefined {
    const s = this.of('state');
    return s[s.length - 1]?.state as string | undefined;
  }

  /** Resolves once `predicate` holds over the events so far; rejects after `timeoutMs`. */
  waitFor(predicate: (p: ChatProcess) => boolean, what: string, timeoutMs = 20_000): Promise<void> {
    return this.waiters.until(
      () => predicate(this),
      timeoutMs,
      () =>
        `${this.name}: timed out waiting for ${what}\nevents: ${JSON.stringify(this.events.slice(-15))}\nstderr: ${this.stderr.slice(-2000)}`,
    );
  }

  /** Waits until this member chats under a key whose member list is exactly `members`. */
  /**
   * Waits until this member chats under a key sealed for every one of `members` (M is the whole
   * roster, online or not: protocol v2)
   */
  waitForKey(members: string[], timeoutMs = 20_000): Promise<void> {
    const want = [...members].sort().join(',');
    return this.waitFor(
      (p) => p.state === 'Chatting' && members.every((m) => (p.lastKey()?.members ?? []).includes(m)),
      `a key over ${want}`,
      timeoutMs,
    );
  }

  waitForMessage(from: string, text: string, timeoutMs = 20_000): Promise<void> {
    return this.waitFor(
      (p) => p.messages().some((m) => m.from === from && m.text === text),
      `message "${text}" from ${from}`,
      timeoutMs,
    );
  }

  async kill(signal: NodeJS.Signals = 'SIGTERM'): Promise<number | null> {
    if (this.proc.exitCode === null && this.proc.signalCode === null) this.proc.kill(signal);
    return this.exited;
  }
}

/**
 * Waits until every process chats under one and the same key over (at least) `members`. Members
 * that connect at the same moment may each find themselves alone and key alone; the KeyConflict
 * that follows is settled by a new epoch, so one member's first key is not yet the group's.
 */
export async function waitForAgreedKey(
  procs: readonly ChatProcess[],
  members: string[],
  timeoutMs = 30_000,
): Promise<{ epoch: number; safetyNumber: string }> {
  const agreed = (): { epoch: number; safetyNumber: string } | undefined => {
    const keys = procs.map((p) => (p.state === 'Chatting' ? p.lastKey() : undefined));
    const first = keys[0];
    if (!first || !members.every((m) => first.members.includes(m))) return undefined;
    return keys.every((k) => k?.epoch === first.epoch && k.safetyNumber === first.safetyNumber)
      ? first
      : undefined;
  };
  const deadline = Date.now() + timeoutMs;
  for (;;) {
    const key = agreed();
    if (key) return { epoch: key.epoch, safetyNumber: key.safetyNumber };
    const left = deadline - Date.now();
    if (left <= 0) throw new Error(`timed out waiting for one key over ${members.join(',')}`);
    // Any process's next event may be the one that makes them agree.
    const seen = procs.map((p) => p.events.length);
    await Promise.race(
      procs.map((p, i) => p.waitFor((x) => x.events.length > (seen[i] as number), 'an event', left)),
    );
  }
}

/** Stops whatever is still running at the end of a test. */
export async function cleanup(...things: ({ kill(): Promise<unknown> } | undefined)[]): Promise<void> {
  await Promise.all(things.map((t) => t?.kill().catch(() => undefined)));
}
