/**
 * The relay's store-and-forward log (DESIGN.md §10.3), as an interface that both the embedded
 * SQLite log (sqlite-log.ts) and a NATS JetStream log (§10.7: one stream per group, a subject per
 * audience, offset = stream sequence) can implement. Every method is async for that reason; the
 * SQLite implementation does its work synchronously inside the call.
 *
 * Offsets are positive safe integers, +1 per stored frame, starting at 1, never reused within one
 * stream id. The log never parses frames: they are stored and returned byte for byte.
 */

/** Who a frame is for: everyone in the group, or one member (by certificate name). */
export type LogAudience = { kind: 'all' } | { kind: 'member'; name: string };

export interface LogAppend {
  audience: LogAudience;
  /** The authenticated identity of the connection the frame came from. */
  sender: string;
  /** The frame as received (envelope bytes, without the 4-byte length prefix). */
  frame: Buffer;
}

export interface LogEntry extends LogAppend {
  offset: number;
  /** When the relay stored it (ms since the Unix epoch; never decreases along the log). */
  storedAt: number;
}

export interface LogReadRequest {
  /** Entries with an offset above this are returned (0 = from the start). */
  afterOffset: number;
  /** Whose view: entries for everyone plus entries addressed to this member. */
  member: string;
  /**
   * Whether the member's own broadcasts are included. Default false: a replay then carries exactly
   * what live forwarding would have sent (the relay never echoes a broadcast to its sender). True
   * serves a member rebuilding its own history (a new device, a lost local store); receivers drop
   * duplicates by (sender, epoch, seq) either way. Frames the member addressed to someone else are
   * never returned to it: they are sealed to their target and useless to anyone else.
   */
  ownBroadcasts?: boolean;
  /** At most this many entries (default 256, at most 10,000). */
  limit?: number;
  /**
   * Stop before an entry that would take the page's frame bytes over this (default 1 MiB). A page
   * always holds at least one entry if one is due, however large, so paging always progresses.
   */
  maxBytes?: number;
}

export interface LogPage {
  entries: LogEntry[];
  /**
   * Pass this as the next afterOffset. Everything up to it has been considered for this member:
   * the last entry's offset when the page was cut by limit or maxBytes, else the log's last offset
   * at the time of the read (frames for other members past the last entry are not scanned again).
   */
  nextAfter: number;
  /** Nothing for this member existed after nextAfter when the read ran. */
  end: boolean;
}

/**
 * What the log holds. Empty (fresh, or everything dropped by retention): firstOffset is
 * lastOffset + 1, the same convention as a JetStream stream's state.
 */
export interface LogBounds {
  firstOffset: number;
  lastOffset: number;
  /** Frames retained (lastOffset - firstOffset + 1: retention only ever drops a prefix). */
  frames: number;
  /** Frame bytes retained (what retention's maxBytes counts; the file itself is larger). */
  bytes: number;
}

export interface RetentionPolicy {
  /** Frames stored more than this long before `now` are dropped (DESIGN default: 30 days). */
  maxAgeMs: number;
  /** Then the oldest frames are dropped until the retained frame bytes fit (default: 1 GiB). */
  maxBytes: number;
  /** The current time (ms since the Unix epoch). */
  now: number;
  /**
   * At most this many frames are dropped per call (default 50,000), so that a relay restarted
   * after a long pause does not block its event loop deleting; `more` says to call again.
   */
  maxFrames?: number;
}

export interface RetentionResult {
  droppedFrames: number;
  droppedBytes: number;
  /** The log's first offset after the call (a SYNC below it minus one is a GAP). */
  firstOffset: number;
  /** The maxFrames cap was reached and more is due: call again (after yielding to the loop). */
  more: boolean;
}

export interface RelayLog {
  /**
   * Random, fixed for the life of the log, persisted. A member holding offsets of another stream
   * id (the log was lost or replaced) gets a GAP: its offsets mean nothing here.
   */
  readonly streamId: string;

  /**
   * Stores a batch and resolves with one offset per entry, in batch order, once the batch is
   * durable (see the implementation for what durable covers). Calls are ordered: a later call's
   * entries get higher offsets. In the embedded log a batch's offsets are contiguous and the batch
   * is all-or-nothing; in a shared log other nodes' frames may interleave, and a rejected call
   * may have stored any of its entries. Either way a rejected entry was not acknowledged: its sender resends
   * it and receivers drop duplicates.
   */
  append(batch: readonly LogAppend[]): Promise<number[]>;

  /** One page, in offset order, of what `member` is due after `afterOffset`. */
  read(request: LogReadRequest): Promise<LogPage>;

  bounds(): Promise<LogBounds>;

  /**
   * The offset of the oldest retained entry addressed to `member`, or undefined if none is. A
   * member that holds nothing of the log starts there: its first key distribution, before which
   * nothing in the log was sealed for it (a newcomer, or a member rebuilding a lost store).
   */
  firstOffsetFor(member: string): Promise<number | undefined>;

  /** Drops the oldest frames first: those older than maxAgeMs, then down to maxBytes. */
  enforceRetention(policy: RetentionPolicy): Promise<RetentionResult>;

  /**
   * The relay's other durable state (the highest roster blob and its version, …), beside the log.
   * Values are opaque bytes; a write is durable like an append. Not counted by retention.
   */
  getMeta(key: string): Promise<Buffer | undefined>;
  setMeta(key: string, value: Buffer): Promise<void>;

  /** Releases the storage; every later call rejects with LogClosed. Idempotent. */
  close(): Promise<void>;
}

/** Defaults and caps shared by implementations. */
export const READ_DEFAULT_LIMIT = 256;
export const READ_MAX_LIMIT = 10_000;
export const READ_DEFAULT_MAX_BYTES = 1024 * 1024;
export const RETENTION_DEFAULT_MAX_FRAMES = 50_000;
export const DEFAULT_RETENTION = Object.freeze({ maxAgeMs: 30 * 24 * 3600 * 1000, maxBytes: 1024 ** 3 });

/** Why `e` cannot be stored, or undefined (the embedded log checks a whole batch before writing any). */
export function invalidLogEntry(e: LogAppend): string | undefined {
  const audience = e?.audience as { kind?: unknown; name?: unknown } | undefined;
  if (audience?.kind !== 'all' && !(audience?.kind === 'member' && nonEmpty(audience.name))) {
    return 'audience is not { kind: "all" } or { kind: "member", name }';
  }
  if (!nonEmpty(e.sender)) return 'sender is not a non-empty string';
  if (!Buffer.isBuffer(e.frame) || e.frame.length === 0) return 'frame is not a non-empty Buffer';
  return undefined;
}

function nonEmpty(value: unknown): value is string {
  return typeof value === 'string' && value.length > 0;
}
