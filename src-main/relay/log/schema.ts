/**
 * The embedded log's file: opening it (locks, pragmas, foreign-file checks), its migrations, and
 * the mapping of SQLite failures to RelayLogError codes.
 *
 * Tables:
 *   schema_migrations(version INTEGER PRIMARY KEY, applied_at INTEGER)   one row per migration
 *   log_state(id = 1, format, stream_id, created_at, dropped_through, bytes)   the one state row
 *   frames(seq INTEGER PRIMARY KEY, stored_at, audience, sender, size, frame BLOB)
 *   meta(key TEXT PRIMARY KEY, value BLOB)                               the relay's other state
 *
 * `seq` is the offset and the table's rowid, so the log is ordered by offset on disk and an
 * append is a b-tree append. `audience` is NULL for everyone, else the member's name.
 * `dropped_through`: every offset up to it was dropped by retention (retention drops a prefix), so
 * bounds and the next offset survive a log that retention emptied. `bytes`: the sum of `size`
 * (frame bytes), kept in the same transactions as inserts and deletes.
 */
import { randomBytes } from 'node:crypto';
import { chmodSync, closeSync, existsSync, mkdirSync, openSync } from 'node:fs';
import Database from 'better-sqlite3-multiple-ciphers';
import { RelayLogError } from './errors.js';

export type Db = InstanceType<typeof Database>;

/** The value of log_state.format: what tells a relay log from any other SQLite file. */
export const LOG_FORMAT = 'securechat-x relay log';

/** Each entry moves the schema from its index to index + 1; never edit one that has shipped. */
const MIGRATIONS: readonly string[] = [
  `CREATE TABLE log_state (
     id INTEGER PRIMARY KEY CHECK (id = 1),
     format TEXT NOT NULL,
     stream_id TEXT NOT NULL,
     created_at INTEGER NOT NULL,
     dropped_through INTEGER NOT NULL CHECK (dropped_through >= 0),
     bytes INTEGER NOT NULL CHECK (bytes >= 0)
   ) STRICT;
   CREATE TABLE frames (
     seq INTEGER PRIMARY KEY,
     stored_at INTEGER NOT NULL,
     audience TEXT,
     sender TEXT NOT NULL,
     size INTEGER NOT NULL,
     frame BLOB NOT NULL
   ) STRICT;
   -- Frames for one member, in seq order. Broadcasts (most frames) need no index: the table
   -- itself is in seq order, and leaving them out saves an index insert per broadcast.
   CREATE INDEX frames_to_member ON frames (audience, seq) WHERE audience IS NOT NULL;
   CREATE TABLE meta (key TEXT PRIMARY KEY, value BLOB NOT NULL) STRICT;`,
];

export const SCHEMA_VERSION = MIGRATIONS.length;

/** The page size of a new log file. */
export const PAGE_SIZE = 16384;

export type Synchronous = 'normal' | 'full';

export interface OpenedLog {
  db: Db;
  streamId: string;
  droppedThrough: number;
  bytes: number;
}

function sqliteCode(err: unknown): string | undefined {
  const code = (err as { code?: unknown } | undefined)?.code;
  return typeof code === 'string' ? code : undefined;
}

/** Maps a failure to a RelayLogError (an existing one is passed through). */
export function wrapError(err: unknown, path: string, doing: string): RelayLogError {
  if (err instanceof RelayLogError) return err;
  const code = sqliteCode(err) ?? '';
  const detail = err instanceof Error ? err.message : String(err);
  if (code === 'SQLITE_NOTADB') {
    return new RelayLogError('LogCorrupt', `${path} is not a database (damaged, or encrypted)`, {
      cause: err,
    });
  }
  if (code.startsWith('SQLITE_CORRUPT')) {
    return new RelayLogError('LogCorrupt', `${path} is damaged (${doing}): ${detail}`, { cause: err });
  }
  if (code.startsWith('SQLITE_BUSY') || code.startsWith('SQLITE_LOCKED')) {
    return new RelayLogError('LogLocked', `${path} is in use by another process (another relay?)`, {
      cause: err,
    });
  }
  if (code === 'SQLITE_FULL') {
    return new RelayLogError('LogFull', `${doing} ${path}: the disk is full`, { cause: err });
  }
  return new RelayLogError('LogIo', `${doing} ${path}: ${detail}`, { cause: err });
}

/**
 * Opens (creating if needed) the log file: folder 0700, file 0600, EXCLUSIVE locking (a second
 * relay on the same data directory gets LogLocked instead of interleaving offsets; no -shm file),
 * WAL, then migrations. A file that is not ours is refused before anything is written to it.
 */
export function openLogFile(
  path: string,
  dir: string,
  synchronous: Synchronous,
  lockTimeoutMs: number,
): OpenedLog {
  let db: Db | undefined;
  try {
    mkdirSync(dir, { recursive: true, mode: 0o700 });
    // SQLite gives the -wal file the database file's mode: create it 0600 first.
    if (!existsSync(path)) closeSync(openSync(path, 'a', 0o600));
    chmodSync(path, 0o600);
    db = new Database(path, { timeout: lockTimeoutMs });
    db.pragma('locking_mode = EXCLUSIVE');
    checkOurs(db, path);
    // Only takes effect on a new file. 16 KiB pages: ~15 rows of a 1 KB frame per page, ~25 %
    // more appends/s than the 4 KiB default (docs/relay-log.md).
    db.pragma(`page_size = ${PAGE_SIZE}`);
    db.pragma('journal_mode = WAL');
    // Why NORMAL is the default, and what FULL adds: docs/relay-log.md, "Durability".
    db.pragma(`synchronous = ${synchronous === 'full' ? 'FULL' : 'NORMAL'}`);
    // Keep the -wal file from staying at its high-water mark after a burst.
    db.pragma('journal_size_limit = 67108864');
    migrate(db, path);
    const state = readState(db, path);
    return { db, ...state };
  } catch (err) {
    db?.close();
    throw wrapError(err, path, 'cannot open');
  }
}

/** Refuses a database that is something else: a relay log has a log_state row of our format. */
function checkOurs(db: Db, path: string): void {
  const tables = (
    db.prepare(`SELECT name FROM sqlite_master WHERE type = 'table'`).all() as { name: string }[]
  )
    .map((t) => t.name)
    .filter((name) => !name.startsWith('sqlite_'));
  if (tables.length === 0) return;
  if (!tables.includes('log_state') || !tables.includes('schema_migrations')) {
    throw new RelayLogError('LogForeign', `${path} is a database but not a relay log (tables: ${tables})`);
  }
  const row = db.prepare('SELECT format FROM log_state WHERE id = 1').get() as
    { format: unknown } | undefined;
  if (row?.format !== LOG_FORMAT) {
    throw new RelayLogError('LogForeign', `${path} is not a relay log (format ${String(row?.format)})`);
  }
}

function migrate(db: Db, path: string): void {
  // One transaction from the first table on: a kill during the first open leaves an empty file,
  // never a half-made log that the next open would take for a foreign database.
  db.transaction(() => {
    db.exec(
      `CREATE TABLE IF NOT EXISTS schema_migrations (version INTEGER PRIMARY KEY, applied_at INTEGER NOT NULL) STRICT;`,
    );
    const row = db.prepare('SELECT max(version) AS v FROM schema_migrations').get() as { v: number | null };
    const current = row.v ?? 0;
    if (current > SCHEMA_VERSION) {
      throw new RelayLogError(
        'LogTooNew',
        `${path} has schema version ${current}; this version of SecureChat-X knows up to ${SCHEMA_VERSION}`,
      );
    }
    const record = db.prepare('INSERT INTO schema_migrations (version, applied_at) VALUES (?, ?)');
    for (let v = current; v < SCHEMA_VERSION; v++) {
      db.exec(MIGRATIONS[v] as string);
      record.run(v + 1, Date.now());
    }
    if (current === 0) {
      // The stream id is born with the file: a new file is a new stream, whatever its offsets.
      db.prepare(
        'INSERT INTO log_state (id, format, stream_id, created_at, dropped_through, bytes) VALUES (1, ?, ?, ?, 0, 0)',
      ).run(LOG_FORMAT, randomBytes(16).toString('hex'), Date.now());
    }
  })();
}

function readState(db: Db, path: string): Omit<OpenedLog, 'db'> {
  const row = db.prepare('SELECT stream_id, dropped_through, bytes FROM log_state WHERE id = 1').get() as
    { stream_id: unknown; dropped_through: unknown; bytes: unknown } | undefined;
  const ok =
    row !== undefined &&
    typeof row.stream_id === 'string' &&
    /^[0-9a-f]{32}$/.test(row.stream_id) &&
    Number.isSafeInteger(row.dropped_through) &&
    Number.isSafeInteger(row.bytes);
  if (!ok) throw new RelayLogError('LogCorrupt', `${path}: the log_state row is missing or malformed`);
  return {
    streamId: row.stream_id as string,
    droppedThrough: row.dropped_through as number,
    bytes: row.bytes as number,
  };
}
