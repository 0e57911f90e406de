/**
 * The member's side of the relay's log (src-main/client/log-follower.ts) over a real encrypted
 * state store: exactly-once display across a crash, the position never passing a held frame,
 * acknowledgements, unacknowledged frames carried to the next session, GAP.
 */
import { randomBytes } from 'node:crypto';
import { mkdtempSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import fc from 'fast-check';
import { describe, expect, it } from 'vitest';
import { LogFollower, type LogHistory, type ShownMessage } from '../../src-main/client/log-follower.js';
import { MemberStateStore } from '../../src-main/client/state/member-store.js';

const owner = { groupId: 'cd'.repeat(32), member: 'carol' };
const STREAM = 'ab'.repeat(16);
const OTHER = 'ef'.repeat(16);

interface Harness {
  follower: LogFollower;
  shown: ShownMessage[];
  sent: [number, number, number][];
  gaps: string[];
  problems: unknown[];
  /** Runs the scheduled flushes (the engine's setImmediate), as the event loop would. */
  turn(): void;
}

function harness(history: LogHistory): Harness {
  const queue: (() => void)[] = [];
  const h: Harness = {
    shown: [],
    sent: [],
    gaps: [],
    problems: [],
    turn: () => {
      for (const fn of queue.splice(0)) fn();
    },
    follower: undefined as unknown as LogFollower,
  };
  h.follower = new LogFollower({
    history,
    self: 'carol',
    shown: (m) => h.shown.push(m),
    sent: (e, s, o) => h.sent.push([e, s, o]),
    gap: (r) => h.gaps.push(r),
    problem: (err) => h.problems.push(err),
    unreadable: (n) => h.gaps.push(`unreadable ${n}`),
    schedule: (fn) => queue.push(fn),
    now: () => 1_700_000_000_000,
  });
  return h;
}

const openStore = (dir: string, key: Buffer) => MemberStateStore.open(join(dir, 'state.db'), key, owner);
const chat = (from: string, seq: number, epoch = 3) => ({
  from,
  text: `${from} ${seq}`,
  epoch,
  seq,
  sentAt: seq,
});

/** Delivers a chat frame at `offset` the way the engine does: dedup first, then received. */
function deliver(h: Harness, offset: number, m: ReturnType<typeof chat>): void {
  h.follower.delivered(offset, () => {
    if (!h.follower.isDuplicate(m.from, m.epoch, m.seq)) h.follower.received(m);
  });
}

describe('LogFollower', () => {
  it('asks for everything when it holds nothing, from its position after, and nothing without a log', () => {
    const dir = mkdtempSync(join(tmpdir(), 'scx-follow-'));
    const store = openStore(dir, randomBytes(32));
    const h = harness(store.history);
    expect(h.follower.begin(undefined)).toBeUndefined();
    expect(h.follower.begin(STREAM)).toEqual({ streamId: '', afterOffset: 0 });
    deliver(h, 7, chat('bob', 1));
    h.turn();
    expect(h.shown).toEqual([
      { from: 'bob', text: 'bob 1', epoch: 3, seq: 1, sentAt: 1, offset: 7, own: false },
    ]);
    expect(h.follower.begin(STREAM)).toEqual({ streamId: STREAM, afterOffset: 7 });
    store.close();
  });

  it('shows nothing before it is stored, and a message delivered twice once', () => {
    const dir = mkdtempSync(join(tmpdir(), 'scx-follow-'));
    const store = openStore(dir, randomBytes(32));
    const h = harness(store.history);
    h.follower.begin(STREAM);
    deliver(h, 1, chat('bob', 1));
    deliver(h, 2, chat('bob', 1)); // the same frame again within the turn
    expect(h.shown).toEqual([]);
    h.turn();
    deliver(h, 3, chat('bob', 1)); // and in a later turn
    h.turn();
    expect(h.shown.map((m) => m.offset)).toEqual([1]);
    expect(store.history.count()).toBe(1);
    expect(store.history.position()).toEqual({ streamId: STREAM, offset: 3 });
    store.close();
  });

  it('never saves a position past a held frame', () => {
    const dir = mkdtempSync(join(tmpdir(), 'scx-follow-'));
    const store = openStore(dir, randomBytes(32));
    const h = harness(store.history);
    h.follower.begin(STREAM);
    let held: number | undefined;
    h.follower.delivered(5, () => {
      held = h.follower.hold();
    });
    deliver(h, 6, chat('bob', 2));
    h.follower.live(9);
    h.turn();
    expect(store.history.position()).toEqual({ streamId: STREAM, offset: 4 });
    h.follower.release(held, () => h.follower.received(chat('bob', 1)));
    h.turn();
    expect(store.history.position()).toEqual({ streamId: STREAM, offset: 9 });
    expect(h.shown.map((m) => m.seq)).toEqual([2, 1]);
    store.close();
  });

  it('a crash at any point of a catch-up shows every message exactly once after the restart', () => {
    fc.assert(
      fc.property(
        fc.integer({ min: 1, max: 60 }),
        fc.array(fc.integer({ min: 0, max: 59 }), { maxLength: 4 }),
        (total, crashes) => {
          const dir = mkdtempSync(join(tmpdir(), 'scx-follow-'));
          const key = randomBytes(32);
          const log = Array.from({ length: total }, (_, i) => ({
            offset: 10 + i * 2,
            m: chat(i % 2 ? 'bob' : 'alice', i + 1),
          }));
          const seen: string[] = [];
          const points = [...crashes.filter((c) => c < total).sort((a, b) => a - b), Infinity];
          for (const crashAt of points) {
            const store = openStore(dir, key);
            const h = harness(store.history);
            const sync = h.follower.begin(STREAM);
            for (const { offset, m } of log) {
              if (offset <= (sync?.afterOffset ?? 0)) continue;
              if (offset >= 10 + crashAt * 2) break; // killed here: the turn's batch is lost
              deliver(h, offset, m);
              if (offset % 3 === 0) h.turn(); // turns end at arbitrary points
            }
            if (crashAt === Infinity) {
              h.follower.live(10 + total * 2);
              h.turn();
            }
            seen.push(...h.shown.map((s) => `${s.from}.${s.seq}`));
            store.close();
          }
          expect(seen).toEqual(log.map(({ m }) => `${m.from}.${m.seq}`));
        },
      ),
      { numRuns: 40 },
    );
  });

  it('acknowledges our frames by number, and carries what was never acknowledged to the next session', () => {
    const dir = mkdtempSync(join(tmpdir(), 'scx-follow-'));
    const store = openStore(dir, randomBytes(32));
    const h = harness(store.history);
    h.follower.begin(STREAM);
    const frames = [Buffer.from('f1'), Buffer.from('k2'), Buffer.from('f3')];
    h.follower.ownWritten(chat('carol', 1));
    h.follower.logged({ kind: 'chat', epoch: 3, seq: 1, frame: frames[0] as Buffer });
    h.follower.logged({ kind: 'key', frame: frames[1] as Buffer });
    h.follower.ownWritten(chat('carol', 2));
    h.follower.logged({ kind: 'chat', epoch: 3, seq: 2, frame: frames[2] as Buffer });
    h.follower.stored([
      { n: 1, offset: 40 },
      { n: 2, offset: 41 },
      { n: 9, offset: 50 }, // not ours: ignored
    ]);
    expect(h.sent).toEqual([[3, 1, 40]]);
    expect(store.history.page().map((e) => [e.seq, e.own, e.offset])).toEqual([
      [1, true, 40],
      [2, true, undefined],
    ]);
    // Own messages are stored as own (the engine already reported them as sent, it shows them no more).
    expect(h.shown.map((m) => [m.seq, m.own])).toEqual([
      [1, true],
      [2, true],
    ]);
    h.follower.endSession();
    expect(h.follower.takeUnacknowledged().map((f) => f.frame.toString())).toEqual(['f3']);
    expect(h.follower.takeUnacknowledged()).toEqual([]);
    // Without a log nothing is tracked: no acknowledgement will ever come.
    h.follower.begin(undefined);
    h.follower.logged({ kind: 'key', frame: Buffer.from('x') });
    h.follower.endSession();
    expect(h.follower.takeUnacknowledged()).toEqual([]);
    store.close();
  });

  it('on GAP says why in words and follows the log that is there from its first offset', () => {
    const dir = mkdtempSync(join(tmpdir(), 'scx-follow-'));
    const store = openStore(dir, randomBytes(32));
    store.history.recordBatch([], { streamId: OTHER, offset: 500 });
    const h = harness(store.history);
    expect(h.follower.begin(STREAM)).toEqual({ streamId: OTHER, afterOffset: 500 });
    h.follower.gap({
      session: Buffer.alloc(32),
      streamId: STREAM,
      reason: 'lost-log',
      firstOffset: 1,
      lastOffset: 20,
    });
    expect(h.gaps).toEqual([expect.stringContaining('no longer has the log')]);
    deliver(h, 3, chat('bob', 1));
    h.turn();
    expect(store.history.position()).toEqual({ streamId: STREAM, offset: 3 });
    store.close();
  });

  it('a store that fails shows nothing of that turn and keeps its position', () => {
    const dir = mkdtempSync(join(tmpdir(), 'scx-follow-'));
    const store = openStore(dir, randomBytes(32));
    const h = harness(store.history);
    h.follower.begin(STREAM);
    deliver(h, 1, chat('bob', 1));
    store.close(); // the database goes away under it
    h.turn();
    expect(h.shown).toEqual([]);
    expect(h.problems).toHaveLength(1);
  });

  it('knows a replayed frame from a live one, and reports skipped unreadable ones once, at LIVE', () => {
    const dir = mkdtempSync(join(tmpdir(), 'scx-follow-'));
    const store = openStore(dir, randomBytes(32));
    const h = harness(store.history);
    h.follower.begin(STREAM);
    const seen: boolean[] = [];
    h.follower.delivered(1, () => {
      seen.push(h.follower.inReplay);
      h.follower.skipUnreadable();
    });
    h.follower.delivered(2, () => h.follower.skipUnreadable());
    h.turn();
    expect(h.gaps).toEqual([]); // not during the replay
    h.follower.live(2);
    h.turn();
    expect(h.gaps).toEqual(['unreadable 2']);
    h.follower.delivered(3, () => seen.push(h.follower.inReplay));
    // A frame of the replay held for a certificate and handled after LIVE is still a replayed one.
    h.follower.release(2, () => seen.push(h.follower.inReplay));
    expect(seen).toEqual([true, false, true]);
    h.turn();
    expect(h.gaps).toEqual(['unreadable 2']);
    store.close();
  });

  it('ends a session once: a second endSession (stop() after the close) changes nothing', () => {
    const dir = mkdtempSync(join(tmpdir(), 'scx-follow-'));
    const store = openStore(dir, randomBytes(32));
    let commits = 0;
    const history: LogHistory = {
      has: (from, epoch, seq) => store.history.has(from, epoch, seq),
      recordBatch: (messages, position) => {
        commits++;
        return store.history.recordBatch(messages, position);
      },
      markStored: (from, epoch, seq, at) => store.history.markStored(from, epoch, seq, at),
      position: () => store.history.position(),
    };
    const h = harness(history);
    // Ending before any session began does nothing.
    h.follower.endSession();
    expect(commits).toBe(0);
    h.follower.begin(STREAM);
    deliver(h, 5, chat('bob', 1));
    // Two replayed frames under a key never held, and the session ends before LIVE.
    h.follower.delivered(6, () => h.follower.skipUnreadable());
    h.follower.delivered(7, () => h.follower.skipUnreadable());
    h.follower.ownWritten(chat('carol', 1));
    h.follower.logged({ kind: 'chat', epoch: 3, seq: 1, frame: Buffer.from('f1') });
    h.follower.endSession();
    expect(commits).toBe(1);
    expect(h.shown.map((m) => [m.from, m.seq])).toEqual([
      ['bob', 1],
      ['carol', 1],
    ]);
    h.follower.carry({ kind: 'key', frame: Buffer.from('k2') }); // cancelled before the socket
    h.follower.endSession();
    h.turn();
    expect(commits).toBe(1);
    // The unacknowledged frame is carried once; the replay cut short is not reported as ended.
    expect(h.follower.takeUnacknowledged().map((f) => f.frame.toString())).toEqual(['f1', 'k2']);
    expect(h.gaps).toEqual([]);
    expect(h.follower.position).toEqual({ streamId: STREAM, offset: 7 });
    // The next session starts where the first one stopped, and is ended once in turn.
    expect(h.follower.begin(STREAM)).toEqual({ streamId: STREAM, afterOffset: 7 });
    h.follower.logged({ kind: 'chat', epoch: 3, seq: 2, frame: Buffer.from('f3') });
    h.follower.endSession();
    h.follower.endSession();
    expect(h.follower.takeUnacknowledged().map((f) => f.frame.toString())).toEqual(['f3']);
    store.close();
  });

  it('stores the replay as a catch-up (unindexed) and what comes after LIVE as live chat', () => {
    const dir = mkdtempSync(join(tmpdir(), 'scx-follow-'));
    const store = openStore(dir, randomBytes(32));
    const calls: [number, boolean | undefined][] = [];
    const history: LogHistory = {
      has: (from, epoch, seq) => store.history.has(from, epoch, seq),
      recordBatch: (messages, position, options) => {
        calls.push([messages.length, options?.catchingUp]);
        return store.history.recordBatch(messages, position, options);
      },
      markStored: (from, epoch, seq, at) => store.history.markStored(from, epoch, seq, at),
      position: () => store.history.position(),
    };
    const h = harness(history);
    h.follower.begin(STREAM);
    deliver(h, 1, chat('bob', 1));
    deliver(h, 2, chat('bob', 2));
    h.turn();
    h.follower.live(2);
    deliver(h, 3, chat('bob', 3));
    h.turn();
    expect(calls).toEqual([
      [2, true],
      [1, false],
    ]);
    expect(h.shown.map((m) => m.seq)).toEqual([1, 2, 3]);
    store.close();
  });
});
