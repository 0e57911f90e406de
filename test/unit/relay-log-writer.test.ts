/**
 * The relay log's batching writer and SYNC replay (src-main/relay/log/writer.ts, replay.ts), over
 * the real SQLite log in a temporary folder.
 */
import { mkdtempSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterEach, describe, expect, it } from 'vitest';
import {
  LogReplay,
  LogWriter,
  RelayLogError,
  SqliteRelayLog,
  type LogAppend,
  type LogEntry,
  type RelayLog,
} from '../../src-main/relay/log/index.js';

const ALL = { kind: 'all' } as const;
const opened: SqliteRelayLog[] = [];
const nextTurn = () => new Promise<void>((resolve) => setImmediate(resolve));

function open(): SqliteRelayLog {
  const log = SqliteRelayLog.open(mkdtempSync(join(tmpdir(), 'scx-relay-log-')));
  opened.push(log);
  return log;
}

afterEach(async () => {
  for (const log of opened.splice(0)) await log.close();
});

/** The real log, with the batch sizes it was handed recorded. */
function recording(log: RelayLog): { log: RelayLog; batches: number[] } {
  const batches: number[] = [];
  const wrapped: RelayLog = {
    streamId: log.streamId,
    append: (batch) => {
      batches.push(batch.length);
      return log.append(batch);
    },
    read: (r) => log.read(r),
    bounds: () => log.bounds(),
    firstOffsetFor: (m) => log.firstOffsetFor(m),
    enforceRetention: (p) => log.enforceRetention(p),
    getMeta: (k) => log.getMeta(k),
    setMeta: (k, v) => log.setMeta(k, v),
    close: () => log.close(),
  };
  return { log: wrapped, batches };
}

const entry = (i: number, audience: LogAppend['audience'] = ALL, sender = 'alice'): LogAppend => ({
  audience,
  sender,
  frame: Buffer.from(`frame ${i}`),
});

describe('LogWriter', () => {
  it('commits one event-loop turn of appends as one batch and resolves each with its offset', async () => {
    const { log, batches } = recording(open());
    const writer = new LogWriter(log);
    const first = Array.from({ length: 100 }, (_, i) => writer.append(entry(i)));
    expect(batches).toEqual([]);
    expect(writer.pendingBytes).toBeGreaterThan(0);
    expect(await Promise.all(first)).toEqual(Array.from({ length: 100 }, (_, i) => i + 1));
    const second = await Promise.all([writer.append(entry(100)), writer.append(entry(101))]);
    expect(second).toEqual([101, 102]);
    expect(batches).toEqual([100, 2]);
    expect(writer.pendingBytes).toBe(0);
    const page = await log.read({ afterOffset: 0, member: 'bob', limit: 1000 });
    expect(page.entries.map((e) => e.frame.toString())).toEqual(
      Array.from({ length: 102 }, (_, i) => `frame ${i}`),
    );
  });

  it('cuts a batch at maxBatchEntries and at maxBatchBytes, keeping call order', async () => {
    const { log, batches } = recording(open());
    const byCount = new LogWriter(log, { maxBatchEntries: 4 });
    expect(await Promise.all(Array.from({ length: 10 }, (_, i) => byCount.append(entry(i))))).toEqual([
      1, 2, 3, 4, 5, 6, 7, 8, 9, 10,
    ]);
    expect(batches).toEqual([4, 4, 2]);
    const byBytes = new LogWriter(log, { maxBatchBytes: 2048 });
    const big = (i: number): LogAppend => ({ audience: ALL, sender: 'a', frame: Buffer.alloc(1000, i) });
    await Promise.all([1, 2, 3, 4, 5].map((i) => byBytes.append(big(i))));
    expect(batches.slice(3)).toEqual([3, 2]);
  });

  it('a failed batch rejects each of its callers with the typed error; a bad entry fails alone', async () => {
    const real = open();
    const writer = new LogWriter(real);
    const bad = writer.append({
      audience: { kind: 'member', name: '' },
      sender: 'a',
      frame: Buffer.from('x'),
    });
    const good = writer.append(entry(1));
    await expect(bad).rejects.toThrow(TypeError);
    expect(await good).toBe(1);
    const doomed = [writer.append(entry(2)), writer.append(entry(3))];
    await real.close();
    for (const p of doomed) {
      await expect(p).rejects.toSatisfy((err) => err instanceof RelayLogError && err.code === 'LogClosed');
    }
  });

  it('close() flushes what is queued, then refuses more', async () => {
    const log = open();
    const writer = new LogWriter(log);
    const queued = writer.append(entry(1));
    await writer.close();
    expect((await log.bounds()).lastOffset).toBe(1);
    expect(await queued).toBe(1);
    await expect(writer.append(entry(2))).rejects.toSatisfy(
      (err) => err instanceof RelayLogError && err.code === 'LogClosed',
    );
  });
});

describe('LogReplay', () => {
  it('yields exactly what the member is due, in order, a page at a time; return() stops it', async () => {
    const log = open();
    const batch: LogAppend[] = [];
    for (let i = 0; i < 50; i++) {
      const audience = i % 5 === 0 ? { kind: 'member' as const, name: i % 10 === 0 ? 'bob' : 'carol' } : ALL;
      batch.push(entry(i, audience, i % 7 === 0 ? 'bob' : 'alice'));
    }
    const offsets = await log.append(batch);
    const due = batch
      .map((e, i) => ({ e, offset: offsets[i] as number }))
      .filter(
        ({ e }) =>
          (e.audience.kind === 'all' && e.sender !== 'bob') ||
          (e.audience.kind === 'member' && e.audience.name === 'bob'),
      )
      .map(({ offset }) => offset);
    const replay = new LogReplay(log, { afterOffset: 0, member: 'bob', pageSize: 4 });
    const seen: number[] = [];
    for await (const e of replay) {
      seen.push(e.offset);
      expect(replay.position).toBeGreaterThanOrEqual(e.offset);
    }
    expect(seen).toEqual(due);
    expect(replay.caughtUp).toBe(true);
    expect(replay.position).toBe(50);

    const partial = new LogReplay(log, { afterOffset: 10, member: 'bob', pageSize: 4 });
    const some: LogEntry[] = [];
    for await (const e of partial) {
      some.push(e);
      if (some.length === 3) break;
    }
    expect(some.map((e) => e.offset)).toEqual(due.filter((o) => o > 10).slice(0, 3));
    expect(partial.caughtUp).toBe(false);
    expect(await partial.next()).toEqual({ done: true, value: undefined });
  });

  it('under backpressure, frames stored while the caller waits are replayed; then live picks up after position', async () => {
    const log = open();
    const writer = new LogWriter(log);
    await Promise.all(Array.from({ length: 20 }, (_, i) => writer.append(entry(i))));
    const replay = new LogReplay(log, { afterOffset: 0, member: 'bob', pageSize: 3 });
    const replayed: number[] = [];
    let appended = 20;
    for await (const e of replay) {
      replayed.push(e.offset);
      // The socket is "full" every third frame: wait for the next turn, while a member keeps sending.
      if (replayed.length % 3 === 0 && appended < 40) {
        const more = writer.append(entry(appended++));
        await nextTurn();
        await more;
      }
    }
    // Going live now, in the same turn: a frame stored from here on has an offset above position.
    expect(replay.caughtUp).toBe(true);
    const live: number[] = [];
    const offset = await writer.append(entry(appended++));
    if (offset > replay.position) live.push(offset);
    expect([...replayed, ...live]).toEqual(Array.from({ length: appended }, (_, i) => i + 1));
  });
});
