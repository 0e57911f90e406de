/**
 * The engine's state machine (src-main/client/engine-state.ts over engine-machine.ts), driven the way engine.ts drives
 * it but with a ManualClock and no socket: `arm` / `cancel` effects become the clock's timers, a
 * due timer comes back as a `timer` event, `close` comes back as `closed` (the link's onClose) and
 * `end-link` as `left`. After every step the timers armed on the clock must be exactly the ones
 * the state lists, and a refused event must leave the state untouched.
 */
import fc from 'fast-check';
import { describe, expect, it } from 'vitest';
import { ManualClock, type TimerHandle } from '../../src-main/client/clock.js';
import {
  canSend,
  INITIAL_ENGINE,
  type EngineConfig,
  type EngineEffect,
  type EngineEvent,
  type EngineMachine,
  type GroupFacts,
  type TimerName,
} from '../../src-main/client/engine-machine.js';
import { stepEngine } from '../../src-main/client/engine-state.js';

const config: EngineConfig = {
  backoff: { initialMs: 250, maxMs: 10_000, multiplier: 2, jitter: 0 },
  authTimeoutMs: 10_000,
  liveness: { intervalMs: 5_000, timeoutMs: 15_000 },
  keyEstablishmentTimeoutMs: 1_000,
  reconnectSettleMs: 3_000,
  rotationCheckMs: 60_000,
  goodbyeMs: 2_000,
};

class Harness {
  m: EngineMachine = INITIAL_ENGINE;
  readonly clock = new ManualClock(0);
  readonly effects: EngineEffect[] = [];
  readonly refusals: string[] = [];
  private readonly handles = new Map<TimerName, TimerHandle>();
  private readonly queue: EngineEvent[] = [];
  private running = false;

  constructor(
    readonly cfg: EngineConfig = config,
    /** The `random` of each `closed` event (the backoff's jitter). */
    readonly random: () => number = () => 0,
  ) {}

  dispatch(event: EngineEvent): void {
    this.queue.push(event);
    if (this.running) return;
    this.running = true;
    try {
      for (let e = this.queue.shift(); e; e = this.queue.shift()) {
        const before = this.m;
        const step = stepEngine(this.cfg, this.m, e);
        if (step.refused !== undefined) {
          this.refusals.push(step.refused);
          // A refused event changes nothing and does nothing.
          expect(step.state).toBe(before);
          expect(step.effects).toEqual([]);
        }
        this.m = step.state;
        for (const effect of step.effects) this.run(effect);
        this.checkTimers();
      }
    } finally {
      this.running = false;
    }
  }

  advance(ms: number): void {
    this.clock.advance(ms);
  }

  /** The effects of this kind since the last call of take(). */
  take(): EngineEffect[] {
    return this.effects.splice(0);
  }

  get armed(): TimerName[] {
    return [...this.handles.keys()].sort();
  }

  private checkTimers(): void {
    expect(this.armed).toEqual([...this.m.timers].sort());
  }

  private run(effect: EngineEffect): void {
    this.effects.push(effect);
    switch (effect.kind) {
      case 'arm': {
        this.clock.clear(this.handles.get(effect.timer));
        const fire = () => {
          if (!effect.repeat) this.handles.delete(effect.timer);
          this.dispatch({ type: 'timer', timer: effect.timer, at: this.clock.monotonic() });
        };
        this.handles.set(
          effect.timer,
          effect.repeat ? this.clock.setInterval(fire, effect.ms) : this.clock.setTimeout(fire, effect.ms),
        );
        return;
      }
      case 'cancel':
        this.clock.clear(this.handles.get(effect.timer));
        this.handles.delete(effect.timer);
        return;
      case 'close':
        // The link's onClose follows every destroy().
        this.dispatch({ type: 'closed', reason: effect.reason, random: this.random() });
        return;
      case 'end-link':
        this.dispatch({ type: 'left' });
        return;
      default:
        return;
    }
  }
}

const shownStates = (effects: EngineEffect[]) => effects.flatMap((e) => (e.kind === 'show' ? [e.state] : []));
const retries = (effects: EngineEffect[]) =>
  effects.flatMap((e) => (e.kind === 'show' && e.state === 'Reconnecting' ? [e.retryInMs] : []));
const kinds = (effects: EngineEffect[]) => effects.map((e) => e.kind);

const facts = (patch: Partial<GroupFacts> = {}): GroupFacts => ({
  others: ['bob'],
  enoughOnline: true,
  needsKey: false,
  idleAlone: false,
  onlineCount: 2,
  memberCount: 3,
  attempt: 0,
  initiator: 'alice',
  epoch: 1,
  ...patch,
});

/** Started, logged in at the clock's time, and chatting under epoch 1 with bob. */
function chatting(h = new Harness()): Harness {
  h.dispatch({ type: 'start' });
  h.dispatch({ type: 'logged-in', at: h.clock.monotonic() });
  h.dispatch({ type: 'group', facts: facts() });
  expect(h.m.shown.state).toBe('Chatting');
  h.take();
  return h;
}

describe('engine state machine: backoff', () => {
  it('retries after 250, 500, 1000 … 10000 ms while the relay is unreachable, and from 250 again after a login', () => {
    const h = new Harness();
    h.dispatch({ type: 'start' });
    const opens = () => h.effects.filter((e) => e.kind === 'open').length;
    expect(opens()).toBe(1);
    const seen: (number | undefined)[] = [];
    for (let i = 0; i < 8; i++) {
      h.dispatch({ type: 'closed', reason: 'connect ECONNREFUSED', random: 0 });
      expect(h.m.shown.state).toBe('Reconnecting');
      const delay = h.m.link.phase === 'waiting' ? h.m.link.retryInMs : -1;
      seen.push(delay);
      // Nothing happens a millisecond early; the attempt comes when the retry timer is due.
      h.advance(delay - 1);
      expect(h.m.link.phase).toBe('waiting');
      h.advance(1);
      expect(h.m.link.phase).toBe('connecting');
      expect(h.m.shown.state).toBe('Connecting');
    }
    expect(seen).toEqual([250, 500, 1000, 2000, 4000, 8000, 10_000, 10_000]);
    expect(opens()).toBe(9);
    h.dispatch({ type: 'logged-in', at: h.clock.monotonic() });
    h.take();
    h.dispatch({ type: 'closed', reason: 'connection closed by the relay', random: 0 });
    expect(retries(h.take())).toEqual([250]);
  });

  it('jitter shortens the wait by up to its fraction; a RateLimited retryAfterMs is a floor', () => {
    const jittery = new Harness({ ...config, backoff: { ...config.backoff, jitter: 0.5 } }, () => 0.5);
    jittery.dispatch({ type: 'start' });
    jittery.take();
    jittery.dispatch({ type: 'closed', reason: 'ECONNREFUSED', random: 0.5 });
    expect(retries(jittery.take())).toEqual([188]); // round(250 × (1 − 0.5 × 0.5))

    const h = new Harness();
    h.dispatch({ type: 'start' });
    h.dispatch({ type: 'refused', reason: 'RateLimited', terminal: false, retryAfterMs: 7_000 });
    h.take();
    h.dispatch({ type: 'closed', reason: 'RateLimited', random: 0 });
    expect(retries(h.take())).toEqual([7_000]);
    h.advance(6_999);
    expect(h.m.link.phase).toBe('waiting');
    h.advance(1);
    expect(h.m.link.phase).toBe('connecting');
  });

  it('a login that does not complete in time closes the link and retries; NoRoster doubles the deadline once', () => {
    const h = new Harness();
    h.dispatch({ type: 'start' });
    h.take();
    h.advance(config.authTimeoutMs);
    const effects = h.take();
    expect(effects).toContainEqual({
      kind: 'close',
      reason: `the relay did not complete the login within ${config.authTimeoutMs} ms`,
    });
    expect(h.m.link.phase).toBe('waiting');

    h.advance(250);
    expect(h.m.link.phase).toBe('connecting');
    h.dispatch({ type: 'no-roster' });
    h.advance(config.authTimeoutMs);
    expect(h.m.link.phase).toBe('connecting');
    h.take();
    h.advance(config.authTimeoutMs);
    expect(h.take()).toContainEqual({
      kind: 'close',
      reason: `the relay did not complete the login within ${2 * config.authTimeoutMs} ms`,
    });
    expect(h.m.link.phase).toBe('waiting');
  });

  it('a terminal refusal ends in Failed: no retry timer, and stop only wipes the keys', () => {
    const h = new Harness();
    h.dispatch({ type: 'start' });
    h.dispatch({ type: 'refused', reason: 'Removed: you were removed', terminal: true });
    h.dispatch({ type: 'closed', reason: 'closed', random: 0 });
    expect(h.m.link.phase).toBe('failed');
    expect(h.m.shown).toEqual({ state: 'Failed', reason: 'Removed: you were removed' });
    expect(h.m.timers).toEqual([]);
    h.advance(60_000);
    expect(h.effects.filter((e) => e.kind === 'open')).toHaveLength(1);
    h.take();
    h.dispatch({ type: 'stop', reason: 'leaving' });
    expect(h.take()).toEqual([{ kind: 'wipe' }]);
    expect(h.m.link.phase).toBe('failed');
  });
});

describe('engine state machine: heartbeat', () => {
  it('sends a HEARTBEAT after 5 s without writing, not while writing, and closes after 15 s of silence', () => {
    const h = chatting();
    expect(h.m.timers).toContain('heartbeat');
    const beats = () => h.effects.filter((e) => e.kind === 'send-heartbeat').length;
    // The relay keeps talking, we keep quiet: one heartbeat per 5 s.
    for (let i = 1; i <= 3; i++) {
      h.advance(2_500);
      h.dispatch({ type: 'received', at: h.clock.monotonic() });
      h.advance(2_500);
      h.dispatch({ type: 'received', at: h.clock.monotonic() });
      expect(beats()).toBe(i);
    }
    // We write all the time: no heartbeat is needed.
    h.take();
    for (let t = 0; t < 20_000; t += 1_000) {
      h.advance(1_000);
      h.dispatch({ type: 'wrote', at: h.clock.monotonic() });
      h.dispatch({ type: 'received', at: h.clock.monotonic() });
    }
    expect(beats()).toBe(0);
    // Then the relay goes silent: heartbeats go on, and at 15 s the link is closed.
    const silentFrom = h.clock.monotonic();
    h.advance(14_999);
    expect(h.m.link.phase).toBe('online');
    expect(beats()).toBeGreaterThanOrEqual(2);
    h.advance(1);
    const close = h.effects.find((e) => e.kind === 'close');
    expect(close).toEqual({ kind: 'close', reason: 'Relay not responding: nothing received for 15 s' });
    expect(h.m.link.phase).toBe('waiting');
    expect(h.m.timers).toEqual(['retry']);
    expect(h.clock.monotonic() - silentFrom).toBeGreaterThanOrEqual(15_000);
    // The Reconnecting it shows carries the code; a later close by the relay does not.
    const shows = () => h.effects.filter((e) => e.kind === 'show' && e.state === 'Reconnecting');
    expect(shows().at(-1)).toMatchObject({ kind: 'show', cause: 'relay-silent' });
    h.take();
    h.advance(10_000); // the retry opens a new link
    h.dispatch({ type: 'logged-in', at: h.clock.monotonic() });
    h.dispatch({ type: 'closed', reason: 'connection closed by the relay', random: 0 });
    expect(shows()).toHaveLength(1);
    expect(shows()[0]).not.toHaveProperty('cause');
  });

  it('shows the cause the transport read from the socket’s error code, for that close only', () => {
    const h = new Harness();
    h.dispatch({ type: 'start' });
    const reconnecting = () => h.take().filter((e) => e.kind === 'show' && e.state === 'Reconnecting');
    h.dispatch({ type: 'closed', reason: 'whatever the words', random: 0, cause: 'nothing-listening' });
    expect(reconnecting()).toEqual([expect.objectContaining({ cause: 'nothing-listening' })]);
    h.advance(250); // the retry opens a new link: its close has a cause of its own, or none
    h.dispatch({ type: 'closed', reason: 'connect ECONNREFUSED 127.0.0.1:1', random: 0 });
    expect(reconnecting()).toEqual([expect.not.objectContaining({ cause: expect.anything() })]);
  });
});

describe('engine state machine: key timer', () => {
  it('arms the key timer while a key is missing, moves to the next attempt when it fires, waits longer each turn, and stops it once a key is usable', () => {
    const h = new Harness();
    h.dispatch({ type: 'start' });
    h.dispatch({ type: 'logged-in', at: 0 });
    h.dispatch({ type: 'group', facts: facts({ needsKey: true, epoch: undefined, onlineCount: 2 }) });
    expect(h.m.shown.state).toBe('KeyEstablishment');
    expect(h.m.timers).toContain('key');
    expect(canSend(h.m)).toBe(false);
    h.take();
    // A second PRESENCE does not re-arm (and so postpone) a running key timer.
    h.advance(600);
    h.dispatch({ type: 'group', facts: facts({ needsKey: true, epoch: undefined }) });
    expect(h.take().filter((e) => e.kind === 'arm')).toEqual([]);
    h.advance(399);
    expect(h.effects.filter((e) => e.kind === 'next-attempt')).toHaveLength(0);
    h.advance(1);
    expect(kinds(h.take())).toContain('next-attempt');
    expect(h.m.timers).not.toContain('key');

    // The driver answers next-attempt with `attempt`: one turn of 2 online at 1×, then 2×, … capped at 4×.
    const armedFor = (attempt: number): number | undefined => {
      h.dispatch({ type: 'attempt', facts: facts({ needsKey: true, epoch: undefined, attempt }) });
      const arm = h.take().find((e) => e.kind === 'arm' && e.timer === 'key');
      return arm?.kind === 'arm' ? arm.ms : undefined;
    };
    expect([1, 2, 3, 4, 6, 20].map(armedFor)).toEqual([1_000, 2_000, 2_000, 3_000, 4_000, 4_000]);
    expect(h.m.shown).toEqual({ state: 'KeyEstablishment', reason: 'attempt 21: initiator alice' });

    // The key arrives: the timer is cancelled, Chatting, and the queue is pumped.
    h.dispatch({ type: 'group', facts: facts() });
    const effects = h.take();
    expect(effects).toContainEqual({ kind: 'cancel', timer: 'key' });
    expect(kinds(effects)).toContain('pump');
    expect(h.m.shown.state).toBe('Chatting');
    expect(h.m.timers).not.toContain('key');
    h.advance(10_000);
    expect(h.effects.filter((e) => e.kind === 'next-attempt')).toHaveLength(0);
  });

  it('alone online without a key is Chatting with no key timer: a key is made when one writes', () => {
    const h = new Harness();
    h.dispatch({ type: 'start' });
    h.dispatch({ type: 'logged-in', at: 0 });
    h.dispatch({
      type: 'group',
      facts: facts({ others: [], needsKey: true, idleAlone: true, epoch: undefined }),
    });
    expect(h.m.session).toEqual({ stage: 'alone' });
    expect(h.m.shown).toEqual({ state: 'Chatting', reason: 'alone online: a key is made when you write' });
    expect(h.m.timers).not.toContain('key');
    expect(canSend(h.m)).toBe(false);
  });

  it('after a reconnect the queue waits for the members seen before, or for the settle timer', () => {
    const h = chatting();
    h.dispatch({ type: 'closed', reason: 'ECONNRESET', random: 0 });
    h.advance(250);
    h.dispatch({ type: 'logged-in', at: h.clock.monotonic() });
    expect(h.m.settle).toEqual({ waiting: ['bob'] });
    h.dispatch({ type: 'group', facts: facts({ others: [] }) });
    expect(h.m.shown.state).toBe('Chatting');
    expect(canSend(h.m)).toBe(false);
    h.take();
    h.advance(config.reconnectSettleMs);
    expect(kinds(h.take())).toContain('pump');
    expect(canSend(h.m)).toBe(true);

    // bob and carol back before the settle timer: it is cancelled and the queue goes at once,
    // but not while only one of them is.
    const g = chatting();
    g.dispatch({ type: 'group', facts: facts({ others: ['bob', 'carol'] }) });
    g.dispatch({ type: 'closed', reason: 'ECONNRESET', random: 0 });
    g.advance(250);
    g.dispatch({ type: 'logged-in', at: g.clock.monotonic() });
    expect(g.m.settle).toEqual({ waiting: ['bob', 'carol'] });
    g.dispatch({ type: 'group', facts: facts({ others: ['bob'] }) });
    expect(canSend(g.m)).toBe(false);
    g.take();
    g.dispatch({ type: 'group', facts: facts({ others: ['bob', 'carol'] }) });
    const effects = g.take();
    expect(effects).toContainEqual({ kind: 'cancel', timer: 'settle' });
    expect(kinds(effects)).toContain('pump');
    expect(canSend(g.m)).toBe(true);
  });
});

describe('engine state machine: stop in each state', () => {
  it('idle: Disconnected at once, nothing armed', () => {
    const h = new Harness();
    h.dispatch({ type: 'stop', reason: 'bye' });
    expect(h.m.link.phase).toBe('stopped');
    expect(shownStates(h.effects)).toEqual(['Disconnected']);
    expect(kinds(h.effects)).toContain('wipe');
    expect(h.m.timers).toEqual([]);
  });

  it('connecting: the login timer is cancelled and the link closed', () => {
    const h = new Harness();
    h.dispatch({ type: 'start' });
    h.take();
    h.dispatch({ type: 'stop', reason: 'bye' });
    const effects = h.take();
    expect(effects).toContainEqual({ kind: 'cancel', timer: 'auth' });
    expect(effects).toContainEqual({ kind: 'close', reason: 'stopped' });
    expect(h.m.link.phase).toBe('stopped');
    expect(h.m.shown.state).toBe('Disconnected');
    expect(h.m.timers).toEqual([]);
    h.advance(60_000);
    expect(h.effects.filter((e) => e.kind === 'open')).toEqual([]);
  });

  it('waiting to retry: the retry timer is cancelled, no new attempt', () => {
    const h = new Harness();
    h.dispatch({ type: 'start' });
    h.dispatch({ type: 'closed', reason: 'ECONNREFUSED', random: 0 });
    h.take();
    h.dispatch({ type: 'stop', reason: 'bye' });
    expect(h.take()).toContainEqual({ kind: 'cancel', timer: 'retry' });
    expect(h.m.timers).toEqual([]);
    h.advance(60_000);
    expect(h.effects.filter((e) => e.kind === 'open')).toEqual([]);
    expect(h.m.shown.state).toBe('Disconnected');
  });

  it('online with every session timer armed: only the goodbye timer stays; DISCONNECT written, then Disconnected', () => {
    const h = new Harness();
    h.dispatch({ type: 'start' });
    h.dispatch({ type: 'logged-in', at: 0 });
    h.dispatch({ type: 'certificates-requested' });
    h.dispatch({ type: 'group', facts: facts({ needsKey: true, epoch: undefined }) });
    h.dispatch({ type: 'held-for-key', count: 2 });
    h.dispatch({ type: 'live' });
    h.dispatch({ type: 'rekey-requested', epoch: undefined });
    expect([...h.m.timers].sort()).toEqual(
      ['cert-retry', 'heartbeat', 'held-sweep', 'key', 'rekey-fallback', 'rotation'].sort(),
    );
    h.take();
    h.dispatch({ type: 'stop', reason: 'bye' });
    const effects = h.take();
    expect(kinds(effects)).toContain('say-goodbye');
    expect(h.m.link.phase).toBe('leaving');
    expect(h.m.shown.state).toBe('Disconnecting');
    expect(h.m.timers).toEqual(['goodbye']);
    // Late frames and facts do not make it look like a session again.
    h.dispatch({ type: 'group', facts: facts() });
    expect(h.m.shown.state).toBe('Disconnecting');
    h.dispatch({ type: 'goodbye-written' });
    expect(h.m.link.phase).toBe('stopped');
    expect(h.m.shown.state).toBe('Disconnected');
    expect(h.m.timers).toEqual([]);
    expect(kinds(h.take())).toEqual(expect.arrayContaining(['end-link', 'session-down', 'wipe']));
  });

  it('online, DISCONNECT never written: the goodbye timer ends the link anyway', () => {
    const h = chatting();
    h.dispatch({ type: 'stop', reason: 'bye' });
    expect(h.m.link.phase).toBe('leaving');
    h.advance(config.goodbyeMs - 1);
    expect(h.m.link.phase).toBe('leaving');
    h.advance(1);
    expect(h.m.link.phase).toBe('stopped');
    expect(h.m.timers).toEqual([]);
    expect(kinds(h.effects)).toContain('end-link');
  });

  it('a stopped engine may start again, from a fresh backoff', () => {
    const h = new Harness();
    h.dispatch({ type: 'start' });
    h.dispatch({ type: 'closed', reason: 'ECONNREFUSED', random: 0 });
    h.advance(250);
    h.dispatch({ type: 'closed', reason: 'ECONNREFUSED', random: 0 });
    h.dispatch({ type: 'stop', reason: 'bye' });
    h.take();
    h.dispatch({ type: 'start' });
    expect(h.m.link.phase).toBe('connecting');
    h.dispatch({ type: 'closed', reason: 'ECONNREFUSED', random: 0 });
    expect(retries(h.take())).toEqual([250]);
  });
});

describe('engine state machine: illegal events are refused', () => {
  const refusedIn = (h: Harness, event: EngineEvent): string | undefined => {
    const step = stepEngine(config, h.m, event);
    if (step.refused !== undefined) {
      expect(step.state).toBe(h.m);
      expect(step.effects).toEqual([]);
    }
    return step.refused;
  };

  it('without a session: login facts, group facts, key attempts, live, a re-key, held messages', () => {
    const h = new Harness();
    expect(refusedIn(h, { type: 'logged-in', at: 0 })).toBe('logged in without a connection');
    expect(refusedIn(h, { type: 'group', facts: facts() })).toBe('group facts without a session');
    expect(refusedIn(h, { type: 'attempt', facts: facts() })).toBe('a key attempt without a session');
    expect(refusedIn(h, { type: 'live' })).toBe('live without a session');
    expect(refusedIn(h, { type: 'rekey-requested', epoch: 1 })).toBe('a re-key request without a session');
    expect(refusedIn(h, { type: 'held-for-key', count: 1 })).toBe('a held message without a session');
    expect(refusedIn(h, { type: 'certificates-requested' })).toBe('certificates requested without a session');
    expect(refusedIn(h, { type: 'no-roster' })).toBe('NoRoster outside a login');
    // Connecting, but not logged in yet: still no session to speak of.
    h.dispatch({ type: 'start' });
    expect(refusedIn(h, { type: 'group', facts: facts() })).toBe('group facts without a session');
    expect(refusedIn(h, { type: 'certificates-pending', count: 1 })).toBe(
      'certificates pending without a session',
    );
  });

  it('a timer that is not armed, a second start, a goodbye or a left without leaving, a second login', () => {
    const h = new Harness();
    expect(refusedIn(h, { type: 'timer', timer: 'key', at: 0 })).toBe('timer key is not armed');
    expect(refusedIn(h, { type: 'goodbye-written' })).toBe('no goodbye under way');
    expect(refusedIn(h, { type: 'left' })).toBe('not leaving');
    h.dispatch({ type: 'start' });
    expect(refusedIn(h, { type: 'start' })).toBe('start while connecting');
    expect(refusedIn(h, { type: 'timer', timer: 'retry', at: 0 })).toBe('timer retry is not armed');
    h.dispatch({ type: 'logged-in', at: 0 });
    expect(refusedIn(h, { type: 'logged-in', at: 0 })).toBe('logged in without a connection');
    expect(refusedIn(h, { type: 'timer', timer: 'goodbye', at: 0 })).toBe('timer goodbye is not armed');
    h.dispatch({ type: 'stop', reason: 'bye' });
    expect(refusedIn(h, { type: 'stop', reason: 'again' })).toBe('stop while leaving');
    h.dispatch({ type: 'goodbye-written' });
    expect(refusedIn(h, { type: 'goodbye-written' })).toBe('no goodbye under way');
  });
});

describe('engine state machine: any sequence of events', () => {
  const event = fc.oneof(
    fc.constant<EngineEvent>({ type: 'start' }),
    fc.constant<EngineEvent>({ type: 'stop', reason: 'bye' }),
    fc.double({ min: 0, max: 0.999, noNaN: true }).map<EngineEvent>((random) => ({
      type: 'closed',
      reason: 'ECONNRESET',
      random,
    })),
    fc
      .record({ terminal: fc.boolean(), retryAfterMs: fc.option(fc.integer({ min: 0, max: 20_000 })) })
      .map<EngineEvent>(({ terminal, retryAfterMs }) => ({
        type: 'refused',
        reason: 'refused',
        terminal,
        ...(retryAfterMs !== null ? { retryAfterMs } : {}),
      })),
    fc.constant<EngineEvent>({ type: 'logged-in', at: 0 }),
    fc.constant<EngineEvent>({ type: 'received', at: 0 }),
    fc.constant<EngineEvent>({ type: 'no-roster' }),
    fc.constant<EngineEvent>({ type: 'certificates-requested' }),
    fc.integer({ min: 0, max: 3 }).map<EngineEvent>((count) => ({ type: 'certificates-pending', count })),
    fc
      .record({ needsKey: fc.boolean(), idleAlone: fc.boolean(), alone: fc.boolean(), attempt: fc.nat(8) })
      .chain(({ needsKey, idleAlone, alone, attempt }) =>
        fc.constantFrom<EngineEvent>(
          {
            type: 'group',
            facts: facts({
              needsKey,
              idleAlone,
              attempt,
              others: alone ? [] : ['bob'],
              epoch: needsKey ? undefined : 1,
            }),
          },
          { type: 'attempt', facts: facts({ needsKey, attempt, epoch: needsKey ? undefined : 1 }) },
        ),
      ),
    fc.constantFrom<EngineEvent>(
      { type: 'rekey-requested', epoch: 1 },
      { type: 'rekey-requested', epoch: undefined },
    ),
    fc.integer({ min: 0, max: 2 }).map<EngineEvent>((count) => ({ type: 'held-for-key', count })),
    fc.constant<EngineEvent>({ type: 'live' }),
    fc.constant<EngineEvent>({ type: 'goodbye-written' }),
    fc.constant<EngineEvent>({ type: 'left' }),
  );
  const action = fc.oneof(
    event.map((e) => ({ event: e })),
    fc.integer({ min: 1, max: 20_000 }).map((ms) => ({ advance: ms })),
  );

  it('keeps the clock’s timers equal to the listed ones, sends only while chatting, and leaves nothing armed once stopped', () => {
    fc.assert(
      fc.property(fc.array(action, { maxLength: 60 }), (actions) => {
        const h = new Harness();
        for (const a of actions) {
          if ('advance' in a) h.advance(a.advance);
          else {
            // Times in events are the clock's: the machine never sees time go backwards.
            const e = a.event;
            h.dispatch('at' in e ? { ...e, at: h.clock.monotonic() } : e);
          }
          if (canSend(h.m)) expect(h.m.session?.stage).toBe('chatting');
          // A session exactly while a connection is open.
          expect(h.m.session !== undefined).toBe(
            ['connecting', 'online', 'leaving'].includes(h.m.link.phase),
          );
          if (['idle', 'stopped', 'failed'].includes(h.m.link.phase)) expect(h.m.timers).toEqual([]);
        }
        h.dispatch({ type: 'stop', reason: 'end' });
        h.advance(config.goodbyeMs);
        expect(['stopped', 'failed']).toContain(h.m.link.phase);
        expect(h.m.timers).toEqual([]);
        expect(h.clock.pending).toBe(0);
      }),
      { numRuns: 300 },
    );
  });
});
