/**
 * The chat engine's session as a state machine without I/O: (state, event) → (state, effects).
 * The driver (engine.ts) owns the socket, the timers and the protocol helpers (certificates, keys,
 * the log); it turns what happens into events, carries out the effects in order, and asks
 * `canSend` before it signs anything. The connection lifecycle itself (connect, login deadline,
 * backoff, stop) is link-lifecycle.ts, embedded here; this adds what a logged-in session does:
 * CertExchange → KeyEstablishment → Chatting, heartbeats, the settle wait after a reconnect, and
 * the group's timers. Every timer is named, armed and cancelled only through effects, and the
 * state lists the armed ones, so "nothing is left armed after stop" is a property of the data.
 *
 * Events that make no sense in the current state are refused (`refused` says why) and change
 * nothing: a PRESENCE-derived fact with no session, a timer that is not armed, a second goodbye.
 */
import { livenessTickMs, livenessVerdict } from '../core/link/liveness.js';
import {
  canSend,
  isOnline,
  type ConnectionCause,
  type EngineConfig,
  type EngineEffect,
  type EngineEvent,
  type EngineMachine,
  type EngineStep,
  type GroupFacts,
  type TimerName,
} from './engine-machine.js';
import { stepLink, type LinkEffect, type LinkEvent } from './link-lifecycle.js';
import type { EngineState } from './types.js';

/** The timers that belong to a logged-in session; cancelled together when it ends or stops. */
const SESSION_TIMERS: readonly TimerName[] = [
  'heartbeat',
  'key',
  'cert-retry',
  'settle',
  'rekey-fallback',
  'held-sweep',
  'rotation',
];

/** Accumulates a step: every effect that arms or cancels a timer also updates the armed list. */
class Step {
  readonly effects: EngineEffect[] = [];
  constructor(public m: EngineMachine) {}

  set(patch: Partial<EngineMachine>): void {
    this.m = { ...this.m, ...patch };
  }

  arm(timer: TimerName, ms: number, repeat = false): void {
    this.effects.push({ kind: 'arm', timer, ms, repeat });
    if (!this.m.timers.includes(timer)) this.set({ timers: [...this.m.timers, timer] });
  }

  cancel(timer: TimerName): void {
    if (!this.m.timers.includes(timer)) return;
    this.effects.push({ kind: 'cancel', timer });
    this.set({ timers: this.m.timers.filter((t) => t !== timer) });
  }

  /** A one-shot timer that fired is no longer armed. */
  fired(timer: TimerName): void {
    this.set({ timers: this.m.timers.filter((t) => t !== timer) });
  }

  show(
    state: EngineState,
    reason?: string,
    retryInMs?: number,
    cause?: ConnectionCause,
    relay?: number,
  ): void {
    // While leaving, late frames must not make the state look like a fresh session.
    if (this.m.link.phase === 'leaving' && state !== 'Disconnecting') return;
    const { shown } = this.m;
    if (state === shown.state && reason === shown.reason && retryInMs === undefined) return;
    this.set({ shown: { state, reason } });
    this.effects.push({
      kind: 'show',
      state,
      ...(reason !== undefined ? { reason } : {}),
      ...(retryInMs !== undefined ? { retryInMs } : {}),
      ...(cause !== undefined ? { cause } : {}),
      ...(relay !== undefined ? { relay } : {}),
    });
  }

  push(effect: EngineEffect): void {
    this.effects.push(effect);
  }

  done(): EngineStep {
    return { state: this.m, effects: this.effects };
  }
}

const refuse = (m: EngineMachine, why: string): EngineStep => ({ state: m, effects: [], refused: why });

export function stepEngine(config: EngineConfig, m: EngineMachine, event: EngineEvent): EngineStep {
  switch (event.type) {
    case 'closed':
      // The heartbeat's own verdict (relay-silent) stays the cause of a close it asked for.
      return viaLink(config, event.cause && !m.closedFor ? { ...m, closedFor: event.cause } : m, event);
    case 'start':
    case 'stop':
    case 'refused':
      return viaLink(config, m, event);
    case 'timer':
      return onTimer(config, m, event.timer, event.at);
    case 'logged-in':
      if (m.link.phase !== 'connecting') return refuse(m, 'logged in without a connection');
      return loggedIn(config, viaLink(config, m, { type: 'logged-in' }), event.at, m);
    case 'received':
    case 'wrote': {
      if (!m.liveness) return { state: m, effects: [] };
      const liveness =
        event.type === 'received' ? { ...m.liveness, received: event.at } : { ...m.liveness, sent: event.at };
      return { state: { ...m, liveness }, effects: [] };
    }
    case 'no-roster': {
      if (m.link.phase !== 'connecting') return refuse(m, 'NoRoster outside a login');
      const s = new Step(m);
      s.cancel('auth');
      s.arm('auth', 2 * config.authTimeoutMs);
      s.set({ authExtended: true });
      return s.done();
    }
    case 'certificates-requested': {
      if (!isOnline(m)) return refuse(m, 'certificates requested without a session');
      const s = new Step(m);
      s.cancel('cert-retry');
      s.arm('cert-retry', config.keyEstablishmentTimeoutMs);
      return s.done();
    }
    case 'certificates-pending': {
      if (!isOnline(m)) return refuse(m, 'certificates pending without a session');
      const s = new Step(m);
      s.set({ session: { stage: 'certificates', pending: event.count } });
      s.show('CertExchange', `fetching ${event.count} certificate(s)`);
      return s.done();
    }
    case 'group':
      if (!isOnline(m)) return refuse(m, 'group facts without a session');
      return onGroup(config, new Step(m), event.facts).done();
    case 'attempt': {
      if (!isOnline(m)) return refuse(m, 'a key attempt without a session');
      const s = new Step(m);
      if (!event.facts.needsKey || !event.facts.enoughOnline) return onGroup(config, s, event.facts).done();
      const reason = `attempt ${event.facts.attempt + 1}: initiator ${event.facts.initiator ?? '?'}`;
      s.set({ session: { stage: 'keying', reason } });
      s.show('KeyEstablishment', reason);
      s.arm('key', keyTimeout(config, event.facts));
      return s.done();
    }
    case 'rekey-requested': {
      if (!isOnline(m)) return refuse(m, 'a re-key request without a session');
      const s = new Step(m);
      s.cancel('rekey-fallback');
      s.arm('rekey-fallback', config.keyEstablishmentTimeoutMs);
      s.set({ rekeyFrom: event.epoch });
      return s.done();
    }
    case 'held-for-key': {
      if (m.session === undefined && event.count > 0) return refuse(m, 'a held message without a session');
      const s = new Step(m);
      if (event.count === 0) s.cancel('held-sweep');
      else if (!m.timers.includes('held-sweep')) {
        s.arm('held-sweep', Math.max(50, config.keyEstablishmentTimeoutMs / 4), true);
      }
      return s.done();
    }
    case 'live': {
      if (!isOnline(m)) return refuse(m, 'live without a session');
      const s = new Step(m);
      s.cancel('rotation');
      s.arm('rotation', config.rotationCheckMs, true);
      return s.done();
    }
    case 'goodbye-written': {
      if (m.link.phase !== 'leaving' || m.goodbye !== 'writing') return refuse(m, 'no goodbye under way');
      const s = new Step(m);
      s.cancel('goodbye');
      s.set({ goodbye: 'ending' });
      s.push({ kind: 'end-link' });
      return s.done();
    }
    case 'left':
      if (m.link.phase !== 'leaving') return refuse(m, 'not leaving');
      return viaLink(config, m, { type: 'left' });
  }
}

function onTimer(config: EngineConfig, m: EngineMachine, timer: TimerName, at: number): EngineStep {
  if (!m.timers.includes(timer)) return refuse(m, `timer ${timer} is not armed`);
  const s = new Step(m);
  switch (timer) {
    case 'auth':
      s.fired('auth');
      if (m.authExtended && m.link.phase === 'connecting') {
        s.push({
          kind: 'close',
          reason: `the relay did not complete the login within ${2 * config.authTimeoutMs} ms`,
        });
        return s.done();
      }
      return merge(s, viaLink(config, s.m, { type: 'auth-timeout' }));
    case 'retry':
      s.fired('retry');
      return merge(s, viaLink(config, s.m, { type: 'retry-due' }));
    case 'heartbeat': {
      const l = m.liveness;
      if (!l) return s.done();
      const verdict = livenessVerdict(config.liveness, l, at);
      if (verdict.kind === 'peer-gone') {
        s.cancel('heartbeat');
        s.set({ closedFor: 'relay-silent' });
        s.push({
          kind: 'close',
          reason: `Relay not responding: nothing received for ${Math.round(verdict.silentMs / 1000)} s`,
        });
      } else if (verdict.kind === 'send-heartbeat') {
        s.set({ liveness: { ...l, sent: at } });
        s.push({ kind: 'send-heartbeat' });
      }
      return s.done();
    }
    case 'key':
      s.fired('key');
      s.push({ kind: 'next-attempt' });
      return s.done();
    case 'cert-retry':
      s.fired('cert-retry');
      s.push({ kind: 'retry-certificates' });
      return s.done();
    case 'settle':
      s.fired('settle');
      s.set({ settle: undefined });
      if (canSend(s.m)) s.push({ kind: 'pump' });
      return s.done();
    case 'rekey-fallback':
      s.fired('rekey-fallback');
      if (m.rekeyFrom !== null && m.rekeyFrom === m.epoch) s.push({ kind: 'start-round' });
      s.set({ rekeyFrom: null });
      return s.done();
    case 'held-sweep':
      s.push({ kind: 'sweep-held' });
      return s.done();
    case 'rotation':
      s.push({ kind: 'maybe-rotate' });
      return s.done();
    case 'goodbye':
      s.fired('goodbye');
      if (m.goodbye !== 'writing') return s.done();
      s.set({ goodbye: 'ending' });
      s.push({ kind: 'end-link' });
      return s.done();
  }
}

/** After presence, a roster or a key: Chatting if the key is usable, else waiting for one. */
function onGroup(config: EngineConfig, s: Step, f: GroupFacts): Step {
  s.set({ lastOthers: f.others, epoch: f.epoch });
  const settle = s.m.settle;
  if (settle && settle.waiting.every((n) => f.others.includes(n))) {
    s.cancel('settle');
    s.set({ settle: undefined });
  }
  if (s.m.rekeyFrom !== null && f.epoch !== s.m.rekeyFrom) {
    s.cancel('rekey-fallback');
    s.set({ rekeyFrom: null });
  }
  if (f.enoughOnline && f.needsKey && f.idleAlone) {
    s.cancel('key');
    s.set({ session: { stage: 'alone' } });
    s.show('Chatting', 'alone online: a key is made when you write');
    return s;
  }
  if (!f.enoughOnline || f.needsKey) {
    const reason = !f.enoughOnline
      ? 'waiting for other members'
      : `establishing a key with ${f.onlineCount} of ${f.memberCount} members online`;
    s.set({ session: { stage: 'keying', reason } });
    s.show('KeyEstablishment', reason);
    if (f.enoughOnline && !s.m.timers.includes('key')) s.arm('key', keyTimeout(config, f));
    return s;
  }
  s.cancel('key');
  s.set({ session: { stage: 'chatting' } });
  s.show('Chatting');
  if (canSend(s.m)) s.push({ kind: 'pump' });
  return s;
}

/** Each full turn through the members waits longer: on a loaded machine rounds may simply be slow. */
function keyTimeout(config: EngineConfig, f: GroupFacts): number {
  const turns = Math.floor(f.attempt / Math.max(1, f.onlineCount));
  return config.keyEstablishmentTimeoutMs * Math.min(4, 1 + turns);
}

/** The first PRESENCE: heartbeats, the settle wait (a reconnect only), SYNC. */
function loggedIn(config: EngineConfig, linked: EngineStep, at: number, before: EngineMachine): EngineStep {
  const s = new Step(linked.state);
  s.effects.push(...linked.effects);
  s.set({
    session: { stage: 'certificates', pending: 0 },
    liveness: { received: at, sent: at },
    authExtended: false,
  });
  s.arm('heartbeat', livenessTickMs(config.liveness), true);
  const reconnect = before.everLoggedIn && before.lastOthers.length > 0 && config.reconnectSettleMs > 0;
  s.set({ everLoggedIn: true });
  if (reconnect) {
    s.set({ settle: { waiting: before.lastOthers } });
    s.arm('settle', config.reconnectSettleMs);
  }
  s.push({ kind: 'sync' });
  return s.done();
}

/** Runs a lifecycle event through link-lifecycle.ts and translates its effects into ours. */
function viaLink(config: EngineConfig, m: EngineMachine, event: LinkEvent): EngineStep {
  const before = m.link.phase;
  // Failed stays the last word; stopping only takes the keys out of memory.
  if (event.type === 'stop' && before === 'failed') return { state: m, effects: [{ kind: 'wipe' }] };
  const step = stepLink(config, m.link, event);
  if (event.type === 'closed' && before === 'leaving') {
    // The goodbye's close came first (the relay closed, or end() finished): that is `left`.
    return viaLink(config, m, { type: 'left' });
  }
  if (step.state === m.link && step.effects.length === 0) {
    return event.type === 'refused' || event.type === 'closed'
      ? { state: m, effects: [] }
      : refuse(m, `${event.type} while ${m.link.phase}`);
  }
  const s = new Step({ ...m, link: step.state });
  for (const e of step.effects) translate(s, e);
  if (event.type === 'logged-in') return s.done();
  const after = step.state.phase;
  if (event.type === 'stop' && (after === 'leaving' || after === 'stopped')) {
    for (const t of SESSION_TIMERS) s.cancel(t);
    if (after === 'leaving') {
      s.set({ goodbye: 'writing', liveness: undefined });
      s.arm('goodbye', config.goodbyeMs);
    }
  }
  if (after === 'stopped' && before !== 'stopped') {
    s.cancel('goodbye');
    s.set({ goodbye: undefined, settle: undefined, rekeyFrom: null });
    s.push({ kind: 'wipe' });
  }
  return s.done();
}

function translate(s: Step, e: LinkEffect): void {
  switch (e.kind) {
    case 'open':
      s.set({ session: { stage: 'login' }, authExtended: false, closedFor: undefined });
      s.push(e);
      return;
    case 'close':
      s.push(e);
      return;
    case 'arm':
      s.arm(e.timer, e.ms);
      return;
    case 'cancel':
      s.cancel(e.timer);
      return;
    case 'session-up':
      return; // loggedIn() does what a logged-in session starts
    case 'session-down':
      for (const t of SESSION_TIMERS) s.cancel(t);
      s.set({
        session: undefined,
        liveness: undefined,
        settle: undefined,
        rekeyFrom: null,
        epoch: undefined,
      });
      s.push(e);
      return;
    case 'say-goodbye':
      s.push(e);
      return;
    case 'show':
      s.show(e.state, e.reason, e.retryInMs, e.state === 'Reconnecting' ? s.m.closedFor : undefined, e.relay);
      return;
  }
}

function merge(s: Step, next: EngineStep): EngineStep {
  return {
    state: next.state,
    effects: [...s.effects, ...next.effects],
    ...(next.refused ? { refused: next.refused } : {}),
  };
}
