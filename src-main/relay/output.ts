/**
 * Output: bytes queued for a connection during this turn of the event loop are written once,
 * after the poll phase (one write per receiver however many frames it got). Receivers that let
 * output pile up past maxOutboundBytes, or read nothing for stallTimeoutMs, are SlowConsumers.
 */
import type { Logger } from 'pino';
import type { RelayConnection } from './connection.js';
import type { ConnectionControl } from './control.js';
import type { RelayLimits } from './limits.js';
import type { Refusals } from './refusals.js';

export class Output {
  private readonly dirty = new Set<RelayConnection>();
  private flushScheduled = false;
  private stallTimer: NodeJS.Timeout | undefined;
  private readonly flushAllNow = (): void => this.flushAll();

  constructor(
    private readonly limits: RelayLimits,
    private readonly log: Logger,
    private readonly control: ConnectionControl,
    private readonly refusals: Refusals,
  ) {}

  /** Queues bytes for `conn`; everything queued during one read is written at once afterwards. */
  send(conn: RelayConnection, data: Buffer): void {
    if (!conn.open) return;
    conn.queue(data);
    this.markDirty(conn);
  }

  /** `conn` has bytes queued (queue / queueRange): write them at the end of this turn. */
  markDirty(conn: RelayConnection): void {
    this.dirty.add(conn);
    if (!this.flushScheduled) {
      this.flushScheduled = true;
      // After the poll phase: every read of this loop iteration (libuv reads a busy socket up to
      // 32 times in a row) goes out in one write per receiver.
      setImmediate(this.flushAllNow);
    }
  }

  /**
   * Writes what is queued now instead of at the scheduled flush: for bytes queued from inside a
   * setImmediate callback (the log's commit), whose scheduled flush would otherwise wait for the
   * next turn of the loop.
   */
  flushNow(): void {
    // The scheduled flush stays scheduled (and finds nothing, or what was queued since).
    if (this.dirty.size > 0) this.flushDirty();
  }

  /** The connection is closing or closed: nothing more is flushed for it. */
  forget(conn: RelayConnection): void {
    this.dirty.delete(conn);
  }

  /** Starts the stalled-reader check over `connections`. */
  start(connections: ReadonlySet<RelayConnection>): void {
    this.stallTimer = setInterval(
      () => this.control.guard(undefined, () => this.checkStalled(connections)),
      Math.min(1000, Math.max(50, this.limits.stallTimeoutMs / 4)),
    );
    this.stallTimer.unref();
  }

  stop(): void {
    if (this.stallTimer) clearInterval(this.stallTimer);
  }

  private flushAll(): void {
    this.flushScheduled = false;
    this.flushDirty();
  }

  private flushDirty(): void {
    const batch = [...this.dirty];
    this.dirty.clear();
    for (const c of batch) {
      this.control.guard(c, () => {
        const pending = c.flush();
        if (pending > this.limits.maxOutboundBytes && c.open) {
          this.slowConsumer(c, `more than ${this.limits.maxOutboundBytes} bytes waiting`);
        }
      });
    }
  }

  /** Disconnects receivers that have not read anything for stallTimeoutMs while output waits. */
  private checkStalled(connections: ReadonlySet<RelayConnection>): void {
    const now = performance.now();
    for (const c of connections) {
      if (c.open && c.state !== 'hello' && c.stalled(now, this.limits.stallTimeoutMs)) {
        this.control.guard(c, () =>
          this.slowConsumer(c, `nothing read for ${this.limits.stallTimeoutMs} ms`),
        );
      }
    }
  }

  private slowConsumer(c: RelayConnection, why: string): void {
    const pendingBytes = c.socket.writableLength;
    this.log.warn(
      { event: 'slow-consumer', conn: c.id, name: c.name, pendingBytes, why },
      'receiver is not reading',
    );
    this.control.drop(
      c,
      'slow-consumer',
      this.refusals.error(c, 'SlowConsumer', `disconnected: ${why}`, true),
    );
  }
}
