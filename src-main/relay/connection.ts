/**
 * One TCP connection to the relay: its socket, frame decoder, authentication state, rate-limit
 * buckets and the outbox of frames queued for it during the current read (flushed in one write).
 */
import type { Socket } from 'node:net';
import type { Certificate } from '../core/pki/certificate.js';
import type { Liveness } from '../core/link/liveness.js';
import { FrameDecoder } from '../core/protocol/index.js';
import { TokenBucket, type RelayLimits } from './limits.js';
import type { MemberLogState } from './member-log-state.js';

export type ConnectionState =
  /** Accepted: the TLS handshake runs, then HELLO is signed. Nothing is read yet. */
  | 'hello'
  /** HELLO sent; only CONNECTION is accepted. */
  | 'awaiting-auth'
  /**
   * CONNECTION passed but the relay holds no roster (ERROR NoRoster sent): only a ROSTER upload is
   * accepted, for rosterWindowMs (roster-window.ts).
   */
  | 'roster-only'
  /** Authenticated: frames are routed. */
  | 'member'
  /** Closing: the last frames are flushing, nothing more is read or queued. */
  | 'closing'
  | 'closed';

export class RelayConnection {
  state: ConnectionState = 'hello';
  challenge: Buffer | undefined;
  certificate: Certificate | undefined;
  /** The member certificate the TLS handshake authenticated; CONNECTION must present the same. */
  linkCertificate: Certificate | undefined;
  readonly decoder: FrameDecoder;
  readonly frameBucket: TokenBucket;
  readonly byteBucket: TokenBucket;
  authFailures = 0;
  /** Why the connection ended, for the log. */
  closeReason: string | undefined;
  authTimer: NodeJS.Timeout | undefined;
  /** From login on: heartbeats both ways (core/link/liveness.ts), and this session's own HEARTBEAT. */
  liveness: Liveness | undefined;
  heartbeatFrame: Buffer | undefined;
  /** The session's side of the relay's log (relays with a store only): counts, SYNC, acks. */
  logState: MemberLogState | undefined;
  private resumeTimer: NodeJS.Timeout | undefined;
  private lingerTimer: NodeJS.Timeout | undefined;
  private errors = 0;
  private errorsAt = performance.now();
  private outbox: Buffer[] = [];
  private outboxBytes = 0;
  private runBuffer: ArrayBufferLike | undefined;
  private runStart = 0;
  private runEnd = 0;
  /** Bytes handed to socket.write so far, and the drain progress seen by the stall check. */
  private written = 0;
  private drainedAtCheck = 0;
  private progressAt = performance.now();

  constructor(
    readonly id: number,
    readonly socket: Socket,
    readonly remote: string,
    private readonly limits: RelayLimits,
  ) {
    this.decoder = new FrameDecoder(limits.maxPreAuthFrameBytes);
    this.frameBucket = new TokenBucket(limits.rateFramesPerSec, limits.rateFrameBurst);
    this.byteBucket = new TokenBucket(limits.rateBytesPerSec, limits.rateByteBurst);
  }

  get name(): string | undefined {
    return this.certificate?.name;
  }

  get open(): boolean {
    return this.state !== 'closing' && this.state !== 'closed';
  }

  /**
   * Queues bytes for the next flush. Bytes that directly follow the previously queued ones in
   * memory (consecutive frames of one read, forwarded to the same receiver) extend one run, so a
   * read full of chat frames goes out as a single view of the read buffer: no copy at all.
   */
  queue(data: Buffer): void {
    this.queueRange(data.buffer, data.byteOffset, data.byteOffset + data.length);
  }

  /** Queues bytes [start, end) of `buffer` (no Buffer object needed per forwarded frame). */
  queueRange(buffer: ArrayBufferLike, start: number, end: number): void {
    if (!this.open) return;
    this.outboxBytes += end - start;
    if (this.runBuffer === buffer && this.runEnd === start) {
      this.runEnd = end;
      return;
    }
    this.closeRun();
    this.runBuffer = buffer;
    this.runStart = start;
    this.runEnd = end;
  }

  private closeRun(): void {
    if (this.runBuffer) {
      this.outbox.push(Buffer.from(this.runBuffer, this.runStart, this.runEnd - this.runStart));
      this.runBuffer = undefined;
    }
  }

  /** Bytes queued for this connection and not yet taken by the kernel (outbox + socket buffer). */
  get queuedBytes(): number {
    return this.outboxBytes + this.socket.writableLength;
  }

  /**
   * Writes everything queued at once: one write, or several corked into one writev (no copy), so a
   * whole read's worth of frames costs one syscall per receiver. Returns the socket's pending
   * output afterwards, for the stalled-reader check.
   */
  flush(): number {
    this.closeRun();
    const socket = this.socket;
    if (this.outbox.length > 0 && !socket.destroyed && socket.writable) {
      if (this.outbox.length === 1) {
        socket.write(this.outbox[0] as Buffer);
      } else {
        socket.cork();
        for (const b of this.outbox) socket.write(b);
        socket.uncork();
      }
      this.written += this.outboxBytes;
      this.liveness?.sent(performance.now());
    }
    this.outbox = [];
    this.outboxBytes = 0;
    return this.socket.writableLength;
  }

  /**
   * Counts a refused frame; the count decays by one every errorDecayMs. Returns true when the
   * connection has reached maxProtocolErrors.
   */
  countError(): boolean {
    const now = performance.now();
    this.errors = Math.max(0, this.errors - (now - this.errorsAt) / this.limits.errorDecayMs);
    this.errorsAt = now;
    this.errors += 1;
    return this.errors >= this.limits.maxProtocolErrors;
  }

  /** Charges one frame; if the connection is over its rate, stops reading until it is not. */
  charge(frameBytes: number, cost = 1, now = performance.now()): void {
    const wait = Math.max(this.frameBucket.take(cost, now), this.byteBucket.take(frameBytes + 4, now));
    if (wait > 0 && this.resumeTimer === undefined && this.open) {
      this.socket.pause();
      this.resumeTimer = setTimeout(() => {
        this.resumeTimer = undefined;
        if (this.open) this.socket.resume();
      }, wait);
    }
  }

  /**
   * The stalled-reader check, run periodically: true if output has been waiting and the peer has
   * not accepted a single byte of it for `stallMs`.
   */
  stalled(now: number, stallMs: number): boolean {
    const pending = this.socket.writableLength;
    const drained = this.written - pending;
    if (pending === 0 || drained > this.drainedAtCheck) {
      this.drainedAtCheck = drained;
      this.progressAt = now;
      return false;
    }
    return now - this.progressAt > stallMs;
  }

  /** Whether reading is paused by the rate limit. */
  get throttled(): boolean {
    return this.resumeTimer !== undefined;
  }

  /**
   * Stops reading, flushes `last` (a final ERROR) after anything queued, ends the socket and
   * destroys it if it has not closed within closeLingerMs (a stalled reader never drains).
   */
  close(reason: string, last?: Buffer, destroyNow = false): void {
    if (!this.open) return;
    this.closeReason ??= reason;
    if (last) this.queue(last);
    this.closeRun();
    this.state = 'closing';
    this.clearTimers();
    this.socket.pause();
    if (destroyNow) {
      this.outbox = [];
      this.outboxBytes = 0;
      this.socket.destroy();
      return;
    }
    if (this.outbox.length > 0 && !this.socket.destroyed && this.socket.writable) {
      const data = Buffer.concat(this.outbox, this.outboxBytes);
      this.outbox = [];
      this.outboxBytes = 0;
      this.socket.end(data);
    } else {
      this.socket.end();
    }
    this.lingerTimer = setTimeout(() => this.socket.destroy(), this.limits.closeLingerMs);
    this.lingerTimer.unref();
  }

  /** The socket has closed: release timers. */
  closed(): void {
    this.state = 'closed';
    this.clearTimers();
    if (this.lingerTimer) clearTimeout(this.lingerTimer);
    this.outbox = [];
    this.outboxBytes = 0;
    this.runBuffer = undefined;
  }

  private clearTimers(): void {
    if (this.authTimer) clearTimeout(this.authTimer);
    if (this.resumeTimer) clearTimeout(this.resumeTimer);
    this.authTimer = undefined;
    this.resumeTimer = undefined;
  }
}
