/**
 * The relay's log on NATS JetStream (src-main/relay/log/jetstream-log.ts) against real nats-server
 * processes on 127.0.0.1 (test/helpers/nats-servers.ts): the shared RelayLog contract on one server
 * and on a 3-server cluster with R3 streams; two nodes sharing one log; kill -9 of the stream
 * leader during appends; a restart of the whole cluster; presence; and fast-check interleavings of
 * appends and paged reads against an array model. Every wait is for an event (an ack count, a log
 * line, a leader advisory), none for time.
 */
import { randomBytes } from 'node:crypto';
import fc from 'fast-check';
import { connect, type NatsConnection } from '@nats-io/transport-node';
import { jetstreamManager } from '@nats-io/jetstream';
import { afterAll, afterEach, beforeAll, describe, expect, it } from 'vitest';
import {
  RelayLogError,
  type LogAppend,
  type LogEntry,
  type RelayLog,
} from '../../src-main/relay/log/index.js';
import { JetStreamRelayLog } from '../../src-main/relay/log/jetstream-log.js';
import { JetStreamPresence, type PresenceChange } from '../../src-main/relay/log/jetstream-presence.js';
import { startNats, waitForStreamLeaders, type NatsCluster } from '../helpers/nats-servers.js';
import {
  ALL,
  frame,
  offsetsAndViewsContract,
  persistenceContract,
  retentionContract,
  texts,
  to,
  type LogHarness,
} from '../helpers/relay-log-contract.js';
import { makeTestGroup } from '../helpers/group.js';
import { startRelay } from '../helpers/relay-process.js';
import { Waiters } from '../helpers/waiters.js';

const groupId = () => `grp-${randomBytes(6).toString('hex')}`;

/** Logs on `nc()`, one fresh group each; reopen opens the same group again (another node would). */
function jetStreamHarness(
  nc: () => NatsConnection,
  replicas?: number,
): LogHarness & { closeAll(): Promise<void> } {
  const groups = new Map<RelayLog, string>();
  const open = async (group: string) => {
    const log = await JetStreamRelayLog.open({ nc: nc(), groupId: group, replicas });
    groups.set(log, group);
    return log;
  };
  return {
    fresh: () => open(groupId()),
    reopen: async (log) => {
      const group = groups.get(log);
      if (group === undefined) throw new Error('not a log of this harness');
      await log.close();
      return open(group);
    },
    frameBytes: false,
    closeAll: async () => {
      for (const log of groups.keys()) await log.close();
      groups.clear();
    },
  };
}

/** Every entry of `member`'s view after `after`, through pages of `limit`. */
async function readAll(log: RelayLog, member: string, limit = 500): Promise<LogEntry[]> {
  const all: LogEntry[] = [];
  let after = 0;
  for (;;) {
    const page = await log.read({ afterOffset: after, member, limit, maxBytes: 1e9 });
    all.push(...page.entries);
    after = page.nextAfter;
    if (page.end) return all;
  }
}

describe('JetStream relay log on one NATS server', () => {
  let cluster: NatsCluster;
  let nc: NatsConnection;
  const harness = jetStreamHarness(() => nc);
  beforeAll(async () => {
    cluster = await startNats(1);
    nc = await cluster.connect();
  });
  afterEach(() => harness.closeAll());
  afterAll(() => cluster?.stop());

  describe('contract: offsets, order, per-member views', () => offsetsAndViewsContract(() => harness));
  describe('contract: retention', () => retentionContract(() => harness));
  describe('contract: persistence', () => persistenceContract(() => harness));

  it('one server means one replica by default; the group id becomes a plain stream name or a hash', async () => {
    const plain = await JetStreamRelayLog.open({ nc, groupId: 'team-7' });
    const odd = await JetStreamRelayLog.open({ nc, groupId: 'a.b c/*' });
    expect(plain.replicas).toBe(1);
    expect(plain.names.stream).toBe('SCX_g_team-7');
    expect(odd.names.stream).toMatch(/^SCX_h_[0-9a-f]{32}$/);
    await plain.close();
    await odd.close();
  });

  it('presence: put on join, deleted on leave, refreshed, watched, listed across nodes', async () => {
    const group = groupId();
    let clock = 1000;
    const relay1 = await JetStreamPresence.open(
      { nc, groupId: group, node: 'relay1', ttlMs: 60_000 },
      () => clock,
    );
    const relay2 = await JetStreamPresence.open({ nc, groupId: group, node: 'relay2' }, () => clock);
    const changes: PresenceChange[] = [];
    const seen = new Waiters();
    const watch = await relay1.watch((c) => {
      changes.push(c);
      seen.notify();
    });
    await relay1.join('alice');
    await relay2.join('bob');
    await relay2.join('alice'); // a second device of alice's, on the other node
    await seen.until(
      () => changes.length === 3,
      10_000,
      () => `changes: ${JSON.stringify(changes)}`,
    );
    expect(changes.map((c) => `${c.kind} ${c.member}@${c.node}`)).toEqual([
      'here alice@relay1',
      'here bob@relay2',
      'here alice@relay2',
    ]);
    const byKey = (list: { member: string; node: string; at: number }[]) =>
      list.map((e) => `${e.member}@${e.node}:${e.at}`).sort();
    expect(byKey(await relay2.list())).toEqual(['alice@relay1:1000', 'alice@relay2:1000', 'bob@relay2:1000']);
    await relay2.leave('bob');
    await seen.until(
      () => changes.length === 4,
      10_000,
      () => `changes: ${JSON.stringify(changes)}`,
    );
    expect(changes[3]).toEqual({ kind: 'gone', member: 'bob', node: 'relay2' });
    clock = 2000;
    await relay2.refresh();
    expect(byKey(await relay1.list())).toEqual(['alice@relay1:1000', 'alice@relay2:2000']);
    watch.stop();
    await relay1.close({ leave: true });
    await relay2.close();
    await expect(relay2.list()).rejects.toThrow(RelayLogError);
    // relay1 left cleanly; relay2 only stopped: its entry stays until the TTL (not waited for here).
    const observer = await JetStreamPresence.open({ nc, groupId: group, node: 'observer' });
    expect(byKey(await observer.list())).toEqual(['alice@relay2:2000']);
    await observer.close();
  });

  it('fast-check: paged reads of random interleavings return exactly each member’s view, in order', async () => {
    const MEMBERS = ['alice', 'bob', 'carol', 'dave.x'] as const;
    const member = fc.constantFrom(...MEMBERS);
    const appendArb: fc.Arbitrary<LogAppend> = fc.record({
      audience: fc.oneof(
        fc.constant({ kind: 'all' as const }),
        member.map((name) => ({ kind: 'member' as const, name })),
      ),
      sender: member,
      frame: fc.uint8Array({ minLength: 1, maxLength: 64 }).map((u) => Buffer.from(u)),
    });
    const command = fc.oneof(
      fc.record({ kind: fc.constant('append' as const), batch: fc.array(appendArb, { maxLength: 12 }) }),
      fc.record({
        kind: fc.constant('read' as const),
        member,
        after: fc.double({ min: 0, max: 1.2, noNaN: true }),
        limit: fc.integer({ min: 1, max: 8 }),
        maxBytes: fc.integer({ min: 1, max: 300 }),
        own: fc.boolean(),
      }),
    );
    await fc.assert(
      fc.asyncProperty(fc.array(command, { minLength: 1, maxLength: 16 }), async (commands) => {
        const log = await harness.fresh();
        const model: (LogAppend & { offset: number })[] = [];
        for (const c of commands) {
          if (c.kind === 'append') {
            const offsets = await log.append(c.batch);
            expect(offsets).toEqual(c.batch.map((_, i) => model.length + 1 + i));
            c.batch.forEach((e, i) => model.push({ ...e, offset: offsets[i] as number }));
            continue;
          }
          const start = Math.floor(c.after * model.length);
          const seen: LogEntry[] = [];
          let after = start;
          for (let pages = 0; ; pages++) {
            expect(pages).toBeLessThanOrEqual(model.length + 1);
            const page = await log.read({
              afterOffset: after,
              member: c.member,
              limit: c.limit,
              maxBytes: c.maxBytes,
              ownBroadcasts: c.own,
            });
            expect(page.entries.length).toBeLessThanOrEqual(c.limit);
            if (page.entries.length > 1) {
              expect(page.entries.reduce((n, e) => n + e.frame.length, 0)).toBeLessThanOrEqual(c.maxBytes);
            }
            seen.push(...page.entries);
            after = page.nextAfter;
            if (page.end) break;
          }
          const due = model.filter(
            (e) =>
              e.offset > start &&
              (e.audience.kind === 'member' ? e.audience.name === c.member : c.own || e.sender !== c.member),
          );
          expect(seen.map((e) => [e.offset, e.sender, e.audience, e.frame.toString('hex')])).toEqual(
            due.map((e) => [e.offset, e.sender, e.audience, e.frame.toString('hex')]),
          );
          expect(after).toBe(Math.max(start, model.length));
        }
        await log.close();
      }),
      { numRuns: 12 },
    );
  }, 120_000);
});

describe('JetStream relay log on a 3-server NATS cluster (R3)', () => {
  let cluster: NatsCluster;
  let nc: NatsConnection;
  const harness = jetStreamHarness(() => nc);
  beforeAll(async () => {
    cluster = await startNats(3);
    nc = await cluster.connect();
  }, 60_000);
  afterEach(() => harness.closeAll());
  afterAll(() => cluster?.stop());

  describe('contract: offsets, order, per-member views', () => offsetsAndViewsContract(() => harness));
  describe('contract: retention', () => retentionContract(() => harness));
  describe('contract: persistence', () => persistenceContract(() => harness));

  it('two nodes on different servers share one log: one stream id, one sequence, one meta', async () => {
    const group = groupId();
    const other = await connect({ servers: cluster.servers[2]?.url });
    try {
      const node1 = await JetStreamRelayLog.open({ nc, groupId: group });
      const node2 = await JetStreamRelayLog.open({ nc: other, groupId: group });
      expect(node1.replicas).toBe(3);
      expect(node2.streamId).toBe(node1.streamId);
      expect(await node1.append([{ audience: ALL, sender: 'alice', frame: frame('on 1') }])).toEqual([1]);
      expect(await node2.append([{ audience: to('alice'), sender: 'bob', frame: frame('on 2') }])).toEqual([
        2,
      ]);
      await node2.setMeta('roster', Buffer.from('v2'));
      expect(await node1.getMeta('roster')).toEqual(Buffer.from('v2'));
      expect(
        texts((await node1.read({ afterOffset: 0, member: 'alice', ownBroadcasts: true })).entries),
      ).toEqual(['on 1', 'on 2']);
      expect(texts((await node2.read({ afterOffset: 0, member: 'bob' })).entries)).toEqual(['on 1']);
      await node1.close();
      await node2.close();
    } finally {
      await other.close();
    }
  });

  it('kill -9 of the stream leader during appends: every acknowledged offset is still readable; the log goes on', async () => {
    const log = await JetStreamRelayLog.open({ nc, groupId: groupId(), timeoutMs: 4000 });
    const acked = new Map<number, string>();
    const failures: string[] = [];
    const progress = new Waiters();
    let stop = false;
    const writer = (async () => {
      for (let i = 0; !stop; i++) {
        const batch = Array.from({ length: 10 }, (_, j) => ({
          audience: j === 0 ? to('bob') : ALL,
          sender: 'alice',
          frame: frame(`m${i}.${j}`),
        }));
        try {
          const offsets = await log.append(batch);
          offsets.forEach((offset, j) => acked.set(offset, `m${i}.${j}`));
        } catch (err) {
          // Unacknowledged while the leader is gone: the sender would resend. Only LogIo is expected.
          failures.push(err instanceof RelayLogError ? err.code : String(err));
        }
        progress.notify();
      }
    })();
    const ackedAtLeast = (n: number) =>
      progress.until(
        () => acked.size >= n,
        60_000,
        () => `${acked.size} acked, failures: ${failures.join(',')}`,
      );
    await ackedAtLeast(300);
    const jsm = await jetstreamManager(nc);
    const leader = (await jsm.streams.info(log.names.stream)).cluster?.leader;
    const index = cluster.servers.findIndex((s) => s.name === leader);
    expect(index).toBeGreaterThanOrEqual(0);
    await cluster.kill9(index);
    const atKill = acked.size;
    await ackedAtLeast(atKill + 300); // two of three servers carry on once a new leader is elected
    stop = true;
    await writer;
    expect(failures.every((code) => code === 'LogIo')).toBe(true);
    await cluster.restart(index);
    const entries = await readAll(log, 'bob');
    const offsets = entries.map((e) => e.offset);
    expect(offsets).toEqual([...offsets].sort((a, b) => a - b));
    expect(new Set(offsets).size).toBe(offsets.length);
    const stored = new Map(entries.map((e) => [e.offset, e.frame.toString()]));
    const missing = [...acked].filter(([offset, text]) => stored.get(offset) !== text);
    expect(missing).toEqual([]);
    await log.close();
  }, 120_000);

  // Last in this block: it restarts every server under the tests above.
  it('stop and restart all three servers: frames, stream id and meta are intact, and appends go on', async () => {
    const group = groupId();
    const log = await JetStreamRelayLog.open({ nc, groupId: group });
    const batch = Array.from({ length: 50 }, (_, i) => ({
      audience: i % 7 === 0 ? to('bob') : ALL,
      sender: 'carol',
      frame: randomBytes(200),
    }));
    expect(await log.append(batch)).toEqual(batch.map((_, i) => i + 1));
    await log.setMeta('roster', Buffer.from('r1'));
    const bounds = await log.bounds();
    const before = await readAll(log, 'bob');
    await log.close();
    await cluster.restartAll();
    const fresh = await cluster.connect();
    await waitForStreamLeaders(fresh, [log.names.stream, `KV_${log.names.metaBucket}`]);
    const again = await JetStreamRelayLog.open({ nc: fresh, groupId: group });
    expect(again.streamId).toBe(log.streamId);
    expect(await again.bounds()).toEqual(bounds);
    const after = await readAll(again, 'bob');
    expect(after.map((e) => [e.offset, e.sender, e.audience, e.frame.toString('hex')])).toEqual(
      before.map((e) => [e.offset, e.sender, e.audience, e.frame.toString('hex')]),
    );
    expect(await again.getMeta('roster')).toEqual(Buffer.from('r1'));
    expect(await again.append([{ audience: ALL, sender: 'carol', frame: frame('after') }])).toEqual([51]);
    await again.close();
  }, 120_000);
});

describe('relay --cluster', () => {
  it('a relay started with --cluster keeps its group log in a JetStream stream, with a KV bucket for its meta', async () => {
    const cluster = await startNats(1);
    const group = makeTestGroup(['alice']);
    const relay = await startRelay(group.relayBundle, ['--cluster', cluster.urls.join(',')]);
    try {
      const nc = await cluster.connect();
      const jsm = await jetstreamManager(nc);
      const streams: string[] = [];
      for await (const name of jsm.streams.names()) streams.push(name);
      const log = streams.find((name) => name.startsWith('SCX_g_'));
      expect(log).toMatch(/^SCX_g_[0-9a-f]{64}$/);
      expect(streams).toContain(`KV_scx_meta_${log?.slice('SCX_'.length) ?? ''}`);
      expect(await relay.stop()).toBe(0);
    } finally {
      await relay.stop();
      await cluster.stop();
    }
  }, 60_000);
});
