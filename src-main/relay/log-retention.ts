/**
 * Retention for the relay's log (DESIGN §10.3: max age, default 30 days; max size, default 1 GiB;
 * oldest first): enforced when the relay starts, then hourly, and as soon as the log has grown past
 * its size cap (log-fanout.ts reports the bytes it stores). Each enforceRetention call drops a
 * capped number of frames; between calls the keeper yields to the event loop, so a relay started
 * after a long pause keeps forwarding while it catches up.
 */
import type { Logger } from 'pino';
import type { RelayLog } from './log/types.js';
import type { RelayLimits } from './limits.js';

const HOURLY_MS = 3_600_000;

export interface RetentionCounters {
  /** Frames dropped by retention since the relay started. */
  droppedFrames: number;
  /** Completed retention runs. */
  runs: number;
}

export class RetentionKeeper {
  readonly stats: RetentionCounters = { droppedFrames: 0, runs: 0 };
  private readonly maxAgeMs: number;
  private readonly maxBytes: number;
  private timer: NodeJS.Timeout | undefined;
  private running: Promise<void> | undefined;
  /** Frame bytes the log holds, as of the last run plus what was stored since. */
  private estimate = 0;
  private stopped = false;

  constructor(
    private readonly store: RelayLog,
    limits: Pick<RelayLimits, 'retentionDays' | 'retentionMb'>,
    private readonly log: Logger,
    private readonly now: () => number = Date.now,
  ) {
    this.maxAgeMs = limits.retentionDays * 86_400_000;
    this.maxBytes = limits.retentionMb * 1024 * 1024;
  }

  /** Runs once now, then hourly. */
  start(): void {
    this.trigger();
    this.timer = setInterval(() => this.trigger(), HOURLY_MS);
    this.timer.unref();
  }

  /** `bytes` more were stored: run at once if that takes the log past its size cap. */
  stored(bytes: number): void {
    this.estimate += bytes;
    if (this.estimate > this.maxBytes) this.trigger();
  }

  /** Stops the timer and waits for a run in progress (before the store is closed). */
  async stop(): Promise<void> {
    this.stopped = true;
    if (this.timer) clearInterval(this.timer);
    await this.running;
  }

  /** The current run, if one is going (tests wait for it). */
  get idle(): Promise<void> {
    return this.running ?? Promise.resolve();
  }

  private trigger(): void {
    if (this.running || this.stopped) return;
    this.running = this.run()
      .catch((err: unknown) =>
        this.log.error(
          {
            event: 'retention-failed',
            code: (err as { code?: unknown } | undefined)?.code,
            err: err instanceof Error ? err.message : String(err),
          },
          'log retention failed (it is tried again at the next hour or size check)',
        ),
      )
      .finally(() => {
        this.running = undefined;
      });
  }

  private async run(): Promise<void> {
    let frames = 0;
    let bytes = 0;
    let firstOffset: number | undefined;
    for (;;) {
      const r = await this.store.enforceRetention({
        maxAgeMs: this.maxAgeMs,
        maxBytes: this.maxBytes,
        now: this.now(),
      });
      frames += r.droppedFrames;
      bytes += r.droppedBytes;
      firstOffset = r.firstOffset;
      if (!r.more || this.stopped) break;
      // Capped call: let forwarding run before the next one.
      await new Promise<void>((resolve) => setImmediate(resolve));
    }
    this.estimate = (await this.store.bounds()).bytes;
    this.stats.droppedFrames += frames;
    this.stats.runs++;
    if (frames > 0) {
      this.log.info(
        { event: 'retention', droppedFrames: frames, droppedBytes: bytes, firstOffset, bytes: this.estimate },
        'log retention dropped the oldest frames',
      );
    }
  }
}
