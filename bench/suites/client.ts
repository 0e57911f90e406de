/**
 * Chat client benchmarks: the relay as a child process (`securechat-x relay`, its log on its own
 * data directory, the group's roster), members as in-process ChatEngines on their encrypted state
 * stores, as `chat` runs them (real TLS on 127.0.0.1, real RSA, nothing stubbed). Every session
 * SYNCs with the relay's log: a message is stored at the relay (STORED), then DELIVERED, then
 * stored in each receiver's history and shown. Key set-up over a roster: durable.ts.
 *
 * - e2e.p50_ms / e2e.p99_ms: 1 sender -> 2 receivers at 100 msgs/s, send() to the receiver's
 *   `message` (decrypted, stored in its history, shown); e2e.stored_p50_ms / p99: send() to the
 *   sender's `sent` (the relay's log acknowledged it).
 * - sender.msgs_per_s / sender.lost: one sender pushes a burst as fast as it can; signed
 *   messages per second until the last one is shown by both receivers, and how many never were.
 */
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { percentile, type BenchResult, type BenchSuite } from '../harness.js';
import {
  BenchStore,
  makeGroup,
  runMember,
  sleep,
  startLoggingRelay,
  type Member,
  type Running,
} from './client-kit.js';

const E2E_RATE = 100;
const E2E_MESSAGES = 400;
// Long enough (several seconds) that the relay's rate-limit burst allowance cannot flatter the sustained rate.
const BURST = 24_000;
const WAIT_MS = 60_000;

/** Resolves as soon as `done()` holds (checked every millisecond or so), or after `timeoutMs`. */
async function poll(done: () => boolean, timeoutMs: number): Promise<void> {
  const until = performance.now() + timeoutMs;
  while (!done() && performance.now() < until) await sleep(1);
}

/** e2e.*: paced 1 -> 2; see the file comment. */
async function latency(members: Member[]): Promise<BenchResult[]> {
  const [sender, ...receivers] = members as [Member, ...Member[]];
  const sentAt = new Map<string, number>();
  const seqAt = new Map<number, number>();
  const shown: number[] = [];
  const stored: number[] = [];
  sender.onEvent = (e) => {
    if (e.event === 'outgoing' && e.status === 'sent' && e.seq !== undefined) {
      const t = sentAt.get(e.text);
      if (t !== undefined) seqAt.set(e.seq, t);
    } else if (e.event === 'sent') {
      const t = seqAt.get(e.seq);
      if (t !== undefined) stored.push(performance.now() - t);
    }
  };
  for (const r of receivers) {
    r.onEvent = (e) => {
      if (e.event !== 'message') return;
      const t = sentAt.get(e.text);
      if (t !== undefined) shown.push(performance.now() - t);
    };
  }
  const start = performance.now();
  for (let i = 0; i < E2E_MESSAGES; i++) {
    const wait = start + (i * 1000) / E2E_RATE - performance.now();
    if (wait > 0) await sleep(wait);
    const text = `latency ${i}`;
    sentAt.set(text, performance.now());
    sender.engine.send(text);
  }
  const want = E2E_MESSAGES * receivers.length;
  await sender
    .until(() => shown.length >= want && stored.length >= E2E_MESSAGES, 'every latency message', 10_000)
    .catch(() => undefined);
  for (const m of members) m.onEvent = undefined;
  return [
    { name: 'e2e.p50_ms', value: percentile(shown, 50), unit: 'ms' },
    { name: 'e2e.p99_ms', value: percentile(shown, 99), unit: 'ms' },
    { name: 'e2e.stored_p50_ms', value: percentile(stored, 50), unit: 'ms' },
    { name: 'e2e.stored_p99_ms', value: percentile(stored, 99), unit: 'ms' },
    { name: 'e2e.lost', value: want - shown.length + (E2E_MESSAGES - stored.length), unit: 'msgs' },
  ];
}

/** sender.msgs_per_s / sender.lost: a burst from one sender, shown by both receivers. */
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
  description:
    'chat engine over the logging relay: end-to-end latency (send -> STORED -> shown), signed sender throughput',
  async run(): Promise<BenchResult[]> {
    const dir = mkdtempSync(join(tmpdir(), 'scx-client-bench-'));
    const results: BenchResult[] = [];
    const group = makeGroup(3, dir);
    const relay = await startLoggingRelay(group.relayBundle, dir);
    const online: Running[] = [];
    try {
      for (const id of group.identities) {
        const r = runMember(id, relay.port, group.roster, new BenchStore(id, dir));
        online.push(r);
        // Alone online the first one keys only when it writes: the second one's arrival makes the key.
        if (online.length > 1) await r.member.until(() => r.member.chattingAt(), 'a key');
        else await r.member.until(() => r.member.engine.state === 'Chatting', 'Chatting');
      }
      const members = online.map((r) => r.member);
      const e2e = await latency(members);
      results.push(...e2e.filter((r) => r.name !== 'e2e.lost'));
      const t = await throughput(members);
      results.push({ name: 'sender.msgs_per_s', value: t.perSecond, unit: 'msgs/s' });
      const e2eLost = e2e.find((r) => r.name === 'e2e.lost')?.value ?? 0;
      results.push({ name: 'sender.lost', value: t.lost + e2eLost, unit: 'msgs' });
    } finally {
      await Promise.all(online.map((r) => r.close()));
      await relay.stop();
      rmSync(dir, { recursive: true, force: true });
    }
    return results;
  },
};
