/**
 * Forwarding: a member's frame goes out, bytes exactly as received, to its receivers. A frame that
 * arrived whole inside one read is queued as a range of that read's buffer (no copy, no Buffer
 * per receiver); one assembled across reads is queued as prefix + payload.
 *
 * This is where a routed frame leaves the relay. On a relay with a log, logged frames
 * (ENCRYPTED_TEXT, KEY_DISTRIBUTION) go through log-fanout.ts instead: to the log, then out.
 */
import { LENGTH_PREFIX_BYTES, lengthPrefix } from '../core/protocol/index.js';
import type { RelayConnection } from './connection.js';
import type { Membership } from './membership.js';
import type { Output } from './output.js';

export interface RelayCounters {
  /** Frames received from clients. */
  framesReceived: number;
  /** Member frames routed (each counted once, however many receivers). */
  framesForwarded: number;
  /** Frame copies written to receivers by forwarding. */
  deliveries: number;
  bytesForwarded: number;
}

export class Forwarder {
  constructor(
    private readonly membership: Membership,
    private readonly output: Output,
    private readonly counters: RelayCounters,
  ) {}

  /** Forwards a frame, bytes as received, to every member but `from`. */
  broadcast(from: RelayConnection, payload: Buffer, chunk: Buffer): void {
    const whole = wholeInChunk(payload, chunk);
    const prefix = whole ? undefined : lengthPrefix(payload.length);
    const start = payload.byteOffset - LENGTH_PREFIX_BYTES;
    const end = payload.byteOffset + payload.length;
    let n = 0;
    for (const c of this.membership.all) {
      if (c === from || c.state !== 'member') continue;
      if (prefix) {
        this.output.send(c, prefix);
        this.output.send(c, payload);
      } else {
        c.queueRange(payload.buffer, start, end);
        this.output.markDirty(c);
      }
      n++;
    }
    this.counted(payload, n);
  }

  /** Forwards a frame, bytes as received, to one member. */
  forward(to: RelayConnection, payload: Buffer, chunk: Buffer): void {
    if (wholeInChunk(payload, chunk)) {
      to.queueRange(
        payload.buffer,
        payload.byteOffset - LENGTH_PREFIX_BYTES,
        payload.byteOffset + payload.length,
      );
      this.output.markDirty(to);
    } else {
      this.output.send(to, lengthPrefix(payload.length));
      this.output.send(to, payload);
    }
    this.counted(payload, 1);
  }

  private counted(payload: Buffer, receivers: number): void {
    this.counters.framesForwarded++;
    this.counters.deliveries += receivers;
    this.counters.bytesForwarded += (payload.length + LENGTH_PREFIX_BYTES) * receivers;
  }
}

/**
 * True if the frame arrived whole inside this read: then it sits in the read's buffer right after
 * its own length prefix, and [payload - 4, payload end) is the frame exactly as received, which is
 * forwarded without a copy. False for a frame assembled across reads.
 */
export function wholeInChunk(payload: Buffer, chunk: Buffer): boolean {
  return (
    payload.buffer === chunk.buffer &&
    payload.byteOffset - LENGTH_PREFIX_BYTES >= chunk.byteOffset &&
    payload.byteOffset + payload.length <= chunk.byteOffset + chunk.length
  );
}
