/**
 * The pending pool: connections that have not logged in yet (TCP accepted; TLS handshake, HELLO or
 * CONNECTION not done). Pure policy, no I/O: the server asks it on every accept and acts.
 *
 * Why a pool of its own. Logged-in members have their own slots (maxConnections); if pending
 * connections shared them, anyone able to open TCP connections could hold every slot by never
 * finishing the handshake. So pending connections get a smaller pool with its own rules:
 *
 * - at most `maxPendingPerAddress` from one address; more are closed at once, before any TLS work;
 * - the normal login deadline (`authTimeoutMs`) while the pool is at most half full, and a short
 *   one (`pressureAuthTimeoutMs`) for connections admitted while it is more than half full;
 * - when the pool is full, a new connection is still admitted and one pending connection is
 *   evicted for it: one still in its TLS handshake if there is any (a connection whose link
 *   authenticated a member certificate is evicted last: no flooder without a member's key gets
 *   there), from the address holding the most such connections, the oldest of them. A flood from
 *   fewer addresses than the pool holds therefore evicts its own connections, and one from more
 *   addresses evicts the oldest: a member who completes the TLS handshake before the flood has
 *   opened `maxPending` new connections keeps its slot. A flood delays logins, never locks them out.
 */

export interface PendingLimits {
  maxPending: number;
  maxPendingPerAddress: number;
  authTimeoutMs: number;
  pressureAuthTimeoutMs: number;
}

export type PendingDecision<K> =
  | {
      admitted: true;
      /** Time the connection has to log in. */
      deadlineMs: number;
      /** True when the short deadline applies (the pool is more than half full). */
      underPressure: boolean;
      /** A pending connection to close now to make room (already out of the pool). */
      evict?: K;
    }
  | { admitted: false; reason: 'per-address' };

export class PendingPool<K> {
  /** Pending connections in arrival order (Map keeps insertion order: first = oldest). */
  private readonly entries = new Map<K, { address: string; linked: boolean }>();
  private readonly perAddress = new Map<string, number>();

  constructor(private readonly limits: PendingLimits) {}

  get size(): number {
    return this.entries.size;
  }

  countFrom(address: string): number {
    return this.perAddress.get(address) ?? 0;
  }

  has(key: K): boolean {
    return this.entries.has(key);
  }

  /** A new connection `key` from `address`. */
  admit(key: K, address: string): PendingDecision<K> {
    if (this.entries.has(key)) throw new Error('connection is already pending');
    const fromAddress = this.countFrom(address);
    if (fromAddress >= this.limits.maxPendingPerAddress) return { admitted: false, reason: 'per-address' };
    let evict: K | undefined;
    if (this.entries.size >= this.limits.maxPending) {
      evict = this.victim();
      if (evict !== undefined) this.remove(evict);
    }
    this.entries.set(key, { address, linked: false });
    this.perAddress.set(address, this.countFrom(address) + 1);
    const underPressure = this.entries.size > this.limits.maxPending / 2;
    return {
      admitted: true,
      deadlineMs: underPressure
        ? Math.min(this.limits.pressureAuthTimeoutMs, this.limits.authTimeoutMs)
        : this.limits.authTimeoutMs,
      underPressure,
      ...(evict !== undefined ? { evict } : {}),
    };
  }

  /** The connection's TLS link authenticated a member certificate: it is evicted last. */
  markLinked(key: K): void {
    const entry = this.entries.get(key);
    if (entry) entry.linked = true;
  }

  /** The connection logged in or closed: it leaves the pool (no-op if it was not in it). */
  remove(key: K): void {
    const address = this.entries.get(key)?.address;
    if (address === undefined) return;
    this.entries.delete(key);
    const n = this.countFrom(address) - 1;
    if (n > 0) this.perAddress.set(address, n);
    else this.perAddress.delete(address);
  }

  /**
   * The connection to evict: the oldest unlinked one of the address with the most unlinked
   * connections; if every pending connection is linked, the oldest. One pass to count, one to pick
   * (the pool is bounded, see limits.ts).
   */
  private victim(): K | undefined {
    const unlinked = new Map<string, number>();
    let most = 0;
    for (const { address, linked } of this.entries.values()) {
      if (linked) continue;
      const n = (unlinked.get(address) ?? 0) + 1;
      unlinked.set(address, n);
      most = Math.max(most, n);
    }
    for (const [key, { address, linked }] of this.entries) {
      if (most === 0 || (!linked && unlinked.get(address) === most)) return key;
    }
    return undefined;
  }
}
