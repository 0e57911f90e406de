/**
 * A relay node following its group's JetStream stream (DESIGN §10.7), so that a frame stored by
 * any node reaches the members connected to this one live, with its offset, once, in stream order.
 *
 * Every logged frame a member of this node receives live comes from here, its own node's frames
 * included: the node's fan-out only acknowledges (STORED) what it appended and hands the offset to
 * appended(). One reader in stream order is what makes "in order, exactly once" hold across nodes:
 * were local frames delivered at their ack and remote ones when read, a local frame acked at 10
 * could go out before a remote one at 9, which the live position would then skip.
 *
 * Reads go by sequence through the stream leader (readRange), not through a consumer: docs/relay.md
 * explains why an R1 consumer on a lagging replica misses acknowledged frames. What tells the reader
 * there is more is a core NATS subject (`tick`): each node publishes the last offset it stored once
 * JetStream acknowledged it, so a tick never names an offset the leader does not hold. Ticks are
 * not durable (a node may die between its ack and its tick, a connection may drop one), so a slow
 * poll of the stream's last sequence backs them up; neither decides what is delivered, only when
 * the reader looks.
 */
import type { Subscription } from '@nats-io/transport-node';
import type { Logger } from 'pino';
import type { JetStreamRelayLog } from '../log/jetstream-log.js';
import type { LogEntry } from '../log/types.js';

/** Sequences looked at per read (one pipelined STREAM.MSG.GET each). */
const READ_CHUNK = 256;
/** The backstop: how often the stream's last sequence is asked for when no tick came. */
export const FOLLOW_POLL_MS = 1_000;

export interface FollowerOptions {
  log: JetStreamRelayLog;
  logger: Logger;
  /** One stored frame, in stream order; called synchronously, position() already covers it. */
  deliver(entry: LogEntry): void;
  pollMs?: number;
}

export class StreamFollower {
  /** Every offset up to this one has been delivered (or skipped: before start, dropped). */
  #position: number;
  /** The highest offset known to be stored. */
  private target: number;
  private reading = false;
  private stopped = false;
  private failing = false;
  private readonly poll: NodeJS.Timeout;

  private constructor(
    private readonly options: FollowerOptions,
    start: number,
    private readonly sub: Subscription,
  ) {
    this.#position = start;
    this.target = start;
    this.poll = setInterval(() => this.checkHead(), options.pollMs ?? FOLLOW_POLL_MS);
    this.poll.unref();
    void this.listen();
  }

  /** Follows from the stream's head now: what was stored before is replay material (SYNC). */
  static async start(options: FollowerOptions): Promise<StreamFollower> {
    const sub = options.log.connection.subscribe(options.log.names.tick);
    try {
      const { lastOffset } = await options.log.bounds();
      return new StreamFollower(options, lastOffset, sub);
    } catch (err) {
      sub.unsubscribe();
      throw err;
    }
  }

  /** Every offset up to this one went through deliver() (a replay must reach it before going live). */
  get position(): number {
    return this.#position;
  }

  /** This node stored frames up to `offset` (JetStream acknowledged them): read them, tell the others. */
  appended(offset: number): void {
    if (this.stopped) return;
    this.advance(offset);
    try {
      this.options.log.connection.publish(this.options.log.names.tick, String(offset));
    } catch {
      // A closed or draining connection: the other nodes' polls find the frame.
    }
  }

  stop(): void {
    this.stopped = true;
    clearInterval(this.poll);
    this.sub.unsubscribe();
  }

  private async listen(): Promise<void> {
    for await (const m of this.sub) {
      const text = m.string();
      // Another node's word, so checked: a decimal offset, nothing else.
      if (/^\d{1,16}$/.test(text)) this.advance(Number(text));
    }
  }

  private advance(offset: number): void {
    if (!Number.isSafeInteger(offset) || offset <= this.target) return;
    this.target = offset;
    void this.read();
  }

  private checkHead(): void {
    if (this.stopped || this.reading) return;
    this.options.log.bounds().then(
      (b) => {
        this.advance(b.lastOffset);
        // Also when the target did not move: a read that failed left frames below it unsent.
        void this.read();
      },
      (err: unknown) => this.failed(err),
    );
  }

  /** Reads and delivers up to the target; one reader at a time, so offsets go out in order. */
  private async read(): Promise<void> {
    if (this.reading || this.stopped) return;
    this.reading = true;
    try {
      while (!this.stopped && this.#position < this.target) {
        const { entries, next } = await this.options.log.readRange(this.#position, this.target, READ_CHUNK);
        if (this.stopped) return;
        for (const entry of entries) {
          this.#position = entry.offset;
          this.options.deliver(entry);
        }
        this.#position = Math.max(this.#position, next);
      }
      if (this.failing) this.recovered();
    } catch (err) {
      // Retried by the poll (the position is unchanged: nothing is skipped).
      this.failed(err);
    } finally {
      this.reading = false;
    }
  }

  private failed(err: unknown): void {
    if (this.stopped || this.failing) return;
    this.failing = true;
    this.options.logger.warn(
      {
        event: 'cluster-follow-failed',
        position: this.#position,
        code: (err as { code?: unknown } | undefined)?.code,
        err: err instanceof Error ? err.message : String(err),
      },
      'reading the shared log failed: retrying',
    );
  }

  private recovered(): void {
    this.failing = false;
    this.options.logger.info(
      { event: 'cluster-follow-resumed', position: this.#position },
      'reading the shared log again',
    );
  }
}
