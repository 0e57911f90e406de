/**
 * The relay's resource limits and the token bucket behind its rate limits. Every limit has a
 * default (documented in docs/relay.md) and a CLI flag; 0 disables the rate limits.
 */

export interface RelayLimits {
  /**
   * Logged-in members at one time (the name predates the pending pool: connections that have not
   * logged in are counted in `maxPending` instead). One more login gets ERROR ServerFull.
   */
  maxConnections: number;
  /**
   * Connections that have not logged in yet (TLS handshake, HELLO, CONNECTION), all addresses
   * together. When the pool is full the oldest pending connection of the address holding the most
   * is closed to admit the new one, so a flood delays logins but never locks them out.
   */
  maxPending: number;
  /** Pending connections from one remote address; more are closed at once, before any TLS work. */
  maxPendingPerAddress: number;
  /** Login deadline for connections admitted while the pending pool is more than half full. */
  pressureAuthTimeoutMs: number;
  /** Largest frame accepted from an authenticated member (bytes, without the length prefix). */
  maxFrameBytes: number;
  /** Largest frame accepted before authentication (a CONNECTION is a few KiB). */
  maxPreAuthFrameBytes: number;
  /** A connection that has not authenticated within this time gets ERROR AuthTimeout and is closed. */
  authTimeoutMs: number;
  /** Failed CONNECTION attempts one connection may make before it is closed. */
  maxAuthFailures: number;
  /**
   * Failed logins per minute (a token bucket) that no member identity answers for, per remote
   * address: TLS handshakes that fail and link certificates the group refuses. Once spent, new
   * connections from the address are closed before any TLS work until a token is back.
   */
  addressAuthFailuresPerMinute: number;
  /**
   * Failed CONNECTIONs per minute (a token bucket) per member identity, i.e. per certificate the
   * TLS link authenticated. Once spent, that identity's logins get ERROR RateLimited with the
   * time until it may try again; other identities, from any address, are not affected.
   */
  identityAuthFailuresPerMinute: number;
  /**
   * Refused frames (bad envelope, sender mismatch, unknown target, not allowed …) a connection may
   * accumulate before ERROR TooManyErrors; the count decays by one every `errorDecayMs`.
   */
  maxProtocolErrors: number;
  errorDecayMs: number;
  /** Sustained frames per second one connection may send (0 = unlimited), and the burst above it. */
  rateFramesPerSec: number;
  rateFrameBurst: number;
  /** Sustained bytes per second one connection may send (0 = unlimited), and the burst above it. */
  rateBytesPerSec: number;
  rateByteBurst: number;
  /** Rate-limit tokens a CERT_REQUEST costs (the relay signs its answer). */
  certRequestCost: number;
  /**
   * Bytes the relay may hold queued for one receiver (socket.writableLength, i.e. beyond what the
   * kernel has accepted). A receiver past it is disconnected at once with ERROR SlowConsumer.
   */
  maxOutboundBytes: number;
  /**
   * A receiver with output waiting that has not accepted a single byte for this long is a
   * stalled reader and is disconnected with ERROR SlowConsumer, whatever the amount.
   */
  stallTimeoutMs: number;
  /** PRESENCE is broadcast at most once per interval; changes within it are coalesced. */
  presenceIntervalMs: number;
  /** How long a closing connection may take to flush its last frames before it is destroyed. */
  closeLingerMs: number;
  /** A member that was sent nothing for this long gets a HEARTBEAT (core/link/liveness.ts). */
  heartbeatIntervalMs: number;
  /**
   * A member that has sent nothing, not even a heartbeat, for this long is gone (its host vanished
   * with the socket open) and is dropped.
   */
  heartbeatTimeoutMs: number;
  /**
   * The log (relays with a store, DESIGN §10.3): frames stored longer ago than this many days are
   * dropped, oldest first, at start and then hourly.
   */
  retentionDays: number;
  /**
   * The log's frame bytes are kept under this many MiB (1 MiB = 2^20 bytes; the file is ~1.3×
   * that): the oldest frames are dropped at start, hourly, and whenever the log grows past it.
   */
  retentionMb: number;
  /**
   * A member that logs in while the relay holds no roster gets a non-fatal ERROR NoRoster and this
   * long to upload one (the only frame accepted meanwhile); then a fatal NoRoster.
   */
  rosterWindowMs: number;
}

export const DEFAULT_RELAY_LIMITS: Readonly<RelayLimits> = Object.freeze({
  maxConnections: 256,
  maxPending: 128,
  maxPendingPerAddress: 8,
  pressureAuthTimeoutMs: 2000,
  maxFrameBytes: 1024 * 1024,
  maxPreAuthFrameBytes: 16 * 1024,
  authTimeoutMs: 10_000,
  maxAuthFailures: 3,
  addressAuthFailuresPerMinute: 30,
  identityAuthFailuresPerMinute: 10,
  maxProtocolErrors: 10,
  errorDecayMs: 60_000,
  rateFramesPerSec: 2000,
  rateFrameBurst: 4000,
  rateBytesPerSec: 4 * 1024 * 1024,
  rateByteBurst: 8 * 1024 * 1024,
  certRequestCost: 50,
  maxOutboundBytes: 16 * 1024 * 1024,
  stallTimeoutMs: 10_000,
  presenceIntervalMs: 50,
  closeLingerMs: 2000,
  heartbeatIntervalMs: 5_000,
  heartbeatTimeoutMs: 15_000,
  retentionDays: 30,
  retentionMb: 1024,
  rosterWindowMs: 10_000,
});

const BOUNDS: Record<keyof RelayLimits, [min: number, max: number]> = {
  maxConnections: [1, 1_000_000],
  // The pool is scanned when it is full (eviction): keep it small enough for that to stay cheap.
  maxPending: [1, 10_000],
  maxPendingPerAddress: [1, 10_000],
  pressureAuthTimeoutMs: [100, 3_600_000],
  maxFrameBytes: [1024, 64 * 1024 * 1024],
  maxPreAuthFrameBytes: [1024, 1024 * 1024],
  authTimeoutMs: [100, 3_600_000],
  maxAuthFailures: [1, 1000],
  addressAuthFailuresPerMinute: [1, 1_000_000],
  identityAuthFailuresPerMinute: [1, 1_000_000],
  maxProtocolErrors: [1, 1_000_000],
  errorDecayMs: [1, 86_400_000],
  rateFramesPerSec: [0, 100_000_000],
  rateFrameBurst: [1, 100_000_000],
  rateBytesPerSec: [0, 1024 ** 4],
  rateByteBurst: [1, 1024 ** 4],
  certRequestCost: [1, 1_000_000],
  maxOutboundBytes: [64 * 1024, 1024 ** 4],
  stallTimeoutMs: [100, 3_600_000],
  presenceIntervalMs: [0, 60_000],
  closeLingerMs: [0, 60_000],
  heartbeatIntervalMs: [50, 600_000],
  heartbeatTimeoutMs: [100, 3_600_000],
  retentionDays: [1, 36_500],
  retentionMb: [1, 1024 * 1024],
  rosterWindowMs: [100, 3_600_000],
};

export const LIMIT_NAMES = Object.keys(BOUNDS) as (keyof RelayLimits)[];

/** The range a limit accepts (inclusive), for flag parsers that name their own flag in errors. */
export function limitBounds(name: keyof RelayLimits): readonly [min: number, max: number] {
  return BOUNDS[name];
}

/** Defaults overlaid with `overrides`; throws a RangeError naming the first limit out of range. */
export function resolveLimits(overrides: Partial<RelayLimits> = {}): RelayLimits {
  const limits: RelayLimits = { ...DEFAULT_RELAY_LIMITS };
  for (const name of LIMIT_NAMES) {
    const value = overrides[name];
    if (value === undefined) continue;
    const [min, max] = BOUNDS[name];
    if (typeof value !== 'number' || !Number.isInteger(value) || value < min || value > max) {
      throw new RangeError(`relay limit ${name} must be an integer from ${min} to ${max}`);
    }
    limits[name] = value;
  }
  if (limits.maxPreAuthFrameBytes > limits.maxFrameBytes) {
    throw new RangeError('relay limit maxPreAuthFrameBytes must not exceed maxFrameBytes');
  }
  if (limits.heartbeatTimeoutMs <= limits.heartbeatIntervalMs) {
    throw new RangeError('relay limit heartbeatTimeoutMs must be longer than heartbeatIntervalMs');
  }
  if (limits.maxPendingPerAddress > limits.maxPending) {
    throw new RangeError('relay limit maxPendingPerAddress must not exceed maxPending');
  }
  if (limits.rateBytesPerSec > 0 && limits.rateByteBurst < limits.maxFrameBytes) {
    // A frame larger than the whole bucket would still pass (the bucket goes into debt), so this
    // only keeps the arithmetic honest: the burst should hold at least one largest frame.
    limits.rateByteBurst = limits.maxFrameBytes;
  }
  return limits;
}

/**
 * A token bucket that may go into debt: a frame already read is always processed, and the
 * connection then waits (its socket paused) until the bucket is back above zero.
 */
export class TokenBucket {
  private tokens: number;
  private last: number;

  constructor(
    /** Tokens per second; 0 = unlimited. */
    readonly rate: number,
    readonly burst: number,
    private readonly now: () => number = () => performance.now(),
  ) {
    this.tokens = burst;
    this.last = now();
  }

  get unlimited(): boolean {
    return this.rate === 0;
  }

  private refill(t = this.now()): void {
    this.tokens = Math.min(this.burst, this.tokens + ((t - this.last) * this.rate) / 1000);
    this.last = t;
  }

  /** Takes `n` tokens; returns 0 if the bucket is still non-negative, else the ms until it is. */
  take(n: number, now?: number): number {
    if (this.rate === 0) return 0;
    this.refill(now);
    this.tokens -= n;
    return this.tokens >= 0 ? 0 : Math.ceil((-this.tokens * 1000) / this.rate);
  }

  /** Takes one token only if one is available (for budgets that refuse rather than wait). */
  tryTake(n = 1): boolean {
    if (this.rate === 0) return true;
    this.refill();
    if (this.tokens < n) return false;
    this.tokens -= n;
    return true;
  }

  /** Milliseconds until `n` tokens are available (0 if they are now). */
  msUntil(n = 1): number {
    if (this.rate === 0) return 0;
    this.refill();
    return this.tokens >= n ? 0 : Math.ceil(((n - this.tokens) * 1000) / this.rate);
  }

  /** Tokens available now. */
  get available(): number {
    if (this.rate === 0) return Number.POSITIVE_INFINITY;
    this.refill();
    return this.tokens;
  }

  /** True once the bucket has refilled completely (the state is no longer worth keeping). */
  get full(): boolean {
    if (this.rate === 0) return true;
    this.refill();
    return this.tokens >= this.burst;
  }
}
