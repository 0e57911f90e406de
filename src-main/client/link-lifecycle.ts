/**
 * The member's link to the relay as a state machine without I/O: state + event → state + effects.
 * The engine (the driver) owns the socket and the timers, turns what happens into events and
 * carries out the effects in order. What the group does while the link is up (certificates, keys,
 * chat) is the engine's; this decides only when to connect, when to give up and when to come back.
 *
 *   idle ──start──▶ connecting ──logged-in──▶ online
 *                     │  ▲                      │
 *              closed │  └──────retry-due──┐    │ closed
 *                     ▼                    │    ▼
 *               failed (terminal)       waiting (Reconnecting, backoff)
 *
 *   stop: online → leaving (DISCONNECT, then `left`) → stopped; connecting/waiting → stopped;
 *   failed stays failed (it is the last word). A stopped link may start again.
 *
 * Backoff: delay = max(ceiling × (1 − jitter × random), retryAfterMs), ceiling = min(maxMs,
 * initialMs × multiplier^failures); `random` comes with the `closed` event so the step stays pure.
 * A session that logged in resets the count.
 *
 * Several relay addresses (a cluster's nodes, docs/client.md "Several relays"): the link stays on
 * the relay that works; when a connection to it ends, for whatever reason, the next attempt goes to
 * the next address, wrapping around, with the same backoff. A relay whose certificate is refused
 * (not the group's, or not listed in the held roster) is skipped until the next login; once every
 * address is refused the link fails. One address behaves exactly as before: every retry is to it.
 */
import type { BackoffOptions } from './backoff.js';

export interface LinkConfig {
  backoff: BackoffOptions;
  /** From opening the socket to the first PRESENCE. */
  authTimeoutMs: number;
  /** How many relay addresses the member may use (default 1); attempts go round them in order. */
  relays?: number;
}

/** Which relay address (an index into the member's list) and which ones refused to be trusted. */
interface Place {
  relay: number;
  /** Relays whose certificate was refused since the last login: not tried again until then. */
  distrusted: readonly number[];
}

/** What the current (or last) connection attempt learnt that decides what comes after it. */
interface Attempt {
  /** Retrying is pointless: the group refused who we are. */
  terminal?: string;
  /** This relay is not to be trusted (its certificate); another address may be. */
  relayRefused?: string;
  /** The relay said when to come back (RateLimited). */
  retryAfterMs?: number;
}

export type LinkState =
  | { phase: 'idle' }
  | ({ phase: 'connecting'; failures: number } & Place & Attempt)
  | ({ phase: 'online' } & Place & Attempt)
  | ({ phase: 'waiting'; failures: number; retryInMs: number; reason: string } & Place)
  | { phase: 'leaving'; reason: string }
  | { phase: 'stopped'; reason: string }
  | { phase: 'failed'; reason: string };

export type LinkEvent =
  | { type: 'start' }
  /** The first PRESENCE of this session: the relay admitted us. */
  | { type: 'logged-in' }
  /**
   * The relay refused us, or we refused its certificate; the connection closes next. `scope`
   * 'relay': a terminal verdict on this relay only (its certificate), not on who we are.
   */
  | { type: 'refused'; reason: string; terminal: boolean; scope?: 'relay'; retryAfterMs?: number }
  | { type: 'auth-timeout' }
  /** The connection ended, whatever ended it. `random` in [0, 1) for the jitter. */
  | { type: 'closed'; reason: string; random: number }
  | { type: 'retry-due' }
  | { type: 'stop'; reason: string }
  /** After `say-goodbye`: DISCONNECT written (or given up on) and the socket closed. */
  | { type: 'left' };

export type LinkTimer = 'auth' | 'retry';

/** The states this machine shows; CertExchange, KeyEstablishment and Chatting are the engine's. */
export type LinkShownState = 'Connecting' | 'Reconnecting' | 'Disconnecting' | 'Disconnected' | 'Failed';

export type LinkEffect =
  /** Connect to this relay address (an index into the member's list). */
  | { kind: 'open'; relay: number }
  | { kind: 'close'; reason: string }
  | { kind: 'arm'; timer: LinkTimer; ms: number }
  | { kind: 'cancel'; timer: LinkTimer }
  /** Logged in: start heartbeats, SYNC, and whatever else a live session does. */
  | { kind: 'session-up' }
  /** The connection is gone: forget everything that belonged to it. */
  | { kind: 'session-down' }
  /** Send DISCONNECT, flush, close; then dispatch `left`. */
  | { kind: 'say-goodbye'; reason: string }
  /** `relay`: on Connecting, the address being tried. */
  | { kind: 'show'; state: LinkShownState; reason?: string; retryInMs?: number; relay?: number };

export interface LinkStep {
  state: LinkState;
  effects: LinkEffect[];
}

export const INITIAL_LINK: LinkState = { phase: 'idle' };

export function backoffDelay(b: BackoffOptions, failures: number, random: number): number {
  const ceiling = Math.min(b.maxMs, b.initialMs * b.multiplier ** Math.min(failures, 64));
  return Math.max(1, Math.round(ceiling * (1 - b.jitter * random)));
}

const same = (state: LinkState): LinkStep => ({ state, effects: [] });

export function stepLink(config: LinkConfig, state: LinkState, event: LinkEvent): LinkStep {
  switch (event.type) {
    case 'start':
      if (state.phase !== 'idle' && state.phase !== 'stopped') return same(state);
      return connect(config, 0, { relay: 0, distrusted: [] });

    case 'retry-due':
      if (state.phase !== 'waiting') return same(state);
      return connect(config, state.failures, placeOf(state));

    case 'logged-in':
      if (state.phase !== 'connecting') return same(state);
      return {
        // A login proves the roster held now; relays refused under an older one get another chance.
        state: { phase: 'online', relay: state.relay, distrusted: [], ...attemptOf(state) },
        effects: [{ kind: 'cancel', timer: 'auth' }, { kind: 'session-up' }],
      };

    case 'refused': {
      if (state.phase !== 'connecting' && state.phase !== 'online') return same(state);
      const next = { ...state };
      if (event.terminal && event.scope === 'relay') next.relayRefused ??= event.reason;
      else if (event.terminal) next.terminal ??= event.reason;
      if (event.retryAfterMs !== undefined) {
        next.retryAfterMs = Math.max(next.retryAfterMs ?? 0, event.retryAfterMs);
      }
      return same(next);
    }

    case 'auth-timeout':
      if (state.phase !== 'connecting') return same(state);
      return {
        state,
        effects: [
          { kind: 'close', reason: `the relay did not complete the login within ${config.authTimeoutMs} ms` },
        ],
      };

    case 'closed': {
      // While leaving, the goodbye's own close is expected: `left` finishes the story.
      if (state.phase !== 'connecting' && state.phase !== 'online') return same(state);
      const down: LinkEffect[] = [{ kind: 'cancel', timer: 'auth' }, { kind: 'session-down' }];
      if (state.terminal !== undefined) {
        return {
          state: { phase: 'failed', reason: state.terminal },
          effects: [...down, { kind: 'show', state: 'Failed', reason: state.terminal }],
        };
      }
      const distrusted =
        state.relayRefused !== undefined && !state.distrusted.includes(state.relay)
          ? [...state.distrusted, state.relay]
          : state.distrusted;
      const count = relayCount(config);
      if (state.relayRefused !== undefined && distrusted.length >= count) {
        const reason = count > 1 ? `every relay refused; last: ${state.relayRefused}` : state.relayRefused;
        return {
          state: { phase: 'failed', reason },
          effects: [...down, { kind: 'show', state: 'Failed', reason }],
        };
      }
      const failures = state.phase === 'online' ? 0 : state.failures;
      const relay = nextRelay(count, state.relay, distrusted);
      // A relay's "come back later" (RateLimited) is about that relay, not the next one.
      const retryAfter = relay === state.relay ? (state.retryAfterMs ?? 0) : 0;
      const delay = Math.max(backoffDelay(config.backoff, failures, event.random), retryAfter);
      return {
        state: {
          phase: 'waiting',
          failures: failures + 1,
          retryInMs: delay,
          reason: event.reason,
          relay,
          distrusted,
        },
        effects: [
          ...down,
          { kind: 'show', state: 'Reconnecting', reason: event.reason, retryInMs: delay },
          { kind: 'arm', timer: 'retry', ms: delay },
        ],
      };
    }

    case 'stop':
      switch (state.phase) {
        case 'online':
          return {
            state: { phase: 'leaving', reason: event.reason },
            effects: [
              { kind: 'show', state: 'Disconnecting', reason: event.reason },
              { kind: 'say-goodbye', reason: event.reason },
            ],
          };
        case 'connecting':
          return stopped(event.reason, [
            { kind: 'cancel', timer: 'auth' },
            { kind: 'close', reason: 'stopped' },
            { kind: 'session-down' },
          ]);
        case 'waiting':
          return stopped(event.reason, [{ kind: 'cancel', timer: 'retry' }]);
        case 'idle':
          return stopped(event.reason, []);
        default:
          return same(state);
      }

    case 'left':
      if (state.phase !== 'leaving') return same(state);
      return stopped(state.reason, [{ kind: 'session-down' }]);
  }
}

function connect(config: LinkConfig, failures: number, place: Place): LinkStep {
  return {
    state: { phase: 'connecting', failures, ...place },
    effects: [
      { kind: 'show', state: 'Connecting', relay: place.relay },
      { kind: 'open', relay: place.relay },
      { kind: 'arm', timer: 'auth', ms: config.authTimeoutMs },
    ],
  };
}

function stopped(reason: string, before: LinkEffect[]): LinkStep {
  return {
    state: { phase: 'stopped', reason },
    effects: [...before, { kind: 'show', state: 'Disconnected', reason }],
  };
}

export function relayCount(config: LinkConfig): number {
  return Math.max(1, config.relays ?? 1);
}

/** The address after `from`, wrapping around, skipping distrusted ones (one is always left). */
export function nextRelay(count: number, from: number, distrusted: readonly number[]): number {
  for (let step = 1; step <= count; step++) {
    const candidate = (from + step) % count;
    if (!distrusted.includes(candidate)) return candidate;
  }
  return from;
}

function placeOf(state: Place): Place {
  return { relay: state.relay, distrusted: state.distrusted };
}

function attemptOf(state: Attempt): Attempt {
  return {
    ...(state.terminal !== undefined ? { terminal: state.terminal } : {}),
    ...(state.relayRefused !== undefined ? { relayRefused: state.relayRefused } : {}),
    ...(state.retryAfterMs !== undefined ? { retryAfterMs: state.retryAfterMs } : {}),
  };
}
