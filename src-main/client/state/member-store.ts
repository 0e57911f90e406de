/**
 * The member's local state store: one SQLCipher-compatible encrypted SQLite file
 * (better-sqlite3-multiple-ciphers, cipher `sqlcipher`, a raw 32-byte key). It holds the highest
 * epoch this member has seen, so that epoch numbers never repeat across restarts (DESIGN.md
 * §10.2, §10.4), and the message history with the processed log position; roster and epoch keys
 * follow through further migrations.
 *
 * Tables:
 *   schema_migrations(version INTEGER PRIMARY KEY, applied_at INTEGER)  one row per migration
 *   meta(key TEXT PRIMARY KEY, value TEXT NOT NULL)                     JSON values
 *   history, history_text                                              messages shown (history.ts)
 *   roster(id = 1, version, bytes)                                     the highest roster seen
 *   epoch_keys                                      the newest 64 epoch keys (epoch-keys.ts)
 *   own_prekeys, peer_prekeys                       X25519 prekeys: ours, the others' (prekeys.ts)
 * meta keys: `groupId`, `member` (whose store it is, checked on open), `highestEpoch`,
 * `logPosition` (history.ts).
 */
import { chmodSync, closeSync, existsSync, mkdirSync, openSync } from 'node:fs';
import { dirname } from 'node:path';
import Database from 'better-sqlite3-multiple-ciphers';
import type { EpochStore } from '../options.js';
import type { RosterStore } from '../roster-tracker.js';
import { EPOCH_KEYS_MIGRATION, EpochKeyTable, type StoredEpochKey } from './epoch-keys.js';
import { StateStoreError } from './errors.js';
import { HISTORY_MIGRATION, MessageHistory } from './history.js';
import { PREKEYS_MIGRATION, PrekeyTable } from './prekeys.js';
import type { OwnPrekey, PrekeyStore } from '../prekeys.js';
import type { SignedPrekey } from '../../core/pki/prekey.js';

export const STORE_KEY_BYTES = 32;

/** Each entry moves the schema from its index to index + 1; never edit one that has shipped. */
const MIGRATIONS: readonly string[] = [
  `CREATE TABLE meta (key TEXT PRIMARY KEY, value TEXT NOT NULL) STRICT;`,
  HISTORY_MIGRATION,
  // 3: the highest roster this member has seen (the CA-signed envelope as received), one row.
  `CREATE TABLE roster (
     id INTEGER PRIMARY KEY CHECK (id = 1),
     version INTEGER NOT NULL CHECK (version >= 1),
     bytes BLOB NOT NULL
   ) STRICT;`,
  // 4: epoch keys (epoch-keys.ts).
  EPOCH_KEYS_MIGRATION,
  // 5: prekeys (prekeys.ts).
  PREKEYS_MIGRATION,
];

export const SCHEMA_VERSION = MIGRATIONS.length;

export interface MemberStoreOwner {
  groupId: string;
  member: string;
}

type Db = InstanceType<typeof Database>;

function sqliteCode(err: unknown): string | undefined {
  const code = (err as { code?: unknown } | undefined)?.code;
  return typeof code === 'string' ? code : undefined;
}

function wrap(err: unknown, path: string, doing: string): StateStoreError {
  if (err instanceof StateStoreError) return err;
  const code = sqliteCode(err);
  if (code === 'SQLITE_NOTADB') {
    return new StateStoreError(
      'StateKeyWrong',
      `${path} cannot be opened with this key (another password, or not a state store)`,
      { cause: err },
    );
  }
  if (code === 'SQLITE_CORRUPT') {
    return new StateStoreError('StateStoreCorrupt', `${path} is damaged`, { cause: err });
  }
  return new StateStoreError('StateStoreIo', `${doing} ${path}: ${(err as Error).message}`, { cause: err });
}

export class MemberStateStore implements EpochStore, RosterStore, PrekeyStore {
  private highest: number;
  /** What this member was shown, and where it is in the relay's log (history.ts). */
  readonly history: MessageHistory;
  private readonly epochKeys: EpochKeyTable;
  // Prepared once, not per call (an epoch is saved by every member on every key set-up).
  private readonly putMeta;
  private readonly rosterBytes;
  private readonly rosterVersionOf;
  private readonly putRoster;
  private readonly prekeys: PrekeyTable;

  private constructor(
    private readonly db: Db,
    readonly path: string,
  ) {
    this.putMeta = db.prepare(PUT_META);
    this.rosterBytes = db.prepare('SELECT bytes FROM roster WHERE id = 1');
    this.rosterVersionOf = db.prepare('SELECT version FROM roster WHERE id = 1');
    this.putRoster = db.prepare(
      `INSERT INTO roster (id, version, bytes) VALUES (1, ?, ?)
       ON CONFLICT (id) DO UPDATE SET version = excluded.version, bytes = excluded.bytes
       WHERE excluded.version > roster.version`,
    );
    this.highest = this.readHighest();
    this.history = new MessageHistory(db, path);
    this.epochKeys = new EpochKeyTable(db, path);
    this.prekeys = new PrekeyTable(db, path);
  }

  /**
   * Opens (creating if needed) the store at `path` with a 32-byte key, applies migrations, and
   * checks it belongs to `owner`. The folder is created 0700 and the file 0600.
   */
  static open(path: string, key: Buffer, owner: MemberStoreOwner): MemberStateStore {
    if (key.length !== STORE_KEY_BYTES) throw new RangeError(`a store key is ${STORE_KEY_BYTES} bytes`);
    let db: Db | undefined;
    try {
      mkdirSync(dirname(path), { recursive: true, mode: 0o700 });
      // SQLite gives the -wal and -shm files the database file's mode: create it 0600 first.
      if (!existsSync(path)) closeSync(openSync(path, 'a', 0o600));
      chmodSync(path, 0o600);
      db = new Database(path);
      db.pragma(`cipher = 'sqlcipher'`);
      db.pragma(`legacy = 4`);
      // A raw key (x'…'): it is already the output of a KDF, so SQLCipher's PBKDF2 is skipped.
      db.pragma(`key = "x'${key.toString('hex')}'"`);
      db.pragma('journal_mode = WAL');
      // History and log position: NORMAL survives a crash of the process (kill -9), and a power cut
      // loses at most the last commits, which the relay's log serves again. About 5 ms less per
      // commit here than FULL (measured: 5.2 ms per FULL commit). Epochs are saved with FULL (save).
      db.pragma('synchronous = NORMAL');
      // Dropped epoch keys are overwritten, not left readable in free pages (epoch-keys.ts).
      db.pragma('secure_delete = ON');
      migrate(db, path);
      checkOwner(db, path, owner);
      return new MemberStateStore(db, path);
    } catch (err) {
      db?.close();
      throw wrap(err, path, 'cannot open');
    }
  }

  /** EpochStore: the highest epoch saved (0 = none). */
  load(): number {
    return this.highest;
  }

  /** EpochStore: raises the saved highest epoch (never lowers it); durable when it returns. */
  save(epoch: number): void {
    if (!Number.isSafeInteger(epoch) || epoch < 0) throw new RangeError(`not an epoch: ${epoch}`);
    if (epoch <= this.highest) return;
    // An epoch is saved before it is used: this commit must survive a power cut.
    this.durably(() => this.putMeta.run('highestEpoch', JSON.stringify(epoch)));
    this.highest = epoch;
  }

  /**
   * Runs a write under synchronous = FULL: what must survive a power cut (an epoch or sequence
   * numbers about to be used, a key). Syncing the WAL makes every earlier NORMAL commit durable too.
   */
  private durably(write: () => void): void {
    try {
      this.db.pragma('synchronous = FULL');
      try {
        write();
      } finally {
        this.db.pragma('synchronous = NORMAL');
      }
    } catch (err) {
      throw wrap(err, this.path, 'cannot write');
    }
  }

  /**
   * Overwrites a secret for good (an epoch key, a private prekey). secure_delete zeroes it in the
   * database's pages, but the WAL still holds the page images written when it was stored, readable
   * with the store key until they are overwritten: a stolen state directory would give it back. So
   * the WAL is checkpointed into the file and truncated at once (test/unit/client-store-erasure).
   */
  private erase(write: () => void): void {
    this.durably(write);
    let done: { busy: number }[];
    try {
      done = this.db.pragma('wal_checkpoint(TRUNCATE)') as { busy: number }[];
    } catch (err) {
      throw wrap(err, this.path, 'cannot checkpoint');
    }
    // Busy: another connection reads the WAL (none should: this process owns the store).
    if (done[0]?.busy !== 0) {
      throw new StateStoreError(
        'StateStoreIo',
        `${this.path}: the WAL could not be truncated after an erasure`,
      );
    }
  }

  /** RosterStore: the highest roster saved (its envelope bytes; verified by whoever reads it). */
  loadRoster(): Buffer | undefined {
    try {
      const row = this.rosterBytes.get() as { bytes: Buffer } | undefined;
      return row?.bytes;
    } catch (err) {
      throw wrap(err, this.path, 'cannot read');
    }
  }

  /**
   * RosterStore: saves a roster if its version is above the saved one's (never lowers it); durable
   * when it returns.
   */
  saveRoster(bytes: Buffer, version: number): void {
    if (!Number.isSafeInteger(version) || version < 1)
      throw new RangeError(`not a roster version: ${version}`);
    try {
      this.putRoster.run(version, bytes);
    } catch (err) {
      throw wrap(err, this.path, 'cannot write');
    }
  }

  /** The version of the saved roster (0 = none). */
  get rosterVersion(): number {
    const row = this.rosterVersionOf.get() as { version: number } | undefined;
    return row?.version ?? 0;
  }

  /** EpochStore: the stored epoch keys, oldest first. */
  loadKeys(): StoredEpochKey[] {
    return this.epochKeys.load();
  }

  /** EpochStore: saves an epoch key (keeping the newest 64); durable when it returns. */
  saveKey(key: StoredEpochKey): void {
    this.durably(() => this.epochKeys.save(key));
  }

  /** EpochStore: the highest sequence number shown per sender under `epoch` (the history's). */
  receivedSeqs(epoch: number): Map<string, number> {
    return this.history.highestSeqs(epoch);
  }

  /** EpochStore: reserves our own sequence numbers of an epoch up to `seq`. */
  saveSentSeq(epoch: number, seq: number): void {
    // A reservation lost to a power cut would let us reuse sequence numbers that receivers drop.
    this.durably(() => this.epochKeys.saveSentSeq(epoch, seq));
  }

  /** EpochStore: erases an epoch key for good (forward secrecy: durable at once). */
  eraseKey(epoch: number): void {
    this.erase(() => this.epochKeys.erase(epoch));
  }

  /** EpochStore: how many messages an epoch carried so far. */
  saveMessages(epoch: number, messages: number): void {
    this.epochKeys.saveMessages(epoch, messages);
  }

  /** PrekeyStore: our prekeys still held (private keys are copies the caller owns). */
  loadOwnPrekeys(): OwnPrekey[] {
    return this.read(() => this.prekeys.loadOwn());
  }

  /** PrekeyStore: a new prekey, durable before it is published. */
  saveOwnPrekey(prekey: OwnPrekey): void {
    this.durably(() => this.prekeys.saveOwn(prekey));
  }

  markPrekeyPublished(serial: number, at: number): void {
    this.durably(() => this.prekeys.markPublished(serial, at));
  }

  /** PrekeyStore: overwrites and deletes a private prekey (forward secrecy: durable at once). */
  eraseOwnPrekey(serial: number): void {
    this.erase(() => this.prekeys.eraseOwn(serial));
  }

  loadPeerPrekeys(): { prekey: SignedPrekey; fingerprint: string }[] {
    return this.read(() => this.prekeys.loadPeers());
  }

  savePeerPrekey(prekey: SignedPrekey, fingerprint: string): void {
    this.durably(() => this.prekeys.savePeer(prekey, fingerprint));
  }

  private read<T>(fn: () => T): T {
    try {
      return fn();
    } catch (err) {
      throw wrap(err, this.path, 'cannot read');
    }
  }

  close(): void {
    if (this.db.open) this.db.close();
  }

  private readHighest(): number {
    const value = getMeta(this.db, 'highestEpoch');
    if (value === undefined) return 0;
    if (typeof value !== 'number' || !Number.isSafeInteger(value) || value < 0) {
      throw new StateStoreError('StateStoreCorrupt', `${this.path}: highestEpoch is not an epoch`);
    }
    return value;
  }
}

function migrate(db: Db, path: string): void {
  db.exec(
    `CREATE TABLE IF NOT EXISTS schema_migrations (version INTEGER PRIMARY KEY, applied_at INTEGER NOT NULL) STRICT;`,
  );
  const row = db.prepare('SELECT max(version) AS v FROM schema_migrations').get() as { v: number | null };
  const current = row.v ?? 0;
  if (current > SCHEMA_VERSION) {
    throw new StateStoreError(
      'StateStoreTooNew',
      `${path} has schema version ${current}; this version of SecureChat-X knows up to ${SCHEMA_VERSION}`,
    );
  }
  const record = db.prepare('INSERT INTO schema_migrations (version, applied_at) VALUES (?, ?)');
  db.transaction(() => {
    for (let v = current; v < SCHEMA_VERSION; v++) {
      db.exec(MIGRATIONS[v] as string);
      record.run(v + 1, Date.now());
    }
  })();
}

function checkOwner(db: Db, path: string, owner: MemberStoreOwner): void {
  for (const field of ['groupId', 'member'] as const) {
    const stored = getMeta(db, field);
    if (stored === undefined) {
      setMeta(db, field, owner[field]);
    } else if (stored !== owner[field]) {
      throw new StateStoreError(
        'StateStoreMismatch',
        `${path} belongs to ${field} "${String(stored)}", not "${owner[field]}"`,
      );
    }
  }
}

function getMeta(db: Db, key: string): unknown {
  const row = db.prepare('SELECT value FROM meta WHERE key = ?').get(key) as { value: string } | undefined;
  if (row === undefined) return undefined;
  try {
    return JSON.parse(row.value) as unknown;
  } catch (err) {
    throw new StateStoreError('StateStoreCorrupt', `meta ${key} is not JSON`, { cause: err });
  }
}

const PUT_META =
  'INSERT INTO meta (key, value) VALUES (?, ?) ON CONFLICT (key) DO UPDATE SET value = excluded.value';

function setMeta(db: Db, key: string, value: string | number): void {
  db.prepare(PUT_META).run(key, JSON.stringify(value));
}
