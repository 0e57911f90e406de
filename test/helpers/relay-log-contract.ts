/**
 * The RelayLog behaviour every implementation shares (src-main/relay/log/types.ts), as vitest
 * tests registered by the calling file inside its own describe blocks: test/unit/relay-log.test.ts
 * for the embedded SQLite log, test/integration/relay-log-jetstream.test.ts for JetStream on a
 * real 1-server and 3-server NATS. What legitimately differs is a harness property, not a skip.
 */
import { randomBytes } from 'node:crypto';
import { expect, it } from 'vitest';
import {
  checkSync,
  RelayLogError,
  type LogAppend,
  type LogEntry,
  type RelayLog,
} from '../../src-main/relay/log/index.js';

export interface LogHarness {
  /** A new, empty log with storage of its own. */
  fresh(): Promise<RelayLog>;
  /** Closes `log` and opens the same storage again. */
  reopen(log: RelayLog): Promise<RelayLog>;
  /**
   * True when bounds().bytes counts frame bytes only (SQLite). JetStream's stream state counts the
   * stored message (subject, headers, overhead), which is also what its max_bytes limit counts.
   */
  frameBytes: boolean;
  /** Extra checks once a log was closed (the file's mode, for SQLite), named in the test title. */
  afterClose?: { title: string; check(log: RelayLog): void };
}

export const ALL = { kind: 'all' } as const;
export const to = (name: string) => ({ kind: 'member', name }) as const;
export const frame = (text: string) => Buffer.from(text);
export const texts = (entries: LogEntry[]) => entries.map((e) => e.frame.toString());

export async function codeOf(work: () => unknown): Promise<string | undefined> {
  try {
    await work();
  } catch (err) {
    return err instanceof RelayLogError ? err.code : `not a RelayLogError: ${String(err)}`;
  }
  return undefined;
}

/** Offsets, order, per-member views, paging, malformed input. */
export function offsetsAndViewsContract(h: () => LogHarness): void {
  it('gives contiguous offsets from 1, +1 per frame, across batches, and returns frames byte for byte', async () => {
    const log = await h().fresh();
    expect(await log.bounds()).toEqual({ firstOffset: 1, lastOffset: 0, frames: 0, bytes: 0 });
    expect(await log.append([])).toEqual([]);
    const binary = randomBytes(4096);
    expect(
      await log.append([
        { audience: ALL, sender: 'alice', frame: frame('a1') },
        { audience: to('bob'), sender: 'alice', frame: binary },
      ]),
    ).toEqual([1, 2]);
    expect(await log.append([{ audience: ALL, sender: 'bob', frame: frame('b1') }])).toEqual([3]);
    const bounds = await log.bounds();
    expect(bounds).toMatchObject({ firstOffset: 1, lastOffset: 3, frames: 3 });
    if (h().frameBytes) expect(bounds.bytes).toBe(4 + 4096);
    else expect(bounds.bytes).toBeGreaterThanOrEqual(4 + 4096);
    const page = await log.read({ afterOffset: 0, member: 'bob' });
    expect(page.entries.map((e) => e.offset)).toEqual([1, 2]);
    expect(page.entries[1]?.frame.equals(binary)).toBe(true);
    expect(page.entries[1]).toMatchObject({ audience: { kind: 'member', name: 'bob' }, sender: 'alice' });
    expect(page).toMatchObject({ nextAfter: 3, end: true });
  });

  it('a member sees broadcasts of others and frames addressed to it; never others’ targeted frames', async () => {
    const log = await h().fresh();
    const batch: LogAppend[] = [
      { audience: ALL, sender: 'alice', frame: frame('alice to all') },
      { audience: to('bob'), sender: 'alice', frame: frame('alice to bob') },
      { audience: to('carol'), sender: 'alice', frame: frame('alice to carol') },
      { audience: ALL, sender: 'bob', frame: frame('bob to all') },
      { audience: to('alice'), sender: 'carol', frame: frame('carol to alice') },
    ];
    await log.append(batch);
    const view = async (member: string, ownBroadcasts?: boolean) =>
      texts((await log.read({ afterOffset: 0, member, ownBroadcasts })).entries);
    expect(await view('alice')).toEqual(['bob to all', 'carol to alice']);
    expect(await view('bob')).toEqual(['alice to all', 'alice to bob']);
    expect(await view('carol')).toEqual(['alice to all', 'alice to carol', 'bob to all']);
    expect(await view('dave')).toEqual(['alice to all', 'bob to all']);
    // ownBroadcasts: its own broadcasts too (history on a new device); its targeted ones never.
    expect(await view('alice', true)).toEqual(['alice to all', 'bob to all', 'carol to alice']);
  });

  it('pages by limit and by maxBytes; nextAfter resumes exactly; a page holds at least one entry', async () => {
    const log = await h().fresh();
    const batch: LogAppend[] = [];
    for (let i = 1; i <= 10; i++) {
      batch.push({ audience: i % 3 === 0 ? to('eve') : ALL, sender: 'alice', frame: Buffer.alloc(100, i) });
    }
    await log.append(batch);
    const seen: number[] = [];
    let after = 0;
    for (let pages = 0; ; pages++) {
      expect(pages).toBeLessThan(10);
      const page = await log.read({ afterOffset: after, member: 'bob', limit: 3 });
      seen.push(...page.entries.map((e) => e.offset));
      after = page.nextAfter;
      if (page.end) break;
    }
    expect(seen).toEqual([1, 2, 4, 5, 7, 8, 10]);
    const bytesCut = await log.read({ afterOffset: 0, member: 'bob', maxBytes: 250 });
    expect(bytesCut.entries.map((e) => e.offset)).toEqual([1, 2]);
    expect(bytesCut).toMatchObject({ nextAfter: 2, end: false });
    const tiny = await log.read({ afterOffset: 0, member: 'bob', maxBytes: 1 });
    expect(tiny.entries.map((e) => e.offset)).toEqual([1]);
    // The tail holds only eve's frames: bob's page ends at the log's last offset, not at 8.
    const tail = await log.read({ afterOffset: 8, member: 'bob', limit: 1 });
    expect(tail.entries.map((e) => e.offset)).toEqual([10]);
    const none = await log.read({ afterOffset: 10, member: 'bob' });
    expect(none).toEqual({ entries: [], nextAfter: 10, end: true });
    const evesOnly = await log.read({ afterOffset: 1, member: 'carol', limit: 1 });
    expect(evesOnly).toMatchObject({ nextAfter: 2, end: false });
  });

  it('refuses malformed entries and requests before writing anything', async () => {
    const log = await h().fresh();
    const bad = [
      { audience: ALL, sender: 'alice', frame: frame('fine') },
      { audience: { kind: 'member', name: '' }, sender: 'alice', frame: frame('x') },
    ] as LogAppend[];
    await expect(log.append(bad)).rejects.toThrow(TypeError);
    await expect(log.append([{ audience: ALL, sender: 'a', frame: Buffer.alloc(0) }])).rejects.toThrow(
      TypeError,
    );
    expect((await log.bounds()).lastOffset).toBe(0);
    await expect(log.read({ afterOffset: -1, member: 'a' })).rejects.toThrow(RangeError);
    await expect(log.read({ afterOffset: 0, member: 'a', limit: 0 })).rejects.toThrow(RangeError);
    await expect(log.read({ afterOffset: 0, member: '' })).rejects.toThrow(TypeError);
  });

  it('names that are not plain words (dots, wildcards, spaces, non-ASCII) are audiences and senders like any other', async () => {
    const log = await h().fresh();
    const odd = ['a.b', '*', '>', 'two words', 'zoë', 'ünïcödé.*.>'];
    await log.append(odd.map((name) => ({ audience: to(name), sender: name, frame: frame(`to ${name}`) })));
    await log.append(odd.map((name) => ({ audience: ALL, sender: name, frame: frame(`from ${name}`) })));
    for (const name of odd) {
      const page = await log.read({ afterOffset: 0, member: name });
      expect(texts(page.entries)).toEqual([
        `to ${name}`,
        ...odd.filter((other) => other !== name).map((other) => `from ${other}`),
      ]);
      expect(page.entries[0]).toMatchObject({ audience: to(name), sender: name });
      expect(await log.firstOffsetFor(name)).toBe(odd.indexOf(name) + 1);
    }
    expect(await log.firstOffsetFor('nobody')).toBeUndefined();
  });
}

/** Retention drops a prefix, GAP detection over it, offsets never reused. */
export function retentionContract(h: () => LogHarness): void {
  it('retention drops the oldest frames down to maxBytes; an emptied log keeps its offsets, across reopen too', async () => {
    let log = await h().fresh();
    await log.append(
      Array.from({ length: 10 }, () => ({ audience: ALL, sender: 'a', frame: Buffer.alloc(100) })),
    );
    // What one stored frame counts for maxBytes here (frames alone, or the stored message).
    const each = (await log.bounds()).bytes / 10;
    const policy = { maxAgeMs: 30 * 86_400_000, now: Date.now() };
    expect(await log.enforceRetention({ ...policy, maxBytes: Math.floor(each * 4.5) })).toEqual({
      droppedFrames: 6,
      droppedBytes: 6 * each,
      firstOffset: 7,
      more: false,
    });
    const bounds = await log.bounds();
    expect(bounds).toEqual({ firstOffset: 7, lastOffset: 10, frames: 4, bytes: 4 * each });
    const id = log.streamId;
    expect(checkSync(id, bounds, { streamId: id, afterOffset: 6 })).toEqual({ ok: true });
    expect(checkSync(id, bounds, { streamId: id, afterOffset: 5 })).toMatchObject({
      ok: false,
      reason: 'Expired',
    });
    expect((await log.read({ afterOffset: 0, member: 'b' })).entries.map((e) => e.offset)).toEqual([
      7, 8, 9, 10,
    ]);
    expect(await log.firstOffsetFor('b')).toBeUndefined();
    expect(await log.enforceRetention({ ...policy, maxBytes: 0 })).toMatchObject({
      droppedFrames: 4,
      firstOffset: 11,
    });
    expect(await log.bounds()).toEqual({ firstOffset: 11, lastOffset: 10, frames: 0, bytes: 0 });
    expect(await log.read({ afterOffset: 0, member: 'b' })).toEqual({
      entries: [],
      nextAfter: 10,
      end: true,
    });
    expect(await log.append([{ audience: ALL, sender: 'a', frame: frame('x') }])).toEqual([11]);
    log = await h().reopen(log);
    expect(log.streamId).toBe(id);
    expect(await log.append([{ audience: ALL, sender: 'a', frame: frame('y') }])).toEqual([12]);
    expect(texts((await log.read({ afterOffset: 0, member: 'b' })).entries)).toEqual(['x', 'y']);
  });
}

/** Stream id, frames and meta across reopen; LogClosed. */
export function persistenceContract(h: () => LogHarness): void {
  const extra = h().afterClose;
  it(`keeps its stream id, offsets, frames and meta across reopen${extra?.title ?? ''}`, async () => {
    const first = await h().fresh();
    const id = first.streamId;
    expect(id).toMatch(/^[0-9a-f]{32}$/);
    await first.append([{ audience: to('bob'), sender: 'alice', frame: frame('kept') }]);
    await first.setMeta('roster', Buffer.from([0, 1, 2, 255]));
    await first.setMeta('roster', Buffer.from([9]));
    await first.setMeta('a key with spaces / and ünicode', Buffer.from('v'));
    expect(await first.getMeta('missing')).toBeUndefined();
    const second = await h().reopen(first);
    extra?.check(first);
    expect(second.streamId).toBe(id);
    expect(await second.getMeta('roster')).toEqual(Buffer.from([9]));
    expect(await second.getMeta('a key with spaces / and ünicode')).toEqual(Buffer.from('v'));
    expect(texts((await second.read({ afterOffset: 0, member: 'bob' })).entries)).toEqual(['kept']);
    expect(await second.append([{ audience: ALL, sender: 'bob', frame: frame('next') }])).toEqual([2]);
    expect((await h().fresh()).streamId).not.toBe(id);
  });

  it('after close, calls get LogClosed; close is idempotent', async () => {
    const log = await h().fresh();
    await log.close();
    await log.close();
    expect(await codeOf(() => log.append([{ audience: ALL, sender: 'a', frame: frame('x') }]))).toBe(
      'LogClosed',
    );
    expect(await codeOf(() => log.read({ afterOffset: 0, member: 'a' }))).toBe('LogClosed');
    expect(await codeOf(() => log.bounds())).toBe('LogClosed');
    expect(await codeOf(() => log.getMeta('k'))).toBe('LogClosed');
    expect(await codeOf(() => log.setMeta('k', Buffer.from('v')))).toBe('LogClosed');
  });
}
