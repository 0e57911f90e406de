/**
 * The member's side of the relay's log (DESIGN.md §10.3–10.4): where it stands in the log, what it
 * has shown, and which of its own frames the relay has acknowledged.
 *
 *   login:     SYNC {streamId, afterOffset} from the saved position (or '' / 0: from the start)
 *   DELIVERED: the envelope is handled with its offset as context; messages are shown once stored
 *   STORED:    the n-th logged frame this session wrote is durable at an offset: `sent`
 *   LIVE:      everything up to head has been delivered
 *   GAP:       the log cannot serve the saved position: say so, follow the log that is there
 *
 * Exactly-once display: messages are stored (history, unique by sender/epoch/seq) together with the
 * position that covers them, in one transaction per event-loop turn, and shown only if they were
 * new. The position never passes a frame that is still held (waiting for a certificate or a key):
 * after a crash the replay starts before it. Frames the relay did not acknowledge are written again
 * on the next session; receivers drop what they already hold.
 *
 * No sockets and no timers of its own: the engine feeds it, and `schedule` (setImmediate by
 * default) decides when a turn's batch is committed.
 */
import type { BodyOf } from '../core/protocol/schemas.js';
import type { StoredAck } from '../core/protocol/link-frames.js';
import type { HistoryMessage, LogPosition } from './state/history.js';

/** What the follower needs of the history (state/history.ts MessageHistory). */
export interface LogHistory {
  has(from: string, epoch: number, seq: number): boolean;
  /** `catchingUp`: the batch is part of a replay (more follows): it may be stored unindexed. */
  recordBatch(
    messages: readonly HistoryMessage[],
    position?: LogPosition,
    options?: { catchingUp?: boolean },
  ): boolean[];
  markStored(from: string, epoch: number, seq: number, at: LogPosition): void;
  position(): LogPosition | undefined;
}

/** A frame of a logged type (ENCRYPTED_TEXT, KEY_DISTRIBUTION) this member wrote. */
export type LoggedFrame =
  { kind: 'chat'; epoch: number; seq: number; frame: Buffer } | { kind: 'key'; frame: Buffer };

export interface ShownMessage {
  from: string;
  text: string;
  epoch: number;
  seq: number;
  sentAt: number;
  offset?: number;
  own: boolean;
}

export interface LogFollowerDeps {
  history: LogHistory;
  /** This member's name: the sender of its own messages in the history. */
  self: string;
  /** A message stored for the first time: show it. */
  shown(message: ShownMessage): void;
  /** One of our messages is durable in the relay's log. */
  sent(epoch: number, seq: number, offset: number): void;
  /** The log could not serve what we asked: in plain words. */
  gap(reason: string): void;
  /** Storing failed: nothing of that turn was shown, and the position did not move. */
  problem(err: unknown): void;
  /** The replay carried `count` messages under keys this member never held (said once, at LIVE). */
  unreadable?(count: number): void;
  schedule?: (fn: () => void) => void;
  now?: () => number;
}

const GAP_WORDS: Record<BodyOf<'GAP'>['reason'], string> = {
  'lost-log': 'the relay no longer has the log this member read from (it was lost or replaced)',
  retention: 'the relay dropped messages past its retention before this member came back',
  ahead: 'the relay lost the newest part of its log (restored from a backup or a power cut)',
};

const identityKey = (from: string, epoch: number, seq: number): string => `${from}\u0000${epoch}\u0000${seq}`;

export class LogFollower {
  private readonly schedule: (fn: () => void) => void;
  private readonly now: () => number;
  /** The stream this session follows (HELLO), undefined when the relay keeps no log. */
  private stream: string | undefined;
  private saved: LogPosition | undefined;
  /** Every frame up to here was handled (or was not for us); held ones bound what is saved. */
  private through = 0;
  private current: number | undefined;
  private readonly held = new Map<number, number>();
  private pending: HistoryMessage[] = [];
  private readonly pendingKeys = new Set<string>();
  private flushScheduled = false;
  /** This session's logged frames by number (from 1) until the relay acknowledges them. */
  private unacked = new Map<number, LoggedFrame>();
  private written = 0;
  private syncing = false;
  /** Between begin() and endSession(): the engine ends a session from stop() and from onClose. */
  private inSession = false;
  /** Between SYNC and LIVE: frames come from the log, not live. */
  private replaying = false;
  private unreadableCount = 0;
  /** LIVE's head: frames at or below it came from the replay, even if handled later (held). */
  private replayedThrough = 0;
  private carried: LoggedFrame[] = [];

  constructor(private readonly deps: LogFollowerDeps) {
    this.schedule = deps.schedule ?? ((fn) => void setImmediate(fn));
    this.now = deps.now ?? Date.now;
    this.saved = deps.history.position();
  }

  /** The saved position (what the next SYNC starts from). */
  get position(): LogPosition | undefined {
    return this.saved;
  }

  /**
   * A session logged in. Returns the SYNC body to send, or undefined when the relay keeps no log
   * (then this session stays v1: nothing is acknowledged, nothing is replayed).
   */
  begin(relayStreamId: string | undefined): BodyOf<'SYNC'> | undefined {
    this.endSession();
    this.inSession = true;
    this.stream = relayStreamId;
    if (relayStreamId === undefined) return undefined;
    this.syncing = true;
    this.replaying = true;
    this.unreadableCount = 0;
    this.replayedThrough = 0;
    const from = this.saved;
    this.through = from?.streamId === relayStreamId ? from.offset : 0;
    return { streamId: from?.streamId ?? '', afterOffset: from?.offset ?? 0 };
  }

  /**
   * The session ended: commit what is pending; unacknowledged frames wait for the next one. Once
   * per session: the engine calls it from stop() and from the connection's close, and a second
   * call (or one before any begin) does nothing: it must not carry the frames twice, nor report a
   * replay that was cut short as if it had ended.
   */
  endSession(): void {
    if (!this.inSession) return;
    this.inSession = false;
    this.flush();
    if (this.syncing) this.carried = [...this.carried, ...this.unacked.values()];
    this.unacked = new Map();
    this.written = 0;
    this.syncing = false;
    this.replaying = false;
    this.stream = undefined;
    this.held.clear();
    this.current = undefined;
    // A replay cut short: its unreadable frames come again, and are counted, in the next one.
    this.unreadableCount = 0;
  }

  /** Own chat messages written but not (yet) acknowledged with STORED: not sent until they are. */
  get unacknowledgedChats(): number {
    let n = 0;
    for (const f of this.unacked.values()) if (f.kind === 'chat') n++;
    for (const f of this.carried) if (f.kind === 'chat') n++;
    return n;
  }

  /** Frames of the last session the relay never acknowledged, to write again (once) after SYNC. */
  takeUnacknowledged(): LoggedFrame[] {
    const frames = this.carried;
    this.carried = [];
    return frames;
  }

  /** A frame to write again on the next session (it was cancelled before reaching the socket). */
  carry(frame: LoggedFrame): void {
    this.carried.push(frame);
  }

  /** Handles the envelope of DELIVERED {offset} inside `handle`. */
  delivered(offset: number, handle: () => void): void {
    this.current = offset;
    try {
      handle();
    } finally {
      this.current = undefined;
    }
    if (offset > this.through) this.through = offset;
    this.scheduleFlush();
  }

  /** The engine holds the frame being handled: the position must not pass it until it is released. */
  hold(): number | undefined {
    const offset = this.current;
    if (offset !== undefined) this.held.set(offset, (this.held.get(offset) ?? 0) + 1);
    return offset;
  }

  /** A held frame is handled now (or dropped, when `handle` is absent). */
  release(offset: number | undefined, handle?: () => void): void {
    if (offset === undefined) {
      handle?.();
      return;
    }
    this.current = offset;
    try {
      handle?.();
    } finally {
      this.current = undefined;
      const n = (this.held.get(offset) ?? 1) - 1;
      if (n <= 0) this.held.delete(offset);
      else this.held.set(offset, n);
      this.scheduleFlush();
    }
  }

  /** The frame being handled came from the log (inside DELIVERED, replayed or live). */
  get fromLog(): boolean {
    return this.current !== undefined;
  }

  /** The frame being handled was replayed from the log (DELIVERED before LIVE). */
  get inReplay(): boolean {
    const at = this.current;
    return at !== undefined && (this.replaying || at <= this.replayedThrough);
  }

  /** Whether the frame at `offset` came in the replay of what was missed (before LIVE), not live. */
  replayed(offset: number): boolean {
    return this.replaying || offset <= this.replayedThrough;
  }

  /**
   * A replayed message under a key this member never held (sent while it was away, to the members
   * online then): skipped without a line each; counted and reported once when the replay ends.
   */
  skipUnreadable(): void {
    this.unreadableCount++;
    this.scheduleFlush();
  }

  /** A frame with this (sender, epoch, seq) was stored or is being stored: drop it silently. */
  isDuplicate(from: string, epoch: number, seq: number): boolean {
    return this.pendingKeys.has(identityKey(from, epoch, seq)) || this.deps.history.has(from, epoch, seq);
  }

  /** A message that decrypted: stored this turn, shown once stored if it was new. */
  received(m: { from: string; text: string; epoch: number; seq: number; sentAt: number }): void {
    // Built field by field, not spread: one object shape for every message of a catch-up.
    const message: HistoryMessage = {
      from: m.from,
      text: m.text,
      epoch: m.epoch,
      seq: m.seq,
      sentAt: m.sentAt,
      receivedAt: this.now(),
      own: false,
    };
    if (this.current !== undefined && this.stream !== undefined) {
      message.streamId = this.stream;
      message.offset = this.current;
    }
    this.queue(message);
  }

  /** One of our messages went to the relay. */
  ownWritten(m: { from: string; text: string; epoch: number; seq: number; sentAt: number }): void {
    this.queue({ ...m, receivedAt: this.now(), own: true });
  }

  /** A logged-type frame was written on this session: the relay numbers them the same way. */
  logged(frame: LoggedFrame): void {
    this.written++;
    if (this.syncing) this.unacked.set(this.written, frame);
  }

  stored(acks: readonly StoredAck[]): void {
    const stream = this.stream;
    if (stream === undefined) return;
    // Our own message may still be in this turn's batch: store it before recording its offset.
    this.flush();
    for (const { n, offset } of acks) {
      const frame = this.unacked.get(n);
      if (!frame) continue; // already acknowledged, or never ours: nothing to do
      this.unacked.delete(n);
      if (frame.kind === 'chat') {
        try {
          this.deps.history.markStored(this.deps.self, frame.epoch, frame.seq, { streamId: stream, offset });
        } catch (err) {
          this.deps.problem(err);
        }
        this.deps.sent(frame.epoch, frame.seq, offset);
      }
    }
  }

  /** The replay is over: everything up to head that was for us has been delivered. */
  live(head: number): void {
    this.replaying = false;
    this.replayedThrough = head;
    if (head > this.through) this.through = head;
    this.scheduleFlush();
  }

  /** The log cannot serve our position: follow the one that is there, from where it starts. */
  gap(body: BodyOf<'GAP'>): void {
    this.flush();
    this.stream = body.streamId;
    this.through = Math.max(0, body.firstOffset - 1);
    this.saved = undefined;
    this.deps.gap(GAP_WORDS[body.reason]);
    this.scheduleFlush();
  }

  /** Commits this turn's messages and position; shows the new messages. */
  flush(): void {
    this.flushScheduled = false;
    // Said once the replay is over (frames held for a certificate may come a turn after LIVE).
    if (!this.replaying && this.unreadableCount > 0) {
      const count = this.unreadableCount;
      this.unreadableCount = 0;
      this.deps.unreadable?.(count);
    }
    const position = this.nextPosition();
    if (this.pending.length === 0 && position === undefined) return;
    const batch = this.pending;
    this.pending = [];
    this.pendingKeys.clear();
    let fresh: boolean[];
    try {
      fresh = this.deps.history.recordBatch(batch, position, { catchingUp: this.replaying });
    } catch (err) {
      this.deps.problem(err);
      return;
    }
    if (position !== undefined) this.saved = position;
    batch.forEach((m, i) => {
      if (!fresh[i]) return;
      this.deps.shown({
        from: m.from,
        text: m.text,
        epoch: m.epoch,
        seq: m.seq,
        sentAt: m.sentAt,
        own: m.own,
        ...(m.offset !== undefined ? { offset: m.offset } : {}),
      });
    });
  }

  private queue(message: HistoryMessage): void {
    const key = identityKey(message.from, message.epoch, message.seq);
    if (this.pendingKeys.has(key)) return;
    this.pendingKeys.add(key);
    this.pending.push(message);
    this.scheduleFlush();
  }

  /** Where the saved position may move now, or undefined if it stays. */
  private nextPosition(): LogPosition | undefined {
    const stream = this.stream;
    if (stream === undefined) return undefined;
    let offset = this.through;
    for (const h of this.held.keys()) offset = Math.min(offset, h - 1);
    const saved = this.saved;
    if (saved !== undefined && saved.streamId === stream && offset <= saved.offset) return undefined;
    return { streamId: stream, offset };
  }

  private scheduleFlush(): void {
    if (this.flushScheduled) return;
    this.flushScheduled = true;
    this.schedule(() => {
      if (this.flushScheduled) this.flush();
    });
  }
}
