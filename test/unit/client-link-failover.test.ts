/**
 * Failover across several relay addresses (link-lifecycle.ts): which address each attempt goes to,
 * the backoff on the way, relays refused for their certificate, and one address as before.
 */
import fc from 'fast-check';
import { describe, expect, it } from 'vitest';
import { DEFAULT_BACKOFF } from '../../src-main/client/backoff.js';
import {
  INITIAL_LINK,
  nextRelay,
  stepLink,
  type LinkConfig,
  type LinkEffect,
  type LinkEvent,
  type LinkState,
} from '../../src-main/client/link-lifecycle.js';

const config = (relays: number): LinkConfig => ({
  backoff: { ...DEFAULT_BACKOFF, jitter: 0 },
  authTimeoutMs: 10_000,
  relays,
});

function run(cfg: LinkConfig, events: LinkEvent[], from: LinkState = INITIAL_LINK) {
  let state = from;
  const effects: LinkEffect[] = [];
  for (const e of events) {
    const step = stepLink(cfg, state, e);
    state = step.state;
    effects.push(...step.effects);
  }
  return { state, effects };
}

const closed = (reason = 'connection closed by the relay'): LinkEvent => ({
  type: 'closed',
  reason,
  random: 0,
});
const retry: LinkEvent = { type: 'retry-due' };
const login: LinkEvent = { type: 'logged-in' };
const opened = (effects: LinkEffect[]) => effects.flatMap((e) => (e.kind === 'open' ? [e.relay] : []));
const delays = (effects: LinkEffect[]) =>
  effects.flatMap((e) => (e.kind === 'show' && e.state === 'Reconnecting' ? [e.retryInMs] : []));
const refusedRelay = (reason = 'relay certificate refused'): LinkEvent => ({
  type: 'refused',
  reason,
  terminal: true,
  scope: 'relay',
});

describe('link failover across relay addresses', () => {
  it('stays on the relay that works; on loss goes to the next, wrapping around, with the usual backoff', () => {
    const { effects } = run(config(3), [
      { type: 'start' },
      login,
      closed(), // node 0 lost
      retry,
      closed('ECONNREFUSED'), // node 1 down too
      retry,
      login, // node 2 works
      closed(),
      retry,
    ]);
    expect(opened(effects)).toEqual([0, 1, 2, 0]);
    // A session that logged in resets the count: 250 after each loss, doubling while nothing answers.
    expect(delays(effects)).toEqual([250, 500, 250]);
    const shownRelays = effects.flatMap((e) =>
      e.kind === 'show' && e.state === 'Connecting' ? [e.relay] : [],
    );
    expect(shownRelays).toEqual([0, 1, 2, 0]);
  });

  it('one address: every attempt goes to it, as before', () => {
    const { effects } = run(config(1), [{ type: 'start' }, closed(), retry, login, closed(), retry]);
    expect(opened(effects)).toEqual([0, 0, 0]);
    const noCount = run({ backoff: config(1).backoff, authTimeoutMs: 10_000 }, [
      { type: 'start' },
      closed(),
      retry,
    ]);
    expect(opened(noCount.effects)).toEqual([0, 0]);
  });

  it('a relay refused for its certificate is skipped until the next login; all refused: Failed', () => {
    const cfg = config(3);
    const a = run(cfg, [{ type: 'start' }, refusedRelay('relay "x" is not listed'), closed(), retry]);
    expect(opened(a.effects)).toEqual([0, 1]);
    expect(a.state).toMatchObject({ phase: 'connecting', relay: 1, distrusted: [0] });

    // 1 refused as well, 2 unreachable: the next attempt skips 0 and 1 and goes to 2 again.
    const b = run(cfg, [refusedRelay(), closed(), retry, closed('ECONNREFUSED'), retry], a.state);
    expect(opened(b.effects)).toEqual([2, 2]);
    expect(b.state.phase).toBe('connecting');

    const c = run(cfg, [refusedRelay('relay "z" is not listed'), closed()], b.state);
    expect(c.state).toEqual({
      phase: 'failed',
      reason: 'every relay refused; last: relay "z" is not listed',
    });
    expect(c.effects.at(-1)).toEqual({
      kind: 'show',
      state: 'Failed',
      reason: 'every relay refused; last: relay "z" is not listed',
    });

    // A login in between forgives: the roster that refused may have been replaced by a newer one.
    const d = run(cfg, [{ type: 'start' }, refusedRelay(), closed(), retry, login], INITIAL_LINK);
    expect(d.state).toEqual({ phase: 'online', relay: 1, distrusted: [] });
  });

  it('with one address a refused relay certificate fails at once, as before', () => {
    const { state } = run(config(1), [{ type: 'start' }, refusedRelay('not the group'), closed()]);
    expect(state).toEqual({ phase: 'failed', reason: 'not the group' });
  });

  it('a refusal of who we are fails whatever the number of relays (every node holds the same roster)', () => {
    const refusedUs: LinkEvent = { type: 'refused', reason: 'Removed', terminal: true };
    const { state, effects } = run(config(3), [{ type: 'start' }, login, refusedUs, closed(), retry]);
    expect(state).toEqual({ phase: 'failed', reason: 'Removed' });
    expect(opened(effects)).toEqual([0]);
  });

  it('a node that refuses non-terminally (node health, shutting down) is left for the next', () => {
    const health: LinkEvent = { type: 'refused', reason: 'NodeUnhealthy', terminal: false };
    const { effects } = run(config(2), [{ type: 'start' }, health, closed(), retry, login]);
    expect(opened(effects)).toEqual([0, 1]);
  });

  it("a relay's retryAfterMs delays only a retry of that relay, not the move to the next", () => {
    const limited: LinkEvent = {
      type: 'refused',
      reason: 'RateLimited',
      terminal: false,
      retryAfterMs: 30_000,
    };
    expect(delays(run(config(2), [{ type: 'start' }, limited, closed()]).effects)).toEqual([250]);
    expect(delays(run(config(1), [{ type: 'start' }, limited, closed()]).effects)).toEqual([30_000]);
  });

  it('nextRelay: the next address not refused, wrapping; never one that is refused while another is not', () => {
    fc.assert(
      fc.property(fc.integer({ min: 1, max: 8 }), fc.nat(7), fc.array(fc.nat(7)), (count, f, d) => {
        const from = f % count;
        const distrusted = [...new Set(d.map((x) => x % count))];
        const next = nextRelay(count, from, distrusted);
        expect(next).toBeGreaterThanOrEqual(0);
        expect(next).toBeLessThan(count);
        const free = [...Array(count).keys()].filter((i) => !distrusted.includes(i));
        if (free.length > 0) expect(distrusted).not.toContain(next);
        if (free.some((i) => i !== from)) expect(next).not.toBe(from);
      }),
    );
  });

  it('over any sequence of events: attempts stay within the list and never go to a refused relay', () => {
    const event = fc.oneof(
      fc.constant<LinkEvent>({ type: 'start' }),
      fc.constant<LinkEvent>(login),
      fc.constant<LinkEvent>(refusedRelay()),
      fc.constant<LinkEvent>({ type: 'refused', reason: 'ShuttingDown', terminal: false }),
      fc.constant<LinkEvent>(closed()),
      fc.constant<LinkEvent>(retry),
      fc.constant<LinkEvent>({ type: 'stop', reason: 'stop' }),
      fc.constant<LinkEvent>({ type: 'left' }),
    );
    fc.assert(
      fc.property(fc.integer({ min: 1, max: 4 }), fc.array(event, { maxLength: 60 }), (count, events) => {
        const cfg = config(count);
        let state: LinkState = INITIAL_LINK;
        for (const e of events) {
          const before = state;
          const step = stepLink(cfg, state, e);
          state = step.state;
          for (const fx of step.effects) {
            if (fx.kind !== 'open') continue;
            expect(fx.relay).toBeGreaterThanOrEqual(0);
            expect(fx.relay).toBeLessThan(count);
            if (before.phase === 'waiting') expect(before.distrusted).not.toContain(fx.relay);
          }
        }
      }),
      { numRuns: 500 },
    );
  });
});
