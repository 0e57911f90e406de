/**
 * The member's message history (DESIGN.md §10.4), a table of the encrypted state store: what was
 * shown, in the order it was shown, so that restarting the CLI or the app loses nothing and a
 * message is displayed once however often it arrives.
 *
 * Exactly-once display: a message is identified by (sender, epoch, seq), which never repeats within
 * a group (epochs never repeat, a sender numbers its messages within an epoch). `record` inserts it
 * only if that triple is new and says so; callers show a message only when it was new. Together
 * with a log position saved in the same transaction as the rows it covers (`recordBatch`), a
 * member that crashes mid-catch-up resumes from the last saved position and shows each message once.
 *
 * Search uses an FTS5 trigram index (substring, case-insensitive); the index lives in the same
 * encrypted file, so it holds no plaintext on disk either. Indexed row by row it costs about ten
 * times the insert (measured: 10,600 rows/s with a trigger, 150,000 without; in bulk 122,000/s),
 * so a large batch (a catch-up) is stored unindexed and indexed later: a little after a small
 * (live) batch once INDEX_MIN_WAITING rows wait, and all that is left before any search. meta
 * `ftsIndexed` = the highest id indexed.
 */
import type Database from 'better-sqlite3-multiple-ciphers';
import { StateStoreError } from './errors.js';
import { SeqBounds } from './seq-bounds.js';

type Db = InstanceType<typeof Database>;

/** The migration that creates the history (member-store.ts applies it; never edit it once shipped). */
export const HISTORY_MIGRATION = `
CREATE TABLE history (
  id INTEGER PRIMARY KEY,
  sender TEXT NOT NULL,
  epoch INTEGER NOT NULL,
  seq INTEGER NOT NULL,
  text TEXT NOT NULL,
  sent_at INTEGER NOT NULL,
  received_at INTEGER NOT NULL,
  own INTEGER NOT NULL CHECK (own IN (0, 1)),
  stream_id TEXT,
  log_offset INTEGER,
  UNIQUE (sender, epoch, seq)
) STRICT;
CREATE VIRTUAL TABLE history_text USING fts5(text, content='history', content_rowid='id', tokenize='trigram');
CREATE TRIGGER history_text_delete AFTER DELETE ON history
WHEN old.id <= coalesce((SELECT CAST(value AS INTEGER) FROM meta WHERE key = 'ftsIndexed'), 0) BEGIN
  INSERT INTO history_text (history_text, rowid, text) VALUES ('delete', old.id, old.text);
END;
CREATE TRIGGER history_text_fixed BEFORE UPDATE OF text ON history BEGIN
  SELECT RAISE(ABORT, 'a stored message text never changes');
END;
`;

export interface HistoryMessage {
  from: string;
  text: string;
  epoch: number;
  seq: number;
  /** The sender's clock, ms since the Unix epoch. */
  sentAt: number;
  /** When this member stored it, ms since the Unix epoch. */
  receivedAt: number;
  /** Sent by this member. */
  own: boolean;
  /** Where the relay's log holds it, once known (a received frame's offset, or our own frame's STORED). */
  streamId?: string;
  offset?: number;
}

export interface HistoryEntry extends HistoryMessage {
  /** Local display order: increases with every message stored. */
  id: number;
}

/** Where the member is in the relay's log: every frame up to `offset` of `streamId` is processed. */
export interface LogPosition {
  streamId: string;
  offset: number;
}

export interface HistoryPageRequest {
  /** Entries with an id below this (default: from the newest). */
  beforeId?: number;
  /** At most this many (default 50, at most 1,000). */
  limit?: number;
}

export const HISTORY_PAGE_DEFAULT = 50;
export const HISTORY_PAGE_MAX = 1000;
/** The trigram index serves searches of at least this many characters; shorter ones scan. */
const TRIGRAM = 3;
/** A batch this small is live chat: index it, and some of what is waiting, in its transaction. */
const INLINE_INDEX_BATCH = 32;
/**
 * ...once this many rows wait (itself included). Indexing each live message in its own commit
 * doubled that commit (measured: 123 µs → 242 µs for one message), on the path to showing it;
 * FTS5 also writes a segment per transaction. Rows waiting are still found: search indexes first.
 */
const INDEX_MIN_WAITING = 32;
/** Rows indexed after a small batch (about 6 ms here): a backlog drains while chat goes on. */
const INDEX_STEP = 64;
const INDEXED_KEY = 'ftsIndexed';

interface Row {
  id: number;
  sender: string;
  epoch: number;
  seq: number;
  text: string;
  sent_at: number;
  received_at: number;
  own: number;
  stream_id: string | null;
  log_offset: number | null;
}

const COLUMNS = 'id, sender, epoch, seq, text, sent_at, received_at, own, stream_id, log_offset';
const POSITION_KEY = 'logPosition';

function toEntry(r: Row): HistoryEntry {
  return {
    id: r.id,
    from: r.sender,
    text: r.text,
    epoch: r.epoch,
    seq: r.seq,
    sentAt: r.sent_at,
    receivedAt: r.received_at,
    own: r.own === 1,
    ...(r.stream_id !== null ? { streamId: r.stream_id } : {}),
    ...(r.log_offset !== null ? { offset: r.log_offset } : {}),
  };
}

/**
 * An FTS5 phrase of the whole search text: with the trigram tokenizer a phrase matches exactly the
 * texts that contain it as a substring; quotes inside are doubled, every other character is literal.
 */
function phrase(text: string): string {
  return `"${text.replace(/"/g, '""')}"`;
}

function boundedLimit(limit: number | undefined): number {
  if (limit === undefined) return HISTORY_PAGE_DEFAULT;
  if (!Number.isSafeInteger(limit) || limit < 1) throw new RangeError(`not a page size: ${limit}`);
  return Math.min(limit, HISTORY_PAGE_MAX);
}

export class MessageHistory {
  private readonly insert;
  private readonly setOffset;
  private readonly newest;
  private readonly before;
  private readonly countAll;
  private readonly exists;
  private readonly idByIdentity;
  private readonly after;
  private readonly getPosition;
  private readonly putPosition;
  private readonly indexRows;
  private readonly lastId;
  private readonly highestByEpoch;
  /** Where `has` can answer without a query (seq-bounds.ts). */
  private readonly bounds: SeqBounds;

  constructor(
    private readonly db: Db,
    private readonly path: string,
  ) {
    this.insert = db.prepare(
      `INSERT INTO history (sender, epoch, seq, text, sent_at, received_at, own, stream_id, log_offset)
       VALUES (@sender, @epoch, @seq, @text, @sentAt, @receivedAt, @own, @streamId, @offset)
       ON CONFLICT (sender, epoch, seq) DO NOTHING`,
    );
    this.setOffset = db.prepare(
      `UPDATE history SET stream_id = @streamId, log_offset = @offset
       WHERE sender = @sender AND epoch = @epoch AND seq = @seq AND log_offset IS NULL`,
    );
    this.newest = db.prepare(`SELECT ${COLUMNS} FROM history ORDER BY id DESC LIMIT ?`);
    this.before = db.prepare(`SELECT ${COLUMNS} FROM history WHERE id < ? ORDER BY id DESC LIMIT ?`);
    this.countAll = db.prepare('SELECT count(*) AS n FROM history');
    this.exists = db.prepare('SELECT 1 FROM history WHERE sender = ? AND epoch = ? AND seq = ?').pluck();
    this.idByIdentity = db
      .prepare('SELECT id FROM history WHERE sender = ? AND epoch = ? AND seq = ?')
      .pluck();
    this.after = db.prepare(`SELECT ${COLUMNS} FROM history WHERE id > ? ORDER BY id ASC LIMIT ?`);
    this.getPosition = db.prepare('SELECT value FROM meta WHERE key = ?');
    this.putPosition = db.prepare(
      'INSERT INTO meta (key, value) VALUES (?, ?) ON CONFLICT (key) DO UPDATE SET value = excluded.value',
    );
    this.indexRows = db.prepare(
      `INSERT INTO history_text (rowid, text) SELECT id, text FROM history WHERE id > ? AND id <= ? ORDER BY id`,
    );
    this.lastId = db.prepare('SELECT max(id) FROM history').pluck();
    this.highestByEpoch = db.prepare(
      'SELECT sender, max(seq) AS seq FROM history WHERE epoch = ? GROUP BY sender',
    );
    const highestOf = db.prepare('SELECT max(seq) FROM history WHERE sender = ? AND epoch = ?').pluck();
    this.bounds = new SeqBounds((from, epoch) => (highestOf.get(from, epoch) as number | null) ?? 0);
  }

  /**
   * The highest sequence number held per sender under `epoch`: where a restored key's replay
   * window resumes (a sender's numbers only go up within an epoch, and the log serves them in order).
   */
  highestSeqs(epoch: number): Map<string, number> {
    return this.guard('read', () => {
      const rows = this.highestByEpoch.all(epoch) as { sender: string; seq: number }[];
      return new Map(rows.map((r) => [r.sender, r.seq]));
    });
  }

  /** Stores a message unless (from, epoch, seq) is already held. True if it was new: show it. */
  record(m: HistoryMessage): boolean {
    return this.recordBatch([m])[0] === true;
  }

  /**
   * Stores messages and moves the log position in one transaction: after a crash either both are
   * there or neither, so a replay from the saved position repeats nothing that was shown.
   * Returns, per message, whether it was new.
   *
   * `catchingUp`: more of a replay follows, so the batch is left unindexed however small it is. A
   * catch-up arrives a socket read at a time (20–60 messages a turn, measured), so without it most
   * of its turns would also index 64 rows of backlog: the whole replay indexed row by row, about
   * a third of its time. The backlog is indexed by the live batches after it, or by a search.
   */
  recordBatch(
    messages: readonly HistoryMessage[],
    position?: LogPosition,
    options: { catchingUp?: boolean } = {},
  ): boolean[] {
    return this.guard('write', () =>
      this.db.transaction(() => {
        const fresh = messages.map((m) => this.insertOne(m));
        if (position !== undefined) this.writePosition(position);
        if (options.catchingUp !== true && messages.length <= INLINE_INDEX_BATCH)
          this.indexUpTo(INDEX_STEP + messages.length, INDEX_MIN_WAITING);
        return fresh;
      })(),
    );
  }

  /** Our own message was acknowledged by the relay (STORED): remember where the log holds it. */
  markStored(from: string, epoch: number, seq: number, at: LogPosition): void {
    this.guard('write', () =>
      this.setOffset.run({ sender: from, epoch, seq, streamId: at.streamId, offset: at.offset }),
    );
  }

  /** The processed log position (undefined before the first SYNC). */
  position(): LogPosition | undefined {
    return this.guard('read', () => {
      const row = this.getPosition.get(POSITION_KEY) as { value: string } | undefined;
      if (row === undefined) return undefined;
      const parsed = JSON.parse(row.value) as Partial<LogPosition>;
      if (
        typeof parsed.streamId !== 'string' ||
        typeof parsed.offset !== 'number' ||
        !Number.isSafeInteger(parsed.offset) ||
        parsed.offset < 0
      ) {
        throw new StateStoreError('StateStoreCorrupt', `${this.path}: the saved log position is not valid`);
      }
      return { streamId: parsed.streamId, offset: parsed.offset };
    });
  }

  /** Whether (from, epoch, seq) is held: a frame that carries it again is a duplicate. */
  has(from: string, epoch: number, seq: number): boolean {
    return this.guard('read', () => {
      if (seq > this.bounds.of(from, epoch)) return false;
      return this.exists.get(from, epoch, seq) !== undefined;
    });
  }

  /** The local id of (from, epoch, seq), if held: where a page of the history starts or ends. */
  idOf(from: string, epoch: number, seq: number): number | undefined {
    return this.guard('read', () => this.idByIdentity.get(from, epoch, seq) as number | undefined);
  }

  /** Entries after `afterId` (0 = from the oldest), oldest first: for reading the whole history. */
  pageAfter(afterId: number, limit?: number): HistoryEntry[] {
    const n = boundedLimit(limit);
    return this.guard('read', () => (this.after.all(afterId, n) as Row[]).map(toEntry));
  }

  /** One page, oldest first, of the entries before `beforeId` (default: the newest ones). */
  page(request: HistoryPageRequest = {}): HistoryEntry[] {
    const limit = boundedLimit(request.limit);
    return this.guard('read', () => {
      const rows = (
        request.beforeId === undefined ? this.newest.all(limit) : this.before.all(request.beforeId, limit)
      ) as Row[];
      return rows.reverse().map(toEntry);
    });
  }

  /**
   * Messages whose text contains `text` (case-insensitive), oldest first, the newest `limit` of
   * them. Three characters or more use the trigram index; shorter ones scan the table.
   */
  search(text: string, limit?: number): HistoryEntry[] {
    const n = boundedLimit(limit);
    if (text.length === 0) return [];
    this.indexBacklog();
    // LIKE's wildcards are escaped: a search for "100%" finds that text, not every "100".
    const pattern = `%${text.replace(/[\\%_]/g, (c) => `\\${c}`)}%`;
    return this.guard('read', () => {
      const rows = (
        [...text].length >= TRIGRAM
          ? this.db
              .prepare(
                `SELECT ${COLUMNS.split(', ')
                  .map((c) => `h.${c}`)
                  .join(', ')} FROM history_text t JOIN history h ON h.id = t.rowid
                 WHERE history_text MATCH ? ORDER BY h.id DESC LIMIT ?`,
              )
              .all(phrase(text), n)
          : this.db
              .prepare(
                `SELECT ${COLUMNS} FROM history WHERE text LIKE ? ESCAPE '\\' ORDER BY id DESC LIMIT ?`,
              )
              .all(pattern, n)
      ) as Row[];
      return rows.reverse().map(toEntry);
    });
  }

  /** Messages stored but not yet in the search index. */
  unindexed(): number {
    return this.guard('read', () => ((this.lastId.get() as number | null) ?? 0) - this.indexedThrough());
  }

  /** Indexes everything waiting (searches do it first; it takes about 0.1 ms per message). */
  indexBacklog(): void {
    this.guard('write', () => this.db.transaction(() => this.indexUpTo(Number.MAX_SAFE_INTEGER))());
  }

  count(): number {
    return this.guard('read', () => (this.countAll.get() as { n: number }).n);
  }

  private insertOne(m: HistoryMessage): boolean {
    const result = this.insert.run({
      sender: m.from,
      epoch: m.epoch,
      seq: m.seq,
      text: m.text,
      sentAt: m.sentAt,
      receivedAt: m.receivedAt,
      own: m.own ? 1 : 0,
      streamId: m.streamId ?? null,
      offset: m.offset ?? null,
    });
    // Raised even if the transaction then rolls back: a bound too high only costs a query.
    this.bounds.raise(m.from, m.epoch, m.seq);
    return result.changes === 1;
  }

  private indexedThrough(): number {
    const row = this.getPosition.get(INDEXED_KEY) as { value: string } | undefined;
    const n = row === undefined ? 0 : (JSON.parse(row.value) as unknown);
    if (typeof n !== 'number' || !Number.isSafeInteger(n) || n < 0) {
      throw new StateStoreError('StateStoreCorrupt', `${this.path}: ${INDEXED_KEY} is not a row id`);
    }
    return n;
  }

  /** Inside a transaction: indexes up to `rows` of the rows waiting, oldest first, if `minWaiting` wait. */
  private indexUpTo(rows: number, minWaiting = 1): void {
    const from = this.indexedThrough();
    const last = (this.lastId.get() as number | null) ?? 0;
    if (last - from < minWaiting) return;
    const to = Math.min(last, from + rows);
    if (to <= from) return;
    this.indexRows.run(from, to);
    this.putPosition.run(INDEXED_KEY, JSON.stringify(to));
  }

  private writePosition(p: LogPosition): void {
    if (!Number.isSafeInteger(p.offset) || p.offset < 0)
      throw new RangeError(`not a log offset: ${p.offset}`);
    this.putPosition.run(POSITION_KEY, JSON.stringify({ streamId: p.streamId, offset: p.offset }));
  }

  private guard<T>(doing: 'read' | 'write', fn: () => T): T {
    try {
      return fn();
    } catch (err) {
      if (err instanceof StateStoreError || err instanceof RangeError) throw err;
      throw new StateStoreError(
        'StateStoreIo',
        `cannot ${doing} the history in ${this.path}: ${String(err)}`,
        {
          cause: err,
        },
      );
    }
  }
}
