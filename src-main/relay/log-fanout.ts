/**
 * Store and forward (DESIGN §10.3, docs/protocol.md "What is logged"): a logged frame
 * (ENCRYPTED_TEXT to all, KEY_DISTRIBUTION to its target) goes through the LogWriter, i.e. one
 * transaction per event-loop turn, and only once its batch is durable does it go out:
 *
 * - to a receiver that sent SYNC and is live, as DELIVERED: one 14-byte chunk (length prefix and
 *   DELIVERED header, shared by every such receiver of the frame) and then the envelope bytes as a
 *   view of the buffer they were read into (no copy per receiver);
 * - to a receiver that never sent SYNC (v1), as the bare envelope exactly as without a log;
 * - not to a receiver whose replay is still running: the frame is in the log, the replay sends it.
 *
 * On a cluster node (a log shared through JetStream) the fan-out only stores and acknowledges: the
 * node's StreamFollower (cluster/follower.ts) reads every stored frame back in stream order, its
 * own included, and hands each to deliverStored(), which sends it by the same rules as above.
 *
 * The sender, if it sent SYNC, gets STORED acks, gathered per turn into one link frame. An append
 * that fails is not forwarded and not acknowledged (the member resends it after a reconnect);
 * the error is logged once per failed batch and the relay goes on.
 */
import type { Logger } from 'pino';
import {
  deliveredHeader,
  encodeStored,
  LENGTH_PREFIX_BYTES,
  lengthPrefix,
  MAX_STORED_ACKS,
  type StoredAck,
} from '../core/protocol/index.js';
import type { RelayConnection } from './connection.js';
import type { ConnectionControl } from './control.js';
import { wholeInChunk, type RelayCounters } from './forwarding.js';
import type { LogEntry } from './log/types.js';
import type { LogWriter } from './log/writer.js';
import { logStateOf } from './member-log-state.js';
import type { Membership } from './membership.js';
import type { Output } from './output.js';

/** n is a u32 in STORED: a session that has sent more logged frames than that gets no more acks. */
const MAX_ACK_NUMBER = 0xffffffff;

export interface LogFanoutCounters {
  /** Frames stored in the log. */
  framesLogged: number;
  /** Frames whose append failed (not forwarded, not acknowledged). */
  logFailures: number;
}

/** A frame to send on: its envelope bytes and whether they sit right after their prefix in a read. */
interface OutFrame {
  payload: Buffer;
  /** The frame arrived whole in one read: [payload - 4, end) of its buffer is the frame as received. */
  whole: boolean;
}

interface LoggedFrame extends OutFrame {
  from: RelayConnection;
  /** The sender's count for this frame (its n), 0 when it is past the u32 range. */
  n: number;
  /** Undefined: a broadcast; else the member it is for. */
  target: string | undefined;
}

export class LogFanout {
  readonly stats: LogFanoutCounters = { framesLogged: 0, logFailures: 0 };
  /** Senders with acks gathered during this drain of durable frames. */
  private readonly acking = new Set<RelayConnection>();
  private ackFlushQueued = false;
  private failedBatch: { frames: number; err: unknown } | undefined;
  /** Senders of the frames that failed during this drain. */
  private readonly failedSenders = new Set<RelayConnection>();
  /** Bytes stored since the last call to takeStoredBytes (retention watches the size with it). */
  private storedBytes = 0;
  /** Called after each drain that stored something (retention checks the size cap). */
  onStored: (() => void) | undefined;
  /**
   * Set on a cluster node: stored frames are not sent from here but handed to this (the node's
   * StreamFollower), which reads them back in stream order and sends them with deliverStored().
   */
  shared: { appended(offset: number): void } | undefined;
  /**
   * Set on a cluster node: the senders of frames whose append failed. A member resends what was
   * not acknowledged only in its next session, so one that stays connected would wait forever
   * after a failure that passes (a JetStream leader election): the node closes it instead.
   */
  onAppendFailed: ((senders: RelayConnection[], reason: string) => void) | undefined;

  constructor(
    private readonly writer: LogWriter,
    private readonly membership: Membership,
    private readonly output: Output,
    private readonly counters: RelayCounters,
    private readonly log: Logger,
    private readonly control: ConnectionControl,
  ) {}

  /**
   * Counts a frame of a logged type from `conn` (its n), refused or not: see MemberLogState.sent.
   * Returns the n to pass to append.
   */
  count(conn: RelayConnection): number {
    const state = logStateOf(conn);
    state.sent++;
    return state.sent <= MAX_ACK_NUMBER ? state.sent : 0;
  }

  /** Frame bytes stored since the last call. */
  takeStoredBytes(): number {
    const n = this.storedBytes;
    this.storedBytes = 0;
    return n;
  }

  /**
   * Stores a frame from `from` (`payload` decoded from read `chunk`), then forwards it: to every
   * other member (target undefined) or to `target` if connected. `n` comes from count().
   */
  append(from: RelayConnection, n: number, payload: Buffer, chunk: Buffer, target?: string): void {
    const sender = from.name;
    if (sender === undefined) throw new Error('a logged frame from a connection without a name');
    const frame: LoggedFrame = { from, n, payload, whole: wholeInChunk(payload, chunk), target };
    this.writer
      .append({
        audience: target === undefined ? { kind: 'all' } : { kind: 'member', name: target },
        sender,
        frame: payload,
      })
      .then(
        (offset) => this.control.guard(undefined, () => this.durable(frame, offset)),
        (err: unknown) => this.failed(err, from),
      );
  }

  /** Commits what the writer holds and waits for it (shutdown). */
  flush(): Promise<void> {
    return this.writer.flush();
  }

  private durable(f: LoggedFrame, offset: number): void {
    this.stats.framesLogged++;
    this.storedBytes += f.payload.length;
    if (this.shared) {
      this.shared.appended(offset);
      this.ack(f, offset);
      this.queueDrainEnd();
      return;
    }
    // One header for every SYNCed receiver of this frame: built on first use.
    let header: Buffer | undefined;
    const headerFor = (): Buffer => (header ??= deliveredChunk(offset, f.payload.length));
    let receivers = 0;
    if (f.target === undefined) {
      for (const c of this.membership.all) {
        if (c !== f.from && this.deliver(c, f, offset, headerFor)) receivers++;
      }
    } else {
      const to = this.membership.byName.get(f.target);
      if (to !== undefined && to !== f.from && this.deliver(to, f, offset, headerFor)) receivers++;
    }
    this.counters.framesForwarded++;
    this.counters.deliveries += receivers;
    this.counters.bytesForwarded += (f.payload.length + LENGTH_PREFIX_BYTES) * receivers;
    this.ack(f, offset);
    this.queueDrainEnd();
  }

  /**
   * A frame of the shared log (any node's), read back in stream order: to this node's members it
   * is for, as durable() sends a local one (never back to its sender, not to a running replay).
   */
  deliverStored(e: LogEntry): void {
    let header: Buffer | undefined;
    const headerFor = (): Buffer => (header ??= deliveredChunk(e.offset, e.frame.length));
    const f: OutFrame = { payload: e.frame, whole: false };
    let receivers = 0;
    if (e.audience.kind === 'all') {
      for (const c of this.membership.all) {
        if (c.name !== e.sender && this.deliver(c, f, e.offset, headerFor)) receivers++;
      }
    } else {
      const to = this.membership.byName.get(e.audience.name);
      if (to !== undefined && to.name !== e.sender && this.deliver(to, f, e.offset, headerFor)) receivers++;
    }
    this.counters.framesForwarded++;
    this.counters.deliveries += receivers;
    this.counters.bytesForwarded += (e.frame.length + LENGTH_PREFIX_BYTES) * receivers;
  }

  /** Queues a durable frame for `c` if it is due one now; true if it was. */
  private deliver(c: RelayConnection, f: OutFrame, offset: number, headerFor: () => Buffer): boolean {
    if (c.state !== 'member') return false;
    const sync = c.logState?.sync;
    if (sync === undefined) {
      // v1: the envelope exactly as received, as forwarding sends it without a log.
      if (f.whole) {
        c.queueRange(
          f.payload.buffer,
          f.payload.byteOffset - LENGTH_PREFIX_BYTES,
          f.payload.byteOffset + f.payload.length,
        );
        this.output.markDirty(c);
      } else {
        this.output.send(c, lengthPrefix(f.payload.length));
        this.output.send(c, f.payload);
      }
      return true;
    }
    // A running replay will read this frame from the log; a live session already has everything
    // up to its position (its replay's last read).
    if (sync.mode !== 'live' || offset <= sync.position) return false;
    sync.position = offset;
    this.output.send(c, headerFor());
    this.output.send(c, f.payload);
    return true;
  }

  private ack(f: LoggedFrame, offset: number): void {
    const from = f.from;
    const state = from.logState;
    if (f.n === 0 || state?.sync === undefined || from.state !== 'member') return;
    state.acks.push({ n: f.n, offset });
    this.acking.add(from);
  }

  private failed(err: unknown, from: RelayConnection): void {
    this.stats.logFailures++;
    this.failedSenders.add(from);
    // Every frame of a failed batch rejects in the same drain: log once for the batch.
    if (this.failedBatch) {
      this.failedBatch.frames++;
    } else {
      this.failedBatch = { frames: 1, err };
    }
    this.queueDrainEnd();
  }

  /**
   * The writer settles a batch's callers in one drain of microtasks; this runs after all of them
   * (queued behind them), so a turn's acks go out as one STORED per sender.
   */
  private queueDrainEnd(): void {
    if (this.ackFlushQueued) return;
    this.ackFlushQueued = true;
    queueMicrotask(() => this.control.guard(undefined, () => this.drainEnd()));
  }

  private drainEnd(): void {
    this.ackFlushQueued = false;
    for (const c of this.acking) {
      const state = c.logState;
      if (!state || state.acks.length === 0) continue;
      const acks = state.acks;
      state.acks = [];
      if (c.state === 'member') this.sendStored(c, acks);
    }
    this.acking.clear();
    // This runs right after the writer's commit (a setImmediate callback): write the batch out now
    // rather than at the flush it scheduled, which would be the next turn's.
    this.output.flushNow();
    const failed = this.failedBatch;
    this.failedBatch = undefined;
    if (failed) {
      const err = failed.err;
      this.log.error(
        {
          event: 'log-append-failed',
          frames: failed.frames,
          code: (err as { code?: unknown } | undefined)?.code,
          err: err instanceof Error ? err.message : String(err),
        },
        'storing frames failed: they were not forwarded nor acknowledged (senders resend them)',
      );
    }
    const senders = [...this.failedSenders].filter((c) => c.open);
    this.failedSenders.clear();
    if (senders.length > 0) this.onAppendFailed?.(senders, 'the shared log did not store your frames');
    if (this.storedBytes > 0) this.onStored?.();
  }

  private sendStored(c: RelayConnection, acks: StoredAck[]): void {
    for (let i = 0; i < acks.length; i += MAX_STORED_ACKS) {
      const frame = encodeStored(acks.slice(i, i + MAX_STORED_ACKS));
      this.output.send(c, lengthPrefix(frame.length));
      this.output.send(c, frame);
    }
  }
}

/** Length prefix + DELIVERED header: what goes before the envelope bytes of a DELIVERED frame. */
export function deliveredChunk(offset: number, envelopeBytes: number): Buffer {
  const header = deliveredHeader(offset);
  const out = Buffer.allocUnsafe(LENGTH_PREFIX_BYTES + header.length);
  out.writeUInt32BE(header.length + envelopeBytes, 0);
  header.copy(out, LENGTH_PREFIX_BYTES);
  return out;
}
