/**
 * Chat client benchmarks: the relay as a child process (`securechat-x relay`), members as
 * in-process ChatEngines in this process (real TCP on 127.0.0.1, real RSA, nothing stubbed).
 *
 * - keysetup.ms.N (N = 3, 10, 50): N-1 members hold a key; the N-th connects. From the first
 *   moment a member holds the PRESENCE listing all N (everyone connected) to every member holding
 *   the same key over all N. Median of a few rounds (the N-th member leaves and comes back).
 * - e2e.p50_ms / e2e.p99_ms: 1 sender -> 2 receivers at 100 msgs/s, send() to decrypted delivery.
 * - sender.msgs_per_s / sender.lost: one sender pushes a burst as fast as it can; signed
 *   messages per second until the last one is delivered to both receivers, and how many never were.
 */
import { spawn, type ChildProcess } from 'node:child_process';
import { once } from 'node:events';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { dirname, join } from 'node:path';
import { createInterface } from 'node:readline';
import { fileURLToPath } from 'node:url';
import { ChatEngine } from '../../src-main/client/engine.js';
import type { EngineEvent } from '../../src-main/client/engine-types.js';
import {
  createGroupCa,
  issueCertificate,
  LocalIdentity,
  MIN_KDF_ITERATIONS,
  writeBundle,
} from '../../src-main/core/pki/index.js';
import type { Certificate } from '../../src-main/core/pki/certificate.js';
import { buildRoster, signRoster } from '../../src-main/core/roster/index.js';
import { percentile, type BenchResult, type BenchSuite } from '../harness.js';

const CLI = fileURLToPath(new URL('../../src-main/cli/main.js', import.meta.url));
const PASSWORD = 'client bench password';
const SIZES = [3, 10, 50];
const ROUNDS: Record<number, number> = { 3: 7, 10: 5, 50: 3 };
const E2E_RATE = 100;
const E2E_MESSAGES = 400;
// Long enough (several seconds) that the relay's rate-limit burst allowance cannot flatter the sustained rate.
const BURST = 24_000;
const WAIT_MS = 60_000;

const sleep = (ms: number): Promise<void> => new Promise((r) => setTimeout(r, ms));

/** Resolves as soon as `done()` holds (checked every millisecond or so), or after `timeoutMs`. */
async function poll(done: () => boolean, timeoutMs: number): Promise<void> {
  const until = performance.now() + timeoutMs;
  while (!done() && performance.now() < until) await sleep(1);
}

interface Relay {
  port: number;
  stop(): Promise<void>;
}

async function startRelay(bundle: string): Promise<Relay> {
  const proc: ChildProcess = spawn(
    process.execPath,
    [
      CLI,
      'relay',
      '--bundle',
      bundle,
      '--port',
      '0',
      '--log-level',
      'warn',
      // The relay's default limits (the goals must hold for the relay people actually run), but
      // for the admission cap per address: 50 members connecting at once from this one host are
      // not a flood, and waiting out that cap is not key establishment.
      '--max-pending-per-address',
      '128',
      // The group's roster, written beside the relay bundle by makeGroup.
      '--roster',
      join(dirname(bundle), 'roster.scx'),
    ],
    { env: { ...process.env, SECURECHAT_PASSWORD: PASSWORD }, stdio: ['ignore', 'pipe', 'inherit'] },
  );
  const [line] = (await once(createInterface({ input: proc.stdout as NodeJS.ReadableStream }), 'line')) as [
    string,
  ];
  const m = /^listening on (\S+):(\d+)$/.exec(line);
  if (!m) throw new Error(`relay said: ${line}`);
  return {
    port: Number(m[2]),
    async stop() {
      if (proc.exitCode !== null) return;
      proc.kill('SIGTERM');
      await Promise.race([once(proc, 'exit'), sleep(5000)]);
      if (proc.exitCode === null) proc.kill('SIGKILL');
    },
  };
}

/** One in-process member and a way to wait on its events. */
class Member {
  readonly engine: ChatEngine;
  private readonly waiters = new Set<() => void>();
  onEvent: ((e: EngineEvent) => void) | undefined;

  constructor(
    readonly identity: LocalIdentity,
    port: number,
  ) {
    this.engine = new ChatEngine({
      identity,
      relay: { host: '127.0.0.1', port },
      keyEstablishmentTimeoutMs: 10_000,
      signPipelineDepth: 32,
    });
    this.engine.on((e) => {
      this.onEvent?.(e);
      for (const w of this.waiters) w();
    });
  }

  until(predicate: () => boolean, what: string, timeoutMs = WAIT_MS): Promise<void> {
    return new Promise((resolve, reject) => {
      const check = () => {
        if (!predicate()) return;
        clearTimeout(timer);
        this.waiters.delete(check);
        resolve();
      };
      const timer = setTimeout(() => {
        this.waiters.delete(check);
        reject(new Error(`${this.identity.name}: no ${what} within ${timeoutMs} ms`));
      }, timeoutMs);
      this.waiters.add(check);
      check();
    });
  }

  holdsKeyOver(n: number): boolean {
    return this.engine.state === 'Chatting' && this.engine.key?.members.length === n;
  }
}

function makeGroup(n: number, dir: string): { identities: LocalIdentity[]; relayBundle: string } {
  const ca = createGroupCa({ name: 'Client Bench CA' });
  const relay = issueCertificate(ca, { name: 'relay', role: 'relay' });
  const relayBundle = join(dir, 'relay.p12');
  writeFileSync(
    relayBundle,
    writeBundle(relay, ca.certificate, PASSWORD, { kdfIterations: MIN_KDF_ITERATIONS }),
  );
  const identities: LocalIdentity[] = [];
  const certificates: Certificate[] = [];
  for (let i = 0; i < n; i++) {
    const cred = issueCertificate(ca, { name: `m${String(i).padStart(2, '0')}`, role: 'member' });
    certificates.push(cred.certificate);
    identities.push(
      LocalIdentity.fromBundle({
        certificate: cred.certificate,
        ca: ca.certificate,
        privateKeyPem: cred.privateKeyPem,
      }),
    );
  }
  const roster = buildRoster({
    ca: ca.certificate,
    name: 'Client Bench',
    members: certificates,
    relays: [relay.certificate],
  });
  writeFileSync(join(dir, 'roster.scx'), signRoster(roster, ca));
  return { identities, relayBundle };
}

const median = (xs: number[]): number => percentile(xs, 50);

/** keysetup.ms.N: see the file comment. */
async function keySetup(n: number, identities: LocalIdentity[], port: number): Promise<number> {
  const members = identities.slice(0, n - 1).map((id) => new Member(id, port));
  for (const m of members) m.engine.start();
  await Promise.all(members.map((m) => m.until(() => m.holdsKeyOver(n - 1), `key over ${n - 1}`)));
  const samples: number[] = [];
  try {
    for (let round = 0; round < (ROUNDS[n] ?? 3); round++) {
      let t0 = Number.NaN;
      const everyone = [...members, new Member(identities[n - 1] as LocalIdentity, port)];
      for (const m of everyone) {
        m.onEvent = (e) => {
          if (Number.isNaN(t0) && e.event === 'members' && e.members.length === n) t0 = performance.now();
        };
      }
      const last = everyone[n - 1] as Member;
      last.engine.start();
      await Promise.all(everyone.map((m) => m.until(() => m.holdsKeyOver(n), `key over ${n}`)));
      const t1 = performance.now();
      const numbers = new Set(everyone.map((m) => m.engine.key?.safetyNumber));
      if (numbers.size !== 1)
        throw new Error(`members disagree on the key after joining (${numbers.size} numbers)`);
      samples.push(t1 - t0);
      for (const m of everyone) m.onEvent = undefined;
      await last.engine.stop();
      await Promise.all(members.map((m) => m.until(() => m.holdsKeyOver(n - 1), `key over ${n - 1}`)));
    }
  } finally {
    await Promise.all(members.map((m) => m.engine.stop()));
  }
  return median(samples);
}

async function chatGroup(identities: LocalIdentity[], port: number): Promise<Member[]> {
  const members = identities.slice(0, 3).map((id) => new Member(id, port));
  for (const m of members) m.engine.start();
  await Promise.all(members.map((m) => m.until(() => m.holdsKeyOver(3), 'key over 3')));
  return members;
}

/** e2e.p50_ms / e2e.p99_ms: paced 1 -> 2. */
async function latency(members: Member[]): Promise<{ p50: number; p99: number; lost: number }> {
  const [sender, ...receivers] = members as [Member, ...Member[]];
  const sentAt = new Map<string, number>();
  const samples: number[] = [];
  let delivered = 0;
  for (const r of receivers) {
    r.onEvent = (e) => {
      if (e.event !== 'message') return;
      const t = sentAt.get(e.text);
      if (t !== undefined) {
        samples.push(performance.now() - t);
        delivered++;
      }
    };
  }
  const start = performance.now();
  for (let i = 0; i < E2E_MESSAGES; i++) {
    const due = start + (i * 1000) / E2E_RATE;
    const wait = due - performance.now();
    if (wait > 0) await sleep(wait);
    const text = `latency ${i}`;
    sentAt.set(text, performance.now());
    sender.engine.send(text);
  }
  const want = E2E_MESSAGES * receivers.length;
  await (receivers[0] as Member)
    .until(() => delivered >= want, 'all latency messages', 10_000)
    .catch(() => undefined);
  for (const r of receivers) r.onEvent = undefined;
  return { p50: percentile(samples, 50), p99: percentile(samples, 99), lost: want - delivered };
}

/** sender.msgs_per_s / sender.lost: a burst from one sender, delivered to both receivers. */
async function throughput(members: Member[]): Promise<{ perSecond: number; lost: number }> {
  const [sender, ...receivers] = members as [Member, ...Member[]];
  const counts = receivers.map(() => 0);
  const next = receivers.map(() => 0);
  let outOfOrder = 0;
  receivers.forEach((r, i) => {
    r.onEvent = (e) => {
      if (e.event !== 'message' || !e.text.startsWith('burst ')) return;
      const n = Number(e.text.slice(6));
      if (n !== next[i]) outOfOrder++;
      next[i] = n + 1;
      counts[i] = (counts[i] as number) + 1;
    };
  });
  const start = performance.now();
  for (let i = 0; i < BURST; i++) sender.engine.send(`burst ${i}`);
  const done = () => counts.every((c) => c >= BURST);
  await poll(done, WAIT_MS);
  const elapsed = performance.now() - start;
  for (const r of receivers) r.onEvent = undefined;
  if (outOfOrder > 0) throw new Error(`${outOfOrder} burst messages arrived out of order`);
  const lost = BURST - Math.min(...counts);
  return { perSecond: ((BURST - lost) * 1000) / elapsed, lost };
}

export const clientSuite: BenchSuite = {
  name: 'client',
  description: 'chat engine: key establishment, end-to-end latency, signed sender throughput',
  async run(): Promise<BenchResult[]> {
    const dir = mkdtempSync(join(tmpdir(), 'scx-client-bench-'));
    const results: BenchResult[] = [];
    const { identities, relayBundle } = makeGroup(Math.max(...SIZES), dir);
    const relay = await startRelay(relayBundle);
    try {
      for (const n of SIZES) {
        results.push({
          name: `keysetup.ms.${n}`,
          value: await keySetup(n, identities, relay.port),
          unit: 'ms',
        });
      }
      const members = await chatGroup(identities, relay.port);
      try {
        const e2e = await latency(members);
        results.push({ name: 'e2e.p50_ms', value: e2e.p50, unit: 'ms' });
        results.push({ name: 'e2e.p99_ms', value: e2e.p99, unit: 'ms' });
        const t = await throughput(members);
        results.push({ name: 'sender.msgs_per_s', value: t.perSecond, unit: 'msgs/s' });
        results.push({ name: 'sender.lost', value: t.lost + e2e.lost, unit: 'msgs' });
      } finally {
        await Promise.all(members.map((m) => m.engine.stop()));
      }
    } finally {
      await relay.stop();
      rmSync(dir, { recursive: true, force: true });
    }
    return results;
  },
};
