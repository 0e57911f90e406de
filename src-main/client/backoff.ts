/**
 * Capped exponential backoff with jitter for reconnecting. Jitter keeps a group whose relay
 * restarted from reconnecting in lock step; the cap keeps a long outage from growing the wait
 * past what a person would tolerate.
 */
export interface BackoffOptions {
  /** First delay (before jitter). */
  initialMs: number;
  /** No delay exceeds this. */
  maxMs: number;
  /** Growth per failed attempt. */
  multiplier: number;
  /** Fraction of the delay that is randomised: delay * (1 - jitter * random()). 0 = none, 1 = full. */
  jitter: number;
}

export const DEFAULT_BACKOFF: BackoffOptions = { initialMs: 250, maxMs: 10_000, multiplier: 2, jitter: 0.5 };

export class Backoff {
  private failures = 0;

  constructor(
    private readonly options: BackoffOptions = DEFAULT_BACKOFF,
    private readonly random: () => number = Math.random,
  ) {
    if (!(options.initialMs > 0) || !(options.maxMs >= options.initialMs) || !(options.multiplier >= 1)) {
      throw new RangeError('backoff needs 0 < initialMs <= maxMs and multiplier >= 1');
    }
    if (!(options.jitter >= 0 && options.jitter <= 1)) throw new RangeError('jitter must be within 0..1');
  }

  /** The wait before the next attempt; each call counts one more failure. */
  next(): number {
    const ceiling = Math.min(
      this.options.maxMs,
      this.options.initialMs * this.options.multiplier ** Math.min(this.failures, 64),
    );
    this.failures++;
    return Math.max(1, Math.round(ceiling * (1 - this.options.jitter * this.random())));
  }

  /** After a session got as far as authenticating: the next failure starts from initialMs again. */
  reset(): void {
    this.failures = 0;
  }

  get attempts(): number {
    return this.failures;
  }
}
