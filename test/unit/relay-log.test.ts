/**
 * The relay's embedded store-and-forward log (src-main/relay/log): real SQLite files in a
 * temporary folder.
 */
import { randomBytes } from 'node:crypto';
import { mkdtempSync, openSync, readFileSync, statSync, writeFileSync, writeSync, closeSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import Database from 'better-sqlite3-multiple-ciphers';
import { afterEach, describe, expect, it } from 'vitest';
import { MemberStateStore } from '../../src-main/client/state/member-store.js';
import {
  checkSync,
  RELAY_LOG_FILE,
  RelayLogError,
  SCHEMA_VERSION,
  SqliteRelayLog,
  type LogAppend,
  type LogEntry,
} from '../../src-main/relay/log/index.js';
import { PAGE_SIZE } from '../../src-main/relay/log/schema.js';
import { READ_SQL } from '../../src-main/relay/log/sqlite-log.js';

const tmp = () => mkdtempSync(join(tmpdir(), 'scx-relay-log-'));
const ALL = { kind: 'all' } as const;
const to = (name: string) => ({ kind: 'member', name }) as const;
const frame = (text: string) => Buffer.from(text);
const opened: SqliteRelayLog[] = [];

function open(dir: string, options?: Parameters<typeof SqliteRelayLog.open>[1]): SqliteRelayLog {
  const log = SqliteRelayLog.open(dir, options);
  opened.push(log);
  return log;
}

afterEach(async () => {
  for (const log of opened.splice(0)) await log.close();
});

async function codeOf(work: () => unknown): Promise<string | undefined> {
  try {
    await work();
  } catch (err) {
    return err instanceof RelayLogError ? err.code : `not a RelayLogError: ${String(err)}`;
  }
  return undefined;
}

const texts = (entries: LogEntry[]) => entries.map((e) => e.frame.toString());

describe('relay log: offsets, order, per-member views', () => {
  it('gives contiguous offsets from 1, +1 per frame, across batches, and returns frames byte for byte', async () => {
    const log = open(tmp());
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
    expect(await log.bounds()).toEqual({ firstOffset: 1, lastOffset: 3, frames: 3, bytes: 4 + 4096 });
    const page = await log.read({ afterOffset: 0, member: 'bob' });
    expect(page.entries.map((e) => e.offset)).toEqual([1, 2]);
    expect(page.entries[1]?.frame.equals(binary)).toBe(true);
    expect(page.entries[1]).toMatchObject({ audience: { kind: 'member', name: 'bob' }, sender: 'alice' });
    expect(page).toMatchObject({ nextAfter: 3, end: true });
  });

  it('a member sees broadcasts of others and frames addressed to it; never others’ targeted frames', async () => {
    const log = open(tmp());
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
    const log = open(tmp());
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

  it('reads as a merge of two ordered ranges: the table for broadcasts, the index for the member (no sort)', async () => {
    const dir = tmp();
    await open(dir).close();
    const db = new Database(join(dir, RELAY_LOG_FILE), { readonly: true });
    for (const sql of Object.values(READ_SQL)) {
      const plan = (
        db.prepare(`EXPLAIN QUERY PLAN ${sql}`).all({ after: 0, member: 'm', limit: 1 }) as {
          detail: string;
        }[]
      ).map((r) => r.detail);
      expect(plan).toContain('MERGE (UNION ALL)');
      expect(plan).toContain('SEARCH frames USING INTEGER PRIMARY KEY (rowid>?)');
      expect(plan).toContain('SEARCH frames USING INDEX frames_to_member (audience=? AND seq>?)');
      expect(plan.join(' | ')).not.toMatch(/TEMP B-TREE|SCAN frames/);
    }
    db.close();
  });

  it('refuses malformed entries and requests before writing anything', async () => {
    const log = open(tmp());
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
});

describe('relay log: bounds, GAP, retention', () => {
  it('tells a GAP: another stream, an offset older than retention, an offset the log does not hold', async () => {
    let clock = 1_000_000;
    const log = open(tmp(), { now: () => clock });
    for (let i = 0; i < 5; i++) {
      await log.append([{ audience: ALL, sender: 'alice', frame: frame(`m${i}`) }]);
      clock += 1000;
    }
    // m0 and m1 are older than 3.5 s at clock 1,005,000.
    const result = await log.enforceRetention({ maxAgeMs: 3500, maxBytes: 1e9, now: clock });
    expect(result).toEqual({ droppedFrames: 2, droppedBytes: 4, firstOffset: 3, more: false });
    const bounds = await log.bounds();
    expect(bounds).toEqual({ firstOffset: 3, lastOffset: 5, frames: 3, bytes: 6 });
    const id = log.streamId;
    expect(checkSync(id, bounds, { streamId: id, afterOffset: 2 })).toEqual({ ok: true });
    expect(checkSync(id, bounds, { streamId: id, afterOffset: 5 })).toEqual({ ok: true });
    expect(checkSync(id, bounds, { streamId: id, afterOffset: 1 })).toMatchObject({
      ok: false,
      reason: 'Expired',
    });
    expect(checkSync(id, bounds, { streamId: id, afterOffset: 6 })).toMatchObject({ reason: 'AheadOfLog' });
    expect(checkSync(id, bounds, { streamId: 'ff'.repeat(16), afterOffset: 3 })).toEqual({
      ok: false,
      reason: 'OtherStream',
      streamId: id,
      firstOffset: 3,
      lastOffset: 5,
    });
    expect(texts((await log.read({ afterOffset: 0, member: 'bob' })).entries)).toEqual(['m2', 'm3', 'm4']);
  });

  it('drops oldest first down to maxBytes, in capped steps, and never reuses an offset once emptied', async () => {
    const dir = tmp();
    const log = open(dir);
    await log.append(
      Array.from({ length: 10 }, () => ({ audience: ALL, sender: 'a', frame: Buffer.alloc(100) })),
    );
    const policy = { maxAgeMs: 1e12, maxBytes: 450, now: Date.now() };
    expect(await log.enforceRetention({ ...policy, maxFrames: 4 })).toEqual({
      droppedFrames: 4,
      droppedBytes: 400,
      firstOffset: 5,
      more: true,
    });
    expect(await log.enforceRetention(policy)).toMatchObject({
      droppedFrames: 2,
      firstOffset: 7,
      more: false,
    });
    expect(await log.bounds()).toEqual({ firstOffset: 7, lastOffset: 10, frames: 4, bytes: 400 });
    expect(await log.enforceRetention(policy)).toMatchObject({ droppedFrames: 0, more: false });
    expect(await log.enforceRetention({ ...policy, maxBytes: 0 })).toMatchObject({ droppedFrames: 4 });
    await log.close();
    // Emptied by retention and reopened: the next offset still follows the last one ever given.
    const again = open(dir);
    expect(await again.bounds()).toEqual({ firstOffset: 11, lastOffset: 10, frames: 0, bytes: 0 });
    expect(await again.append([{ audience: ALL, sender: 'a', frame: frame('x') }])).toEqual([11]);
  });

  it('storedAt never goes back, so age retention stays a prefix when the clock does (across reopen too)', async () => {
    const dir = tmp();
    let clock = 5000;
    const log = open(dir, { now: () => clock });
    await log.append([{ audience: ALL, sender: 'a', frame: frame('1') }]);
    clock = 1000;
    await log.append([{ audience: ALL, sender: 'a', frame: frame('2') }]);
    await log.close();
    const again = open(dir, { now: () => clock });
    await again.append([{ audience: ALL, sender: 'a', frame: frame('3') }]);
    const page = await again.read({ afterOffset: 0, member: 'b' });
    expect(page.entries.map((e) => e.storedAt)).toEqual([5000, 5000, 5000]);
  });
});

describe('relay log: the file', () => {
  it('keeps its stream id, offsets, frames and meta across reopen; file 0600', async () => {
    const dir = tmp();
    const first = open(dir);
    const id = first.streamId;
    expect(id).toMatch(/^[0-9a-f]{32}$/);
    await first.append([{ audience: to('bob'), sender: 'alice', frame: frame('kept') }]);
    await first.setMeta('roster', Buffer.from([0, 1, 2, 255]));
    await first.setMeta('roster', Buffer.from([9]));
    expect(await first.getMeta('missing')).toBeUndefined();
    await first.close();
    expect(statSync(join(dir, RELAY_LOG_FILE)).mode & 0o777).toBe(0o600);
    const second = open(dir);
    expect(second.streamId).toBe(id);
    expect(await second.getMeta('roster')).toEqual(Buffer.from([9]));
    expect(texts((await second.read({ afterOffset: 0, member: 'bob' })).entries)).toEqual(['kept']);
    expect(await second.append([{ audience: ALL, sender: 'bob', frame: frame('next') }])).toEqual([2]);
    expect(open(tmp()).streamId).not.toBe(id);
  });

  it('a second opener gets LogLocked; after close, calls get LogClosed', async () => {
    const dir = tmp();
    const log = open(dir);
    expect(await codeOf(() => SqliteRelayLog.open(dir))).toBe('LogLocked');
    await log.close();
    await log.close();
    expect(await codeOf(() => log.append([{ audience: ALL, sender: 'a', frame: frame('x') }]))).toBe(
      'LogClosed',
    );
    expect(await codeOf(() => log.read({ afterOffset: 0, member: 'a' }))).toBe('LogClosed');
    expect(await codeOf(() => log.bounds())).toBe('LogClosed');
  });

  it('refuses a file that is not a relay log, and one from a newer version, without writing to it', async () => {
    const garbage = tmp();
    writeFileSync(join(garbage, RELAY_LOG_FILE), randomBytes(8192));
    expect(await codeOf(() => SqliteRelayLog.open(garbage))).toBe('LogCorrupt');

    const encrypted = tmp();
    MemberStateStore.open(join(encrypted, RELAY_LOG_FILE), randomBytes(32), {
      groupId: 'g',
      member: 'm',
    }).close();
    expect(await codeOf(() => SqliteRelayLog.open(encrypted))).toBe('LogCorrupt');

    const foreign = tmp();
    const other = new Database(join(foreign, RELAY_LOG_FILE));
    other.exec('CREATE TABLE notes (x TEXT)');
    other.close();
    const before = readFileSync(join(foreign, RELAY_LOG_FILE));
    expect(await codeOf(() => SqliteRelayLog.open(foreign))).toBe('LogForeign');
    expect(readFileSync(join(foreign, RELAY_LOG_FILE)).equals(before)).toBe(true);

    const newer = tmp();
    await open(newer).close();
    const db = new Database(join(newer, RELAY_LOG_FILE));
    db.prepare('INSERT INTO schema_migrations (version, applied_at) VALUES (?, 0)').run(SCHEMA_VERSION + 1);
    db.close();
    expect(await codeOf(() => SqliteRelayLog.open(newer))).toBe('LogTooNew');
  });

  it('a damaged page is LogCorrupt, with the SQLite error as its cause', async () => {
    const dir = tmp();
    const log = open(dir);
    for (let i = 0; i < 20; i++) {
      await log.append(
        Array.from({ length: 50 }, () => ({ audience: ALL, sender: 'a', frame: randomBytes(1000) })),
      );
    }
    await log.close();
    const path = join(dir, RELAY_LOG_FILE);
    const pageSize = readFileSync(path).readUInt16BE(16);
    expect(pageSize).toBe(PAGE_SIZE);
    const fd = openSync(path, 'r+');
    // Overwrite the start of every page after the schema's: the frames' b-tree and index pages.
    for (let at = 2 * pageSize; at < statSync(path).size; at += pageSize)
      writeSync(fd, randomBytes(64), 0, 64, at);
    closeSync(fd);
    let error: unknown;
    try {
      const damaged = open(dir);
      await damaged.read({ afterOffset: 0, member: 'b', limit: 10_000, maxBytes: 1e9 });
    } catch (err) {
      error = err;
    }
    expect(error).toBeInstanceOf(RelayLogError);
    expect((error as RelayLogError).code).toBe('LogCorrupt');
    expect((error as RelayLogError).cause).toMatchObject({ code: expect.stringMatching(/^SQLITE_CORRUPT/) });
  });
});
