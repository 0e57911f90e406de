/**
 * Failed-login budgets: token buckets per member identity and per remote address. Pure policy
 * (no I/O, the clock is injected); the server asks it and acts.
 *
 * Why two kinds. After the TLS handshake every login attempt carries a certificate the peer proved
 * it holds, so a failed CONNECTION is charged to that identity: an insider failing on purpose only
 * spends his own budget, and a member behind the same address (a NAT, a shared host, 127.0.0.1)
 * is not refused for it. What no member identity answers for — handshakes that fail, link
 * certificates the group refuses — is charged to the remote address, which caps what unknown
 * peers can cost.
 *
 * A spent budget never ends a client's retrying: it tells the client when to come back
 * (`retryAfterMs`), rounded up to whole seconds so the relay signs each distinct ERROR once and
 * reuses it from its cache.
 */
import { TokenBucket } from './limits.js';

export interface LoginBudgetLimits {
  identityAuthFailuresPerMinute: number;
  addressAuthFailuresPerMinute: number;
}

/** Entries kept per table; past it, full buckets go first, then the oldest entries. */
export const BUDGET_TABLE_ENTRIES = 10_000;

/** Retry times are whole seconds (see above). */
export function retryAfter(ms: number): number {
  return ms <= 0 ? 0 : Math.ceil(ms / 1000) * 1000;
}

class BudgetTable {
  private readonly buckets = new Map<string, TokenBucket>();

  constructor(
    private readonly perMinute: number,
    private readonly now: () => number,
    private readonly maxEntries: number,
  ) {}

  /** Milliseconds until `key` may fail once more (0 = now). */
  wait(key: string): number {
    return this.buckets.get(key)?.msUntil(1) ?? 0;
  }

  /** Charges one failure; false if the budget was already spent (nothing is charged then). */
  charge(key: string): boolean {
    let bucket = this.buckets.get(key);
    if (!bucket) {
      bucket = new TokenBucket(this.perMinute / 60, this.perMinute, this.now);
      this.buckets.set(key, bucket);
      if (this.buckets.size > this.maxEntries) this.sweep(true);
    }
    return bucket.tryTake(1);
  }

  /** Forgets refilled buckets; `force` also drops the oldest until the table is half empty. */
  sweep(force = false): void {
    for (const [key, bucket] of this.buckets) if (bucket.full) this.buckets.delete(key);
    if (!force) return;
    for (const key of this.buckets.keys()) {
      if (this.buckets.size <= this.maxEntries / 2) break;
      this.buckets.delete(key);
    }
  }

  get size(): number {
    return this.buckets.size;
  }
}

export class LoginBudgets {
  private readonly identities: BudgetTable;
  private readonly addresses: BudgetTable;

  constructor(
    limits: LoginBudgetLimits,
    now: () => number = () => performance.now(),
    maxEntries = BUDGET_TABLE_ENTRIES,
  ) {
    this.identities = new BudgetTable(limits.identityAuthFailuresPerMinute, now, maxEntries);
    this.addresses = new BudgetTable(limits.addressAuthFailuresPerMinute, now, maxEntries);
  }

  /** The retry time for `identity` (a certificate fingerprint), 0 if it may log in now. */
  identityRetryAfter(identity: string): number {
    return retryAfter(this.identities.wait(identity));
  }

  /** The retry time for `address`, 0 if it may connect now. */
  addressRetryAfter(address: string): number {
    return retryAfter(this.addresses.wait(address));
  }

  /**
   * A failed CONNECTION by an authenticated identity. False if its budget was already spent: the
   * relay then answers RateLimited (with identityRetryAfter) instead of AuthFailed.
   */
  identityFailed(identity: string): boolean {
    return this.identities.charge(identity);
  }

  /** A failure that no member identity answers for (failed handshake, refused link certificate). */
  addressFailed(address: string): void {
    this.addresses.charge(address);
  }

  /** Drops state that is no longer worth keeping (buckets that refilled). */
  sweep(): void {
    this.identities.sweep();
    this.addresses.sweep();
  }

  get entries(): { identities: number; addresses: number } {
    return { identities: this.identities.size, addresses: this.addresses.size };
  }
}
