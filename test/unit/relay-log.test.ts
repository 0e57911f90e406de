/**
 * The relay's embedded store-and-forward log (src-main/relay/log): real SQLite files in a
 * temporary folder. The behaviour every RelayLog shares comes from test/helpers/relay-log-contract.ts
 * (also run against JetStream in test/integration/relay-log-jetstream.test.ts); the rest is SQLite's.
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
} from '../../src-main/relay/log/index.js';
import { PAGE_SIZE } from '../../src-main/relay/log/schema.js';
import { READ_SQL } from '../../src-main/relay/log/sqlite-log.js';
import {
  ALL,
  codeOf,
  frame,
  offsetsAndViewsContract,
  persistenceContract,
  retentionContract,
  texts,
  type LogHarness,
} from '../helpers/relay-log-contract.js';

const tmp = () => mkdtempSync(join(tmpdir(), 'scx-relay-log-'));
const opened: SqliteRelayLog[] = [];

function open(dir: string, options?: Parameters<typeof SqliteRelayLog.open>[1]): SqliteRelayLog {
  const log = SqliteRelayLog.open(dir, options);
  opened.push(log);
  return log;
}

afterEach(async () => {
  for (const log of opened.splice(0)) await log.close();
});

const dirs = new Map<SqliteRelayLog, string>();
function openTracked(dir: string): SqliteRelayLog {
  const log = open(dir);
  dirs.set(log, dir);
  return log;
}

const sqlite: LogHarness = {
  fresh: () => Promise.resolve(openTracked(tmp())),
  reopen: async (log) => {
    const dir = dirs.get(log as SqliteRelayLog);
    if (dir === undefined) throw new Error('not a log of this file');
    await log.close();
    return openTracked(dir);
  },
  frameBytes: true,
  afterClose: {
    title: '; file 0600',
    check: (log) => expect(statSync((log as SqliteRelayLog).path).mode & 0o777).toBe(0o600),
  },
};

describe('relay log: offsets, order, per-member views', () => {
  offsetsAndViewsContract(() => sqlite);

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
});

describe('relay log: bounds, GAP, retention', () => {
  retentionContract(() => sqlite);

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
  persistenceContract(() => sqlite);

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
