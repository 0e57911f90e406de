/**
 * Admission pressure, summarised: a flood must not turn into a flood of log lines, so evictions
 * and connections closed at accept are counted and reported at most once per interval (the first
 * one at once, so an operator sees a flood begin). Pure: the clock is injected, the caller logs.
 */

export const PRESSURE_EVENTS = [
  /** A pending connection closed to admit a newer one (the pool was full). */
  'evicted',
  /** Closed at accept: its address already had maxPendingPerAddress pending connections. */
  'refusedPerAddress',
  /** Closed at accept: its address spent its failed-login budget. */
  'refusedAddressBudget',
  /** Admitted with the short deadline (the pool was more than half full). */
  'shortDeadline',
] as const;
export type PressureEvent = (typeof PRESSURE_EVENTS)[number];
export type PressureCounts = Record<PressureEvent, number>;

const zero = (): PressureCounts => ({
  evicted: 0,
  refusedPerAddress: 0,
  refusedAddressBudget: 0,
  shortDeadline: 0,
});

export class PressureReport {
  private counts = zero();
  private pending = false;
  private lastReportAt = Number.NEGATIVE_INFINITY;

  constructor(
    private readonly intervalMs: number,
    private readonly now: () => number = () => performance.now(),
  ) {}

  /** Counts one event; returns the counts to report now, if an interval has passed. */
  note(event: PressureEvent): PressureCounts | undefined {
    this.counts[event]++;
    this.pending = true;
    return this.flush();
  }

  /** The counts since the last report, once an interval has passed and there are any. */
  flush(): PressureCounts | undefined {
    const t = this.now();
    if (!this.pending || t - this.lastReportAt < this.intervalMs) return undefined;
    const out = this.counts;
    this.counts = zero();
    this.pending = false;
    this.lastReportAt = t;
    return out;
  }
}
