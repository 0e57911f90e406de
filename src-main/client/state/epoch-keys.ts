/**
 * The epoch keys a member keeps across restarts (DESIGN.md §10.4), a table of the encrypted state
 * store: a restarted member chats on under its current key without re-keying, and can still read
 * the stored frames of the epochs it may need while catching up.
 *
 * Forward secrecy: every key kept is a key that would decrypt old frames if the store (and its
 * key) were taken. Only the newest MAX_STORED_EPOCH_KEYS epochs are kept; older rows are deleted
 * when a new key is saved. (SQLite's secure_delete is on for this store, so deleted rows are
 * overwritten, not left in free pages.)
 */
import type Database from 'better-sqlite3-multiple-ciphers';
import { StateStoreError } from './errors.js';

type Db = InstanceType<typeof Database>;

/** How many epoch keys the store keeps (newest epochs). */
export const MAX_STORED_EPOCH_KEYS = 64;

/**
 * The migration that creates the table (member-store.ts applies it after the history; never edit it
 * once shipped). Named, not numbered, here: its number is its place in member-store's list.
 */
export const EPOCH_KEYS_MIGRATION = `
CREATE TABLE epoch_keys (
  epoch INTEGER PRIMARY KEY,
  key BLOB NOT NULL CHECK (length(key) = 32),
  roster_version INTEGER NOT NULL CHECK (roster_version >= 0),
  members TEXT NOT NULL,
  contributors TEXT NOT NULL,
  initiator TEXT NOT NULL,
  safety_number TEXT NOT NULL,
  read_only INTEGER NOT NULL CHECK (read_only IN (0, 1)),
  established_at INTEGER NOT NULL,
  messages INTEGER NOT NULL DEFAULT 0,
  sent_seq INTEGER NOT NULL DEFAULT 0
) STRICT;
`;

/** One stored epoch key (the key is a copy; whoever loads it owns it and zeroes it). */
export interface StoredEpochKey {
  epoch: number;
  key: Buffer;
  rosterVersion: number;
  /** M, sorted. */
  members: string[];
  /** C ⊆ M, sorted. */
  contributors: string[];
  initiator: string;
  safetyNumber: string;
  /** Historic / below the current one: it decrypts, it never seals. */
  readOnly: boolean;
  /** ms since the Unix epoch (the engine's clock). */
  establishedAt: number;
  messages: number;
  /**
   * Our own sequence numbers under this epoch were reserved up to here: a restarted member seals
   * above it, so receivers never take its messages for replays.
   */
  sentSeq: number;
}

interface Row {
  epoch: number;
  key: Buffer;
  roster_version: number;
  members: string;
  contributors: string;
  initiator: string;
  safety_number: string;
  read_only: number;
  established_at: number;
  messages: number;
  sent_seq: number;
}

function names(path: string, json: string, what: string): string[] {
  let value: unknown;
  try {
    value = JSON.parse(json) as unknown;
  } catch (err) {
    throw new StateStoreError('StateStoreCorrupt', `${path}: epoch key ${what} is not JSON`, { cause: err });
  }
  if (!Array.isArray(value) || !value.every((v): v is string => typeof v === 'string')) {
    throw new StateStoreError('StateStoreCorrupt', `${path}: epoch key ${what} is not a list of names`);
  }
  return value;
}

export class EpochKeyTable {
  // Prepared once: preparing is a parse and plan of the SQL each time (a key set-up saves a key
  // and the message counts on every member).
  private readonly insert;
  private readonly markOlderReadOnly;
  private readonly dropBeyondNewest;
  private readonly raiseSentSeq;
  private readonly setMessages;

  constructor(
    private readonly db: Db,
    private readonly path: string,
  ) {
    this.insert = db.prepare(
      `INSERT OR REPLACE INTO epoch_keys
         (epoch, key, roster_version, members, contributors, initiator, safety_number, read_only, established_at, messages, sent_seq)
       VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)`,
    );
    this.markOlderReadOnly = db.prepare(
      'UPDATE epoch_keys SET read_only = 1 WHERE epoch < ? AND read_only = 0',
    );
    this.dropBeyondNewest = db.prepare(
      'DELETE FROM epoch_keys WHERE epoch NOT IN (SELECT epoch FROM epoch_keys ORDER BY epoch DESC LIMIT ?)',
    );
    this.raiseSentSeq = db.prepare('UPDATE epoch_keys SET sent_seq = max(sent_seq, ?) WHERE epoch = ?');
    this.setMessages = db.prepare('UPDATE epoch_keys SET messages = ? WHERE epoch = ?');
  }

  /** Every stored key, oldest epoch first. */
  load(): StoredEpochKey[] {
    const rows = this.db.prepare('SELECT * FROM epoch_keys ORDER BY epoch').all() as Row[];
    return rows.map((r) => ({
      epoch: r.epoch,
      key: Buffer.from(r.key),
      rosterVersion: r.roster_version,
      members: names(this.path, r.members, 'members'),
      contributors: names(this.path, r.contributors, 'contributors'),
      initiator: r.initiator,
      safetyNumber: r.safety_number,
      readOnly: r.read_only === 1,
      establishedAt: r.established_at,
      messages: r.messages,
      sentSeq: r.sent_seq,
    }));
  }

  /**
   * Saves a key (replacing a row of the same epoch) and drops all but the newest
   * MAX_STORED_EPOCH_KEYS, in one transaction. A key saved as current marks the older ones read-only.
   */
  save(k: StoredEpochKey): void {
    if (k.key.length !== 32) throw new RangeError('an epoch key is 32 bytes');
    try {
      this.db.transaction(() => {
        this.insert.run(
          k.epoch,
          k.key,
          k.rosterVersion,
          JSON.stringify(k.members),
          JSON.stringify(k.contributors),
          k.initiator,
          k.safetyNumber,
          k.readOnly ? 1 : 0,
          k.establishedAt,
          k.messages,
          k.sentSeq,
        );
        if (!k.readOnly) this.markOlderReadOnly.run(k.epoch);
        this.dropBeyondNewest.run(MAX_STORED_EPOCH_KEYS);
      })();
    } catch (err) {
      throw new StateStoreError('StateStoreIo', `cannot write ${this.path}: ${(err as Error).message}`, {
        cause: err,
      });
    }
  }

  /** Reserves our own sequence numbers of an epoch up to `seq` (durable when it returns). */
  saveSentSeq(epoch: number, seq: number): void {
    try {
      this.raiseSentSeq.run(seq, epoch);
    } catch (err) {
      throw new StateStoreError('StateStoreIo', `cannot write ${this.path}: ${(err as Error).message}`, {
        cause: err,
      });
    }
  }

  /** Overwrites an epoch key, then deletes its row (secure_delete zeroes the freed page too). */
  erase(epoch: number): void {
    try {
      this.db.transaction(() => {
        this.db.prepare('UPDATE epoch_keys SET key = zeroblob(32) WHERE epoch = ?').run(epoch);
        this.db.prepare('DELETE FROM epoch_keys WHERE epoch = ?').run(epoch);
      })();
    } catch (err) {
      throw new StateStoreError('StateStoreIo', `cannot write ${this.path}: ${(err as Error).message}`, {
        cause: err,
      });
    }
  }

  /** Records how many messages an epoch carried (rotation by count survives a restart). */
  saveMessages(epoch: number, messages: number): void {
    try {
      this.setMessages.run(messages, epoch);
    } catch (err) {
      throw new StateStoreError('StateStoreIo', `cannot write ${this.path}: ${(err as Error).message}`, {
        cause: err,
      });
    }
  }
}
