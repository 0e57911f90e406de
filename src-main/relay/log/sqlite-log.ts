/**
 * The embedded RelayLog: one SQLite file, `<dataDir>/relay-log.sqlite` (schema.ts), the default for
 * a relay on one machine. better-sqlite3 is synchronous, so every method does its work inside the
 * call and returns a settled promise; one append call is one transaction.
 *
 * Durability: a commit has been written to the -wal file before append resolves. With
 * synchronous=NORMAL (the default) that write is in the kernel's page cache, which a kill -9 of
 * the relay cannot take back; a power cut or kernel crash can lose the latest commits (never the
 * file's consistency). synchronous=FULL also fsyncs every commit. docs/relay-log.md has the numbers.
 */
import { join } from 'node:path';
import type Database from 'better-sqlite3-multiple-ciphers';
import { RelayLogError } from './errors.js';
import { openLogFile, wrapError, type Db, type Synchronous } from './schema.js';
import {
  READ_DEFAULT_LIMIT,
  READ_DEFAULT_MAX_BYTES,
  READ_MAX_LIMIT,
  RETENTION_DEFAULT_MAX_FRAMES,
  invalidLogEntry,
  type LogAppend,
  type LogBounds,
  type LogEntry,
  type LogPage,
  type LogReadRequest,
  type RelayLog,
  type RetentionPolicy,
  type RetentionResult,
} from './types.js';

export const RELAY_LOG_FILE = 'relay-log.sqlite';

export interface SqliteRelayLogOptions {
  /** 'normal' (default): survives kill -9; 'full': also survives a power cut, one fsync per append. */
  synchronous?: Synchronous;
  /** How long open() waits for another process to release the file before LogLocked (default 0). */
  lockTimeoutMs?: number;
  /** The clock for storedAt (ms since the Unix epoch); tests pass their own. */
  now?: () => number;
}

const COLUMNS = 'seq, stored_at, audience, sender, frame';
/**
 * A member's view as a merge of two ranges, each already in seq order: broadcasts from the table
 * itself (rowid = seq), frames for the member from frames_to_member. SQLite runs a UNION ALL with
 * ORDER BY as a merge (no sort, stops at LIMIT). A single `audience IS NULL OR audience = ?` would
 * be planned as a multi-index OR that collects the whole tail and sorts it.
 */
export const READ_SQL = {
  withoutOwn: `SELECT ${COLUMNS} FROM frames WHERE audience IS NULL AND seq > @after AND sender <> @member
    UNION ALL SELECT ${COLUMNS} FROM frames WHERE audience = @member AND seq > @after
    ORDER BY seq LIMIT @limit`,
  withOwn: `SELECT ${COLUMNS} FROM frames WHERE audience IS NULL AND seq > @after
    UNION ALL SELECT ${COLUMNS} FROM frames WHERE audience = @member AND seq > @after
    ORDER BY seq LIMIT @limit`,
} as const;

interface FrameRow {
  seq: number;
  stored_at: number;
  audience: string | null;
  sender: string;
  frame: Buffer;
}

interface ReadParams {
  after: number;
  member: string;
  limit: number;
}

type Statement<P extends unknown[] | object, R = unknown> = Database.Statement<P, R>;

export class SqliteRelayLog implements RelayLog {
  readonly streamId: string;
  private lastSeq: number;
  private droppedThrough: number;
  private bytes: number;
  private lastStoredAt: number;
  private closed = false;
  private readonly clock: () => number;
  private readonly insert: Statement<[number, number, string | null, string, number, Buffer]>;
  private readonly setState: Statement<[number, number]>;
  private readonly readWithoutOwn: Statement<ReadParams, FrameRow>;
  private readonly readWithOwn: Statement<ReadParams, FrameRow>;
  private readonly oldest: Statement<[number], { seq: number; stored_at: number; size: number }>;
  private readonly deleteThrough: Statement<[number]>;
  private readonly metaGet: Statement<[string], { value: Buffer }>;
  private readonly metaSet: Statement<[string, Buffer]>;
  private readonly appendTx: (batch: readonly LogAppend[], first: number, now: number, bytes: number) => void;
  private readonly dropTx: (through: number, bytes: number) => void;

  private constructor(
    private readonly db: Db,
    readonly path: string,
    state: { streamId: string; droppedThrough: number; bytes: number },
    options: SqliteRelayLogOptions,
  ) {
    this.streamId = state.streamId;
    this.droppedThrough = state.droppedThrough;
    this.bytes = state.bytes;
    this.clock = options.now ?? Date.now;
    const prepare = <P extends unknown[] | object, R = unknown>(sql: string): Statement<P, R> =>
      db.prepare<P, R>(sql) as Statement<P, R>;
    this.insert = prepare(
      'INSERT INTO frames (seq, stored_at, audience, sender, size, frame) VALUES (?, ?, ?, ?, ?, ?)',
    );
    this.setState = prepare('UPDATE log_state SET dropped_through = ?, bytes = ? WHERE id = 1');
    this.readWithoutOwn = prepare(READ_SQL.withoutOwn);
    this.readWithOwn = prepare(READ_SQL.withOwn);
    this.oldest = prepare('SELECT seq, stored_at, size FROM frames WHERE seq > ? ORDER BY seq');
    this.deleteThrough = prepare('DELETE FROM frames WHERE seq <= ?');
    this.metaGet = prepare('SELECT value FROM meta WHERE key = ?');
    this.metaSet = prepare(
      'INSERT INTO meta (key, value) VALUES (?, ?) ON CONFLICT (key) DO UPDATE SET value = excluded.value',
    );
    this.appendTx = db.transaction(
      (batch: readonly LogAppend[], first: number, now: number, bytes: number) => {
        let seq = first;
        for (const e of batch) {
          const audience = e.audience.kind === 'all' ? null : e.audience.name;
          this.insert.run(seq++, now, audience, e.sender, e.frame.length, e.frame);
        }
        this.setState.run(this.droppedThrough, bytes);
      },
    );
    this.dropTx = db.transaction((through: number, bytes: number) => {
      this.deleteThrough.run(through);
      this.setState.run(through, bytes);
    });
    // Each from one end of the rowid b-tree (a combined min/max/max query would scan the table);
    // stored_at never decreases along the log, so the last row's is the latest.
    const lo = db.prepare('SELECT seq FROM frames ORDER BY seq LIMIT 1').get() as { seq: number } | undefined;
    const hi = db.prepare('SELECT seq, stored_at FROM frames ORDER BY seq DESC LIMIT 1').get() as
      { seq: number; stored_at: number } | undefined;
    if (lo !== undefined && lo.seq !== this.droppedThrough + 1) {
      throw new RelayLogError(
        'LogCorrupt',
        `${path}: the first frame is ${lo.seq}, retention state says ${this.droppedThrough + 1}`,
      );
    }
    this.lastSeq = hi?.seq ?? this.droppedThrough;
    this.lastStoredAt = hi?.stored_at ?? 0;
  }

  /** Opens or creates `<dataDir>/relay-log.sqlite`. Throws RelayLogError. */
  static open(dataDir: string, options: SqliteRelayLogOptions = {}): SqliteRelayLog {
    const path = join(dataDir, RELAY_LOG_FILE);
    const opened = openLogFile(path, dataDir, options.synchronous ?? 'normal', options.lockTimeoutMs ?? 0);
    try {
      return new SqliteRelayLog(opened.db, path, opened, options);
    } catch (err) {
      opened.db.close();
      throw wrapError(err, path, 'cannot open');
    }
  }

  append(batch: readonly LogAppend[]): Promise<number[]> {
    const invalid = batch.map(invalidLogEntry).find((reason) => reason !== undefined);
    if (invalid !== undefined) return Promise.reject(new TypeError(`not a log entry: ${invalid}`));
    return this.run('cannot append to', () => {
      if (batch.length === 0) return [];
      // storedAt never goes back along the log, so age-based retention can drop a prefix.
      const now = Math.max(this.clock(), this.lastStoredAt);
      let added = 0;
      for (const e of batch) added += e.frame.length;
      const first = this.lastSeq + 1;
      this.appendTx(batch, first, now, this.bytes + added);
      // Only after the commit: a failed transaction leaves the in-memory state as it was.
      this.lastSeq += batch.length;
      this.bytes += added;
      this.lastStoredAt = now;
      return Array.from({ length: batch.length }, (_, i) => first + i);
    });
  }

  read(request: LogReadRequest): Promise<LogPage> {
    const { afterOffset, member } = request;
    const limit = request.limit ?? READ_DEFAULT_LIMIT;
    const maxBytes = request.maxBytes ?? READ_DEFAULT_MAX_BYTES;
    if (!Number.isSafeInteger(afterOffset) || afterOffset < 0) {
      return Promise.reject(new RangeError(`afterOffset must be a non-negative integer, not ${afterOffset}`));
    }
    if (!Number.isInteger(limit) || limit < 1 || limit > READ_MAX_LIMIT) {
      return Promise.reject(new RangeError(`limit must be an integer from 1 to ${READ_MAX_LIMIT}`));
    }
    if (!Number.isSafeInteger(maxBytes) || maxBytes < 1) {
      return Promise.reject(new RangeError('maxBytes must be a positive integer'));
    }
    if (typeof member !== 'string' || member.length === 0) {
      return Promise.reject(new TypeError('member must be a non-empty string'));
    }
    return this.run('cannot read', () => {
      const statement = request.ownBroadcasts === true ? this.readWithOwn : this.readWithoutOwn;
      const entries: LogEntry[] = [];
      let bytes = 0;
      let cut = false;
      // One row more than the limit tells a full page from the end without another query.
      for (const row of statement.iterate({ after: afterOffset, member, limit: limit + 1 })) {
        if (entries.length === limit || (entries.length > 0 && bytes + row.frame.length > maxBytes)) {
          cut = true;
          break;
        }
        bytes += row.frame.length;
        entries.push({
          offset: row.seq,
          storedAt: row.stored_at,
          audience: row.audience === null ? { kind: 'all' } : { kind: 'member', name: row.audience },
          sender: row.sender,
          frame: row.frame,
        });
      }
      const last = entries.at(-1)?.offset ?? afterOffset;
      return { entries, nextAfter: cut ? last : Math.max(afterOffset, this.lastSeq), end: !cut };
    });
  }

  bounds(): Promise<LogBounds> {
    return this.run('cannot read', () => ({
      firstOffset: this.droppedThrough + 1,
      lastOffset: this.lastSeq,
      frames: this.lastSeq - this.droppedThrough,
      bytes: this.bytes,
    }));
  }

  firstOffsetFor(member: string): Promise<number | undefined> {
    return this.run('cannot read', () => {
      // frames_to_member (audience, seq) answers this from the index alone.
      const seq = this.db.prepare('SELECT min(seq) FROM frames WHERE audience = ?').pluck().get(member);
      return typeof seq === 'number' ? seq : undefined;
    });
  }

  enforceRetention(policy: RetentionPolicy): Promise<RetentionResult> {
    const { maxAgeMs, maxBytes, now } = policy;
    const maxFrames = policy.maxFrames ?? RETENTION_DEFAULT_MAX_FRAMES;
    for (const [name, value] of Object.entries({ maxAgeMs, maxBytes, now, maxFrames })) {
      if (!Number.isSafeInteger(value) || value < (name === 'maxFrames' ? 1 : 0)) {
        return Promise.reject(
          new RangeError(`retention ${name} must be a non-negative integer, not ${value}`),
        );
      }
    }
    return this.run('cannot apply retention to', () => {
      const cutoff = now - maxAgeMs;
      let through = this.droppedThrough;
      let remaining = this.bytes;
      let dropped = 0;
      let more = false;
      for (const row of this.oldest.iterate(this.droppedThrough)) {
        if (row.stored_at >= cutoff && remaining <= maxBytes) break;
        if (dropped === maxFrames) {
          more = true;
          break;
        }
        through = row.seq;
        remaining -= row.size;
        dropped++;
      }
      if (dropped > 0) {
        this.dropTx(through, remaining);
        this.droppedThrough = through;
      }
      const droppedBytes = this.bytes - remaining;
      this.bytes = remaining;
      return { droppedFrames: dropped, droppedBytes, firstOffset: this.droppedThrough + 1, more };
    });
  }

  getMeta(key: string): Promise<Buffer | undefined> {
    if (!validKey(key)) return Promise.reject(new TypeError('a meta key is a string of 1 to 256 characters'));
    return this.run('cannot read', () => this.metaGet.get(key)?.value);
  }

  setMeta(key: string, value: Buffer): Promise<void> {
    if (!validKey(key)) return Promise.reject(new TypeError('a meta key is a string of 1 to 256 characters'));
    if (!Buffer.isBuffer(value)) return Promise.reject(new TypeError('a meta value is a Buffer'));
    return this.run('cannot write', () => {
      this.metaSet.run(key, value);
    });
  }

  close(): Promise<void> {
    if (!this.closed) {
      this.closed = true;
      try {
        this.db.close();
      } catch (err) {
        return Promise.reject(wrapError(err, this.path, 'cannot close'));
      }
    }
    return Promise.resolve();
  }

  private run<T>(doing: string, work: () => T): Promise<T> {
    if (this.closed) return Promise.reject(new RelayLogError('LogClosed', `${this.path} is closed`));
    try {
      return Promise.resolve(work());
    } catch (err) {
      return Promise.reject(wrapError(err, this.path, doing));
    }
  }
}

function validKey(key: unknown): key is string {
  return typeof key === 'string' && key.length >= 1 && key.length <= 256;
}
