/**
 * Which epoch numbers a member lets a frame move it to, and how often a member may ask it to
 * re-key. Pure state with an injected clock: the key-establishment machine asks, the tests drive
 * time by hand (test/unit/client-epoch-policy.test.ts).
 */

/**
 * How far above the highest epoch it has seen a member with history lets one frame move it.
 * Epochs end at 2^53 - 1 and every re-key needs one more: without a bound, one frame for the last
 * epoch would leave the group unable to ever re-key again. Legitimate jumps (re-keys missed during
 * an outage) are far smaller.
 */
export const MAX_EPOCH_STEP = 2 ** 20;

/**
 * No frame moves any member above this, not even a member without history (a newcomer, who must
 * follow a group however old it is). Far below 2^53 - 1: a member pushed here by one frame still
 * has 31 × 2^48 re-keys left, and walking a group here 2^20 at a time takes 2^28 rounds.
 */
export const EPOCH_CEILING = 2 ** 48;

/** REKEY_REQUEST `requested` / `key-missing` honoured at most this often per sender. */
export const REKEY_REQUEST_INTERVAL_MS = 10_000;

/**
 * The highest epoch a frame may move this member to. `history` is the highest epoch it has held a
 * key for or stored (0 = a newcomer); `seen` the highest it has seen anywhere.
 */
export function epochLimit(history: number, seen: number): number {
  if (history === 0) return EPOCH_CEILING;
  return Math.min(EPOCH_CEILING, Math.max(history, seen) + MAX_EPOCH_STEP);
}

/** Per sender: when its last re-key request was honoured. */
export class RekeyRateLimiter {
  private readonly last = new Map<string, number>();

  constructor(
    private readonly now: () => number,
    private readonly intervalMs = REKEY_REQUEST_INTERVAL_MS,
  ) {}

  /** True (and counted) if `sender` may have a request honoured now. */
  allow(sender: string): boolean {
    const t = this.now();
    const prev = this.last.get(sender);
    if (prev !== undefined && t - prev < this.intervalMs) return false;
    this.last.set(sender, t);
    // Senders are group members, so this stays small; forget the ones that could ask again anyway.
    if (this.last.size > 256) {
      for (const [s, at] of this.last) if (t - at >= this.intervalMs) this.last.delete(s);
    }
    return true;
  }

  /** Time until `sender` may be honoured again (0 = now). */
  waitMs(sender: string): number {
    const prev = this.last.get(sender);
    return prev === undefined ? 0 : Math.max(0, this.intervalMs - (this.now() - prev));
  }
}

/** Rotation (DESIGN.md §10.2): a new epoch once the current one is this old… */
export const DEFAULT_ROTATION_PERIOD_MS = 24 * 60 * 60 * 1000;
/** …or has carried this many messages (sent and received, as counted by the member checking). */
export const DEFAULT_ROTATION_MAX_MESSAGES = 100_000;

export interface RotationPolicy {
  periodMs: number;
  maxMessages: number;
}

/** What rotation looks at of the current key. */
export interface KeyAge {
  establishedAt: number;
  messages: number;
}

/** Whether the current key is due for rotation at `now` (ms, the engine's injected clock). */
export function rotationDue(key: KeyAge, now: number, policy: RotationPolicy): boolean {
  return now - key.establishedAt >= policy.periodMs || key.messages >= policy.maxMessages;
}
