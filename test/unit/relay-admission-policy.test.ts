/**
 * The relay's admission policy as pure modules, with a fake clock: the pending pool, the
 * failed-login budgets and the pressure report.
 */
import { describe, expect, it } from 'vitest';
import { resolveLimits, TokenBucket } from '../../src-main/relay/limits.js';
import { LoginBudgets, retryAfter } from '../../src-main/relay/login-budgets.js';
import { PendingPool, type PendingDecision } from '../../src-main/relay/pending-pool.js';
import { PressureReport } from '../../src-main/relay/pressure-report.js';

const POOL = { maxPending: 8, maxPendingPerAddress: 3, authTimeoutMs: 10_000, pressureAuthTimeoutMs: 2000 };

function admitted(d: PendingDecision<number>): Extract<PendingDecision<number>, { admitted: true }> {
  if (!d.admitted) throw new Error(`refused: ${d.reason}`);
  return d;
}

describe('pending pool', () => {
  it('caps each address and frees the slot when a connection leaves', () => {
    const pool = new PendingPool<number>(POOL);
    for (let i = 0; i < 3; i++) admitted(pool.admit(i, '10.0.0.1'));
    expect(pool.admit(3, '10.0.0.1')).toEqual({ admitted: false, reason: 'per-address' });
    admitted(pool.admit(4, '10.0.0.2'));
    pool.remove(1);
    pool.remove(1);
    expect(pool.countFrom('10.0.0.1')).toBe(2);
    admitted(pool.admit(5, '10.0.0.1'));
    expect(pool.size).toBe(4);
  });

  it('gives the short deadline once the pool is more than half full', () => {
    const pool = new PendingPool<number>(POOL);
    const deadlines = ['a', 'b', 'c', 'd', 'e', 'f'].map((a, i) => admitted(pool.admit(i, a)).deadlineMs);
    expect(deadlines).toEqual([10_000, 10_000, 10_000, 10_000, 2000, 2000]);
  });

  it('when full, evicts the oldest connection of the address holding the most', () => {
    const pool = new PendingPool<number>(POOL);
    admitted(pool.admit(0, 'member'));
    for (let i = 1; i <= 3; i++) admitted(pool.admit(i, 'flood-a'));
    for (let i = 4; i <= 5; i++) admitted(pool.admit(i, 'flood-b'));
    for (let i = 6; i <= 7; i++) admitted(pool.admit(i, 'flood-c'));
    expect(admitted(pool.admit(8, 'flood-d')).evict).toBe(1);
    // flood-a, flood-b and flood-c now hold 2 each: the oldest of them goes, never the member's.
    expect(admitted(pool.admit(9, 'flood-d')).evict).toBe(2);
    // flood-a is down to 1; flood-b, flood-c and flood-d hold 2: flood-b's oldest.
    expect(admitted(pool.admit(10, 'flood-e')).evict).toBe(4);
    expect(pool.has(0)).toBe(true);
    expect(pool.size).toBe(POOL.maxPending);
  });

  it('evicts a connection whose link authenticated a member certificate last', () => {
    const pool = new PendingPool<number>(POOL);
    for (let i = 0; i < 8; i++) admitted(pool.admit(i, `addr-${i}`));
    pool.markLinked(0);
    pool.markLinked(1);
    // Every address holds one: the oldest unlinked goes, not the two older linked ones.
    expect(admitted(pool.admit(8, 'addr-8')).evict).toBe(2);
    for (let i = 2; i < 9; i++) pool.markLinked(i);
    expect(admitted(pool.admit(9, 'addr-9')).evict).toBe(0);
  });

  it('admits a flood of single connections from many addresses by evicting the oldest', () => {
    const pool = new PendingPool<number>({ ...POOL, maxPending: 128, maxPendingPerAddress: 8 });
    let evicted = 0;
    for (let i = 0; i < 10_000; i++) if (admitted(pool.admit(i, `a${i}`)).evict !== undefined) evicted++;
    expect(pool.size).toBe(128);
    expect(evicted).toBe(10_000 - 128);
  });
});

describe('login budgets', () => {
  const limits = { identityAuthFailuresPerMinute: 6, addressAuthFailuresPerMinute: 3 };

  it("an identity's failures spend only its own budget, and the retry time is whole seconds", () => {
    let t = 0;
    const budgets = new LoginBudgets(limits, () => t);
    for (let i = 0; i < 6; i++) expect(budgets.identityFailed('dave')).toBe(true);
    expect(budgets.identityFailed('dave')).toBe(false);
    expect(budgets.identityRetryAfter('dave')).toBe(10_000);
    expect(budgets.identityRetryAfter('bob')).toBe(0);
    expect(budgets.addressRetryAfter('127.0.0.1')).toBe(0);
    t = 4_500;
    expect(budgets.identityRetryAfter('dave')).toBe(6_000);
    t = 10_000;
    expect(budgets.identityRetryAfter('dave')).toBe(0);
    expect(budgets.identityFailed('dave')).toBe(true);
    expect(budgets.identityFailed('dave')).toBe(false);
  });

  it('charges failures without an identity to the address', () => {
    let t = 0;
    const budgets = new LoginBudgets(limits, () => t);
    for (let i = 0; i < 3; i++) budgets.addressFailed('10.0.0.9');
    expect(budgets.addressRetryAfter('10.0.0.9')).toBe(20_000);
    expect(budgets.addressRetryAfter('10.0.0.8')).toBe(0);
    t = 20_000;
    expect(budgets.addressRetryAfter('10.0.0.9')).toBe(0);
  });

  it('keeps its tables bounded and forgets refilled buckets', () => {
    let t = 0;
    const budgets = new LoginBudgets(limits, () => t, 100);
    for (let i = 0; i < 1000; i++) budgets.addressFailed(`10.0.${i >> 8}.${i & 255}`);
    expect(budgets.entries.addresses).toBeLessThanOrEqual(100);
    t = 60_000;
    budgets.sweep();
    expect(budgets.entries).toEqual({ identities: 0, addresses: 0 });
  });

  it('rounds retry times up to whole seconds', () => {
    expect([0, -5, 1, 999, 1000, 1001].map(retryAfter)).toEqual([0, 0, 1000, 1000, 1000, 2000]);
  });
});

describe('token bucket: msUntil', () => {
  it('says how long until n tokens are there', () => {
    let t = 0;
    const b = new TokenBucket(2, 2, () => t);
    expect(b.msUntil(1)).toBe(0);
    expect(b.tryTake(2)).toBe(true);
    expect(b.msUntil(1)).toBe(500);
    t = 250;
    expect(b.msUntil(1)).toBe(250);
    expect(new TokenBucket(0, 1, () => t).msUntil(5)).toBe(0);
  });
});

describe('pressure report', () => {
  it('reports the first event at once, then at most once per interval', () => {
    let t = 0;
    const r = new PressureReport(10_000, () => t);
    expect(r.note('evicted')).toEqual({
      evicted: 1,
      refusedPerAddress: 0,
      refusedAddressBudget: 0,
      shortDeadline: 0,
    });
    t = 5_000;
    expect(r.note('evicted')).toBeUndefined();
    expect(r.note('refusedPerAddress')).toBeUndefined();
    expect(r.flush()).toBeUndefined();
    t = 10_000;
    expect(r.flush()).toEqual({
      evicted: 1,
      refusedPerAddress: 1,
      refusedAddressBudget: 0,
      shortDeadline: 0,
    });
    t = 30_000;
    expect(r.flush()).toBeUndefined();
  });
});

describe('relay limits', () => {
  it('has the admission defaults and refuses a per-address cap above the pool', () => {
    const l = resolveLimits();
    expect([l.maxPending, l.maxPendingPerAddress, l.pressureAuthTimeoutMs]).toEqual([128, 8, 2000]);
    expect([l.identityAuthFailuresPerMinute, l.addressAuthFailuresPerMinute]).toEqual([10, 30]);
    expect(() => resolveLimits({ maxPending: 4, maxPendingPerAddress: 5 })).toThrow(/maxPendingPerAddress/);
  });
});
