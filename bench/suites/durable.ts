/**
 * Durable groups from the member's side (issue 9): the relay CLI as a child process with its log
 * on its own data directory and the group's roster, members as in-process ChatEngines, each with
 * its encrypted state store (history, epochs, roster), as `chat` runs them. Real TLS on 127.0.0.1,
 * real RSA signatures, real SQLCipher stores; nothing stubbed.
 *
 * - catchup.msgs_per_s: carol holds the key and stops; alice sends 10,000 1 KB messages and waits
 *   until every one is STORED; carol starts again on her store. Messages shown (verified,
 *   decrypted, stored in her history, then the `message` event) per second, from start() to the
 *   10,000th (login, SYNC and the replay included); catchup.replay_msgs_per_s from the first shown
 *   to the last.
 * - member_restart.catchup_ms: carol stops and closes her store; alice sends 1,000 (all STORED);
 *   from opening carol's store again to her Chatting with all 1,000 shown. Median of 3, under the
 *   same key (her replay window resumes from her history).
 * - restart.catchup_ms: alice, bob and carol online; alice sends 2,000; once 1,000 are STORED the
 *   relay is killed (-9) and started again on its data directory and port. From its `listening on`
 *   until bob and carol have shown every one of the 2,000 (the ones not acknowledged before the
 *   kill are sent again by alice after she reconnects) and alice has none pending. Members keep
 *   their default reconnect backoff (250 ms doubling, jittered). Median of 3.
 * - keysetup.ms.*: over a roster of M members of which O are online (docs/client.md "Epochs over
 *   the roster"): the initiator (the first member online, which made epoch 1) asks for a new
 *   epoch (requestRekey); time until every online member is Chatting under it with the same
 *   safety number (its key sealed for all M). keysetup.ms.N is M = O = N.
 *
 * The relay runs with its default limits but for the frame/byte rate (off here: filling the log
 * with 10,000 messages is set-up, not what is measured; the replay is not rate-limited anyway).
 */
import { once } from 'node:events';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import type { LocalIdentity } from '../../src-main/core/pki/index.js';
import { percentile, type BenchResult, type BenchSuite } from '../harness.js';
import {
  BenchStore,
  makeGroup,
  runMember,
  type Member,
  type Running,
  rosterFolder,
  sleep,
  startLoggingRelay,
  type BenchGroup,
} from './client-kit.js';
import type { Child } from './relay-kit.js';

const CATCHUP_MESSAGES = 10_000;
const RESTART_MESSAGES = 1_000;
const RESTART_ROUNDS = 3;
/** The burst during which the relay is killed (at half of it acknowledged). */
const RELAY_BURST = 2_000;
const TEXT_CHARS = 1000;
/** [M, O]: roster size, members online. */
const KEY_SETUPS: [number, number][] = [
  [3, 3],
  [3, 2],
  [10, 10],
  [50, 50],
  [50, 10],
  [50, 3],
];
const KEY_ROUNDS: Record<number, number> = { 3: 7, 10: 5, 50: 3 };
const NO_RATE = ['--rate-frames', '0', '--rate-bytes', '0'];

/** A 1,000-character text (1 KB of UTF-8) that names its number. */
const textOf = (tag: string, i: number): string =>
  `${tag} ${String(i).padStart(6, '0')} `.padEnd(TEXT_CHARS, 'x');

/** Sends `count` texts from `sender` and resolves once the relay's log acknowledged every one. */
async function sendStored(sender: Member, tag: string, count: number): Promise<void> {
  let stored = 0;
  const previous = sender.onEvent;
  sender.onEvent = (e) => {
    if (e.event === 'sent') stored++;
  };
  for (let i = 0; i < count; i++) sender.engine.send(textOf(tag, i));
  await sender.until(() => stored >= count, `${count} STORED`, 120_000);
  sender.onEvent = previous;
}

/** Starts `carol` on her store and times until `count` messages tagged `tag` are shown. */
async function catchUp(
  carol: LocalIdentity,
  port: number,
  group: BenchGroup,
  store: BenchStore,
  tag: string,
  count: number,
): Promise<{ running: Running; totalMs: number; replayMs: number; shown: number }> {
  const t0 = performance.now();
  let first = Number.NaN;
  let last = Number.NaN;
  let shown = 0;
  const running = runMember(carol, port, group.roster, store, false);
  const { member } = running;
  member.onEvent = (e) => {
    if (e.event !== 'message' || !e.text.startsWith(`${tag} `)) return;
    const now = performance.now();
    if (shown === 0) first = now;
    shown++;
    last = now;
  };
  member.engine.start();
  await member.until(() => shown >= count && member.chattingAt(), `${count} messages shown`, 120_000);
  const end = performance.now();
  member.onEvent = undefined;
  return { running, totalMs: end - t0, replayMs: last - first, shown };
}

async function catchUpAndRestart(parent: string): Promise<BenchResult[]> {
  const group = makeGroup(3, parent);
  const [alice, , carol] = group.identities as [LocalIdentity, LocalIdentity, LocalIdentity];
  const relay = await startLoggingRelay(group.relayBundle, parent, NO_RATE);
  const aliceStore = new BenchStore(alice, parent);
  const carolStore = new BenchStore(carol, parent);
  const results: BenchResult[] = [];
  const open: Running[] = [];
  try {
    // Alone online a member keys only once it writes: carol's arrival makes the first key.
    const a = runMember(alice, relay.port, group.roster, aliceStore);
    open.push(a);
    await a.member.until(() => a.member.engine.state === 'Chatting', 'Chatting');
    let c = runMember(carol, relay.port, group.roster, carolStore);
    open.push(c);
    await agreeOn([a, c], 1);
    await c.close();
    open.splice(open.indexOf(c), 1);

    await sendStored(a.member, 'catchup', CATCHUP_MESSAGES);
    const caught = await catchUp(carol, relay.port, group, carolStore, 'catchup', CATCHUP_MESSAGES);
    c = caught.running;
    open.push(c);
    console.log(
      `  (catch-up: ${caught.shown} shown in ${caught.totalMs.toFixed(0)} ms from start(), ` +
        `${caught.replayMs.toFixed(0)} ms from the first to the last)`,
    );
    results.push(
      {
        name: 'catchup.msgs_per_s',
        value: Math.round((CATCHUP_MESSAGES * 1000) / caught.totalMs),
        unit: 'msg/s',
      },
      {
        name: 'catchup.replay_msgs_per_s',
        value: Math.round((CATCHUP_MESSAGES * 1000) / caught.replayMs),
        unit: 'msg/s',
      },
    );

    const restarts: number[] = [];
    for (let round = 0; round < RESTART_ROUNDS; round++) {
      await c.close();
      open.splice(open.indexOf(c), 1);
      const tag = `restart${round}`;
      await sendStored(a.member, tag, RESTART_MESSAGES);
      const back = await catchUp(carol, relay.port, group, carolStore, tag, RESTART_MESSAGES);
      c = back.running;
      open.push(c);
      restarts.push(back.totalMs);
    }
    console.log(`  (restart rounds: ${restarts.map((ms) => ms.toFixed(0)).join(', ')} ms)`);
    results.push({ name: 'member_restart.catchup_ms', value: percentile(restarts, 50), unit: 'ms' });
  } finally {
    for (const r of open) await r.close();
    await relay.stop();
  }
  return results;
}

/** Until every member is Chatting under one key (same epoch, same safety number) of at least `min`. */
async function agreeOn(online: Running[], min: number): Promise<void> {
  const deadline = performance.now() + 60_000;
  for (;;) {
    const keys = online.map((r) => (r.member.chattingAt(min) ? r.member.engine.key : undefined));
    const first = keys[0];
    if (first && keys.every((k) => k?.epoch === first.epoch && k.safetyNumber === first.safetyNumber)) return;
    if (performance.now() > deadline) {
      const seen = keys.map((k) => k?.epoch ?? '-').join(' ');
      throw new Error(`members did not agree on a key of epoch ${min} or later (epochs: ${seen})`);
    }
    await sleep(1);
  }
}

/** restart.catchup_ms, one round: see the file comment. */
async function relayRestartRound(parent: string, round: number): Promise<number> {
  const group = makeGroup(3, parent);
  const dataDir = mkdtempSync(join(parent, 'relay-restart-data-'));
  let relay = await startLoggingRelay(group.relayBundle, parent, NO_RATE, dataDir);
  const port = relay.port;
  const open = group.identities.map((id) => runMember(id, port, group.roster, new BenchStore(id, parent)));
  const [a, b, c] = open as [Running, Running, Running];
  try {
    await agreeOn(open, 1);
    const tag = `relay-restart${round}`;
    let stored = 0;
    a.member.onEvent = (e) => {
      if (e.event === 'sent') stored++;
    };
    const problems: string[] = [];
    const shown = [b, c].map((r) => {
      const seen = new Set<string>();
      r.member.onEvent = (e) => {
        if (e.event === 'message' && e.text.startsWith(`${tag} `)) seen.add(e.text);
        if ((e.event === 'error' || e.event === 'gap') && problems.length < 8)
          problems.push(`${r.member.identity.name}: ${JSON.stringify(e)}`);
      };
      return seen;
    });
    for (let i = 0; i < RELAY_BURST; i++) a.member.engine.send(textOf(tag, i));
    await a.member.until(() => stored >= RELAY_BURST / 2, 'half of the burst STORED', 120_000);
    relay.proc.kill('SIGKILL');
    await once(relay.proc, 'exit');
    relay = await startLoggingRelay(group.relayBundle, parent, [...NO_RATE, '--port', String(port)], dataDir);
    const t0 = performance.now();
    // Each waits on its own events: bob and carol until they showed all, alice until none is pending.
    const waits = [
      ...[b, c].map((r, k) =>
        r.member.until(
          () => (shown[k] as Set<string>).size >= RELAY_BURST,
          `all ${RELAY_BURST} shown`,
          60_000,
        ),
      ),
      a.member.until(() => a.member.engine.pending === 0, 'nothing pending', 60_000),
    ];
    await Promise.all(waits).catch((err: unknown) => {
      const states = open.map((r) => `${r.member.identity.name} ${r.member.engine.state}`).join(', ');
      const seen = shown.map((x) => x.size).join('/');
      const detail = `shown ${seen}, pending ${a.member.engine.pending}, ${states}; ${problems.join('; ')}`;
      throw new Error(`${(err as Error).message} (${detail})`);
    });
    return performance.now() - t0;
  } finally {
    for (const r of open) await r.close();
    await relay.stop();
  }
}

/** keysetup over a roster of m with o online: see the file comment. */
async function keySetup(group: BenchGroup, m: number, o: number, parent: string): Promise<number> {
  const roster = rosterFolder(group, group.identities.slice(0, m), parent);
  const relay: Child = await startLoggingRelay(roster.relayBundle, parent);
  const online: Running[] = [];
  try {
    const ids = group.identities.slice(0, o);
    const first = runMember(
      ids[0] as LocalIdentity,
      relay.port,
      roster.roster,
      new BenchStore(ids[0] as LocalIdentity, parent),
    );
    online.push(first);
    await first.member.until(() => first.member.engine.state === 'Chatting', 'Chatting');
    for (const id of ids.slice(1))
      online.push(runMember(id, relay.port, roster.roster, new BenchStore(id, parent)));
    await agreeOn(online, 1);
    const samples: number[] = [];
    const jumps: number[] = [];
    for (let round = 0; round < (KEY_ROUNDS[m] ?? 3); round++) {
      const before = Math.max(...online.map((r) => r.member.engine.key?.epoch ?? 0));
      const t0 = performance.now();
      first.member.engine.requestRekey();
      await agreeOn(online, before + 1);
      const t1 = performance.now();
      const members = online[0]?.member.engine.key?.members.length;
      if (members !== m) throw new Error(`the key is sealed for ${members} members, not ${m}`);
      samples.push(t1 - t0);
      jumps.push((online[0]?.member.engine.key?.epoch ?? 0) - before);
      await sleep(50);
    }
    console.log(
      `  (M ${m}, O ${o}: ${samples.map((ms) => ms.toFixed(1)).join(', ')} ms; epochs moved by ${jumps.join(', ')})`,
    );
    return percentile(samples, 50);
  } finally {
    await Promise.all(online.map((r) => r.close()));
    await relay.stop();
  }
}

export const durableSuite: BenchSuite = {
  name: 'durable',
  description: 'durable groups: catch-up of 10,000 stored messages, restart, key set-up over a roster',
  async run(): Promise<BenchResult[]> {
    const dir = mkdtempSync(join(tmpdir(), 'scx-durable-bench-'));
    const results: BenchResult[] = [];
    try {
      results.push(...(await catchUpAndRestart(dir)));
      const relayRestarts: number[] = [];
      for (let round = 0; round < RESTART_ROUNDS; round++)
        relayRestarts.push(await relayRestartRound(dir, round));
      console.log(`  (relay kill -9 rounds: ${relayRestarts.map((ms) => ms.toFixed(0)).join(', ')} ms)`);
      results.push({ name: 'restart.catchup_ms', value: percentile(relayRestarts, 50), unit: 'ms' });
      const group = makeGroup(Math.max(...KEY_SETUPS.map(([m]) => m)), dir);
      for (const [m, o] of KEY_SETUPS) {
        results.push({
          name: m === o ? `keysetup.ms.${m}` : `keysetup.ms.M${m}_O${o}`,
          value: await keySetup(group, m, o, dir),
          unit: 'ms',
        });
      }
    } finally {
      rmSync(dir, { recursive: true, force: true });
    }
    return results;
  },
};
