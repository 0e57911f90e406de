/**
 * The link lifecycle (src-main/client/link-lifecycle.ts): the pure step function, scenario by
 * scenario and as a property over random event sequences.
 */
import fc from 'fast-check';
import { describe, expect, it } from 'vitest';
import { DEFAULT_BACKOFF } from '../../src-main/client/backoff.js';
import {
  backoffDelay,
  INITIAL_LINK,
  stepLink,
  type LinkConfig,
  type LinkEffect,
  type LinkEvent,
  type LinkState,
} from '../../src-main/client/link-lifecycle.js';

const config: LinkConfig = { backoff: { ...DEFAULT_BACKOFF, jitter: 0 }, authTimeoutMs: 10_000 };

function run(
  events: LinkEvent[],
  from: LinkState = INITIAL_LINK,
): { state: LinkState; effects: LinkEffect[] } {
  let state = from;
  const effects: LinkEffect[] = [];
  for (const e of events) {
    const step = stepLink(config, state, e);
    state = step.state;
    effects.push(...step.effects);
  }
  return { state, effects };
}

const closed = (reason = 'ECONNREFUSED'): LinkEvent => ({ type: 'closed', reason, random: 0 });
const shown = (effects: LinkEffect[]) =>
  effects.flatMap((e) => (e.kind === 'show' ? [[e.state, e.retryInMs ?? null]] : []));

describe('link lifecycle', () => {
  it('connects, arms the login timeout, and on login cancels it and starts the session', () => {
    const { state, effects } = run([{ type: 'start' }, { type: 'logged-in' }]);
    expect(state).toEqual({ phase: 'online', relay: 0, distrusted: [] });
    expect(effects).toEqual([
      { kind: 'show', state: 'Connecting', relay: 0 },
      { kind: 'open', relay: 0 },
      { kind: 'arm', timer: 'auth', ms: 10_000 },
      { kind: 'cancel', timer: 'auth' },
      { kind: 'session-up' },
    ]);
  });

  it('backs off 250, 500, 1000 … 10000 ms while the relay is unreachable, and from 250 again after a login', () => {
    const events: LinkEvent[] = [{ type: 'start' }];
    for (let i = 0; i < 8; i++) events.push(closed(), { type: 'retry-due' });
    events.push({ type: 'logged-in' }, closed('connection closed by the relay'));
    const delays = shown(run(events).effects)
      .filter(([s]) => s === 'Reconnecting')
      .map(([, ms]) => ms);
    expect(delays).toEqual([250, 500, 1000, 2000, 4000, 8000, 10_000, 10_000, 250]);
  });

  it('waits at least what the relay asked (RateLimited), however short the backoff', () => {
    const { state } = run([
      { type: 'start' },
      { type: 'refused', reason: 'RateLimited', terminal: false, retryAfterMs: 30_000 },
      closed('rate limited'),
    ]);
    expect(state).toMatchObject({ phase: 'waiting', retryInMs: 30_000 });
  });

  it('a terminal refusal fails the link when the connection closes, and nothing brings it back', () => {
    const { state, effects } = run([
      { type: 'start' },
      { type: 'refused', reason: 'Removed: carol was removed from this group', terminal: true },
      closed(),
      { type: 'retry-due' },
      { type: 'start' },
      { type: 'stop', reason: 'leaving' },
    ]);
    expect(state).toEqual({ phase: 'failed', reason: 'Removed: carol was removed from this group' });
    expect(effects.filter((e) => e.kind === 'open')).toHaveLength(1);
    expect(effects.some((e) => e.kind === 'arm' && e.timer === 'retry')).toBe(false);
    expect(shown(effects).at(-1)).toEqual(['Failed', null]);
  });

  it('a login that does not finish in time closes the connection, and that close backs off', () => {
    const { state, effects } = run([{ type: 'start' }, { type: 'auth-timeout' }, closed('login timeout')]);
    expect(effects).toContainEqual({
      kind: 'close',
      reason: 'the relay did not complete the login within 10000 ms',
    });
    expect(state).toMatchObject({ phase: 'waiting', failures: 1 });
  });

  it('stop: online says goodbye first, connecting closes at once, waiting cancels its timer', () => {
    const online = run([{ type: 'start' }, { type: 'logged-in' }, { type: 'stop', reason: 'leaving' }]);
    expect(online.state).toEqual({ phase: 'leaving', reason: 'leaving' });
    expect(online.effects.at(-1)).toEqual({ kind: 'say-goodbye', reason: 'leaving' });
    const left = run([closed(), { type: 'left' }], online.state);
    expect(left.state).toEqual({ phase: 'stopped', reason: 'leaving' });
    expect(left.effects).toEqual([
      { kind: 'session-down' },
      { kind: 'show', state: 'Disconnected', reason: 'leaving' },
    ]);

    const connecting = run([{ type: 'start' }, { type: 'stop', reason: 'bye' }]);
    expect(connecting.effects.slice(3)).toEqual([
      { kind: 'cancel', timer: 'auth' },
      { kind: 'close', reason: 'stopped' },
      { kind: 'session-down' },
      { kind: 'show', state: 'Disconnected', reason: 'bye' },
    ]);
    const waiting = run([{ type: 'start' }, closed(), { type: 'stop', reason: 'bye' }]);
    expect(waiting.effects.slice(-2)).toEqual([
      { kind: 'cancel', timer: 'retry' },
      { kind: 'show', state: 'Disconnected', reason: 'bye' },
    ]);
    // A stopped link starts again from scratch.
    expect(run([{ type: 'start' }], waiting.state).state).toEqual({
      phase: 'connecting',
      failures: 0,
      relay: 0,
      distrusted: [],
    });
  });

  it('backoffDelay: jitter takes at most its fraction off, never below 1 ms', () => {
    fc.assert(
      fc.property(fc.nat(100), fc.double({ min: 0, max: 0.999999, noNaN: true }), (failures, random) => {
        const d = backoffDelay(DEFAULT_BACKOFF, failures, random);
        const ceiling = Math.min(10_000, 250 * 2 ** Math.min(failures, 64));
        expect(d).toBeGreaterThanOrEqual(Math.max(1, Math.round(ceiling * 0.5)));
        expect(d).toBeLessThanOrEqual(ceiling);
      }),
    );
  });

  it('over any sequence of events: one connection at a time, timers only where they belong', () => {
    const event = fc.oneof(
      fc.constant<LinkEvent>({ type: 'start' }),
      fc.constant<LinkEvent>({ type: 'logged-in' }),
      fc.record({
        type: fc.constant('refused' as const),
        reason: fc.constantFrom('AuthFailed', 'RateLimited'),
        terminal: fc.boolean(),
        retryAfterMs: fc.option(fc.nat(60_000), { nil: undefined }),
      }),
      fc.constant<LinkEvent>({ type: 'auth-timeout' }),
      fc.record({
        type: fc.constant('closed' as const),
        reason: fc.constant('gone'),
        random: fc.double({ min: 0, max: 0.99, noNaN: true }),
      }),
      fc.constant<LinkEvent>({ type: 'retry-due' }),
      fc.constant<LinkEvent>({ type: 'stop', reason: 'stop' }),
      fc.constant<LinkEvent>({ type: 'left' }),
    );
    fc.assert(
      fc.property(fc.array(event, { maxLength: 60 }), (events) => {
        let state = INITIAL_LINK;
        let open = false;
        let everFailed = false;
        for (const e of events) {
          const before = state;
          const step = stepLink(config, state, e);
          state = step.state;
          for (const fx of step.effects) {
            if (fx.kind === 'open') {
              expect(open).toBe(false); // never two connections
              open = true;
            }
            if (fx.kind === 'session-down') open = false;
            if (fx.kind === 'arm' && fx.timer === 'retry') expect(state.phase).toBe('waiting');
            if (fx.kind === 'arm' && fx.timer === 'auth') expect(state.phase).toBe('connecting');
          }
          if (everFailed) expect(state.phase).toBe('failed'); // nothing leaves failed
          if (state.phase === 'failed') everFailed = true;
          if (state.phase === 'waiting' || state.phase === 'stopped' || state.phase === 'failed') {
            // No connection is left open in a state without one (leaving closes on `left`).
            if (before.phase !== 'leaving' || e.type === 'left') expect(open).toBe(false);
          }
        }
      }),
      { numRuns: 500 },
    );
  });
});
