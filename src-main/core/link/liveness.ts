/**
 * Heartbeats on the link, as a state machine without I/O: both ends of a connection run one. A
 * peer that has sent nothing for `timeoutMs` is gone (a frozen relay, a laptop that vanished with
 * its socket open: TCP alone notices neither for minutes); after `intervalMs` without anything
 * sent, a HEARTBEAT goes out so that the other side can tell the same of us.
 *
 * The driver calls `received` / `sent` as bytes move and `tick` on a timer; `tick` says what to do.
 */

export interface LivenessOptions {
  /** Send a heartbeat after this long without sending anything. */
  intervalMs: number;
  /** The peer is gone after this long without receiving anything. */
  timeoutMs: number;
}

/** 5 s / 15 s: a silent peer is noticed within 20 s even with a tick every few seconds. */
export const DEFAULT_LIVENESS: Readonly<LivenessOptions> = Object.freeze({
  intervalMs: 5_000,
  timeoutMs: 15_000,
});

export type LivenessVerdict =
  | { kind: 'ok' }
  | { kind: 'send-heartbeat' }
  /** Nothing arrived for `silentMs` (≥ timeoutMs): close the connection. */
  | { kind: 'peer-gone'; silentMs: number };

/** How often a driver should tick: often enough that neither deadline is overshot by much. */
export function livenessTickMs(options: LivenessOptions): number {
  return Math.max(10, Math.min(options.intervalMs, options.timeoutMs - options.intervalMs) / 2);
}

/** When each side last moved bytes. */
export interface LivenessClock {
  received: number;
  sent: number;
}

/**
 * The verdict at `now`, as a pure function: the Liveness class below (the relay's side) and the
 * client's state machine (client/engine-state.ts, which keeps the clock in its state) both ask it.
 * After `send-heartbeat` the caller counts a send at `now`.
 */
export function livenessVerdict(
  options: LivenessOptions,
  clock: LivenessClock,
  now: number,
): LivenessVerdict {
  const silent = now - clock.received;
  if (silent >= options.timeoutMs) return { kind: 'peer-gone', silentMs: silent };
  if (now - clock.sent >= options.intervalMs) return { kind: 'send-heartbeat' };
  return { kind: 'ok' };
}

export class Liveness {
  private lastReceived: number;
  private lastSent: number;

  constructor(
    readonly options: LivenessOptions,
    now: number,
  ) {
    if (!(options.intervalMs > 0 && options.timeoutMs > options.intervalMs)) {
      throw new RangeError('heartbeat timeout must be longer than the heartbeat interval');
    }
    this.lastReceived = now;
    this.lastSent = now;
  }

  received(now: number): void {
    this.lastReceived = now;
  }

  sent(now: number): void {
    this.lastSent = now;
  }

  tick(now: number): LivenessVerdict {
    const verdict = livenessVerdict(this.options, { received: this.lastReceived, sent: this.lastSent }, now);
    if (verdict.kind === 'send-heartbeat') this.lastSent = now;
    return verdict;
  }

  /** How often a driver should tick. */
  get tickMs(): number {
    return livenessTickMs(this.options);
  }
}
