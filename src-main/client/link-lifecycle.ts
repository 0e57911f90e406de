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
 */
import type { BackoffOptions } from './backoff.js';

export interface LinkConfig {
  backoff: BackoffOptions;
  /** From opening the socket to the first PRESENCE. */
  authTimeoutMs: number;
}

/** What the current (or last) connection attempt learnt that decides what comes after it. */
interface Attempt {
  /** Retrying is pointless (the relay refused who we are, or its certificate is not the group's). */
  terminal?: string;
  /** The relay said when to come back (RateLimited). */
  retryAfterMs?: number;
}

export type LinkState =
  | { phase: 'idle' }
  | ({ phase: 'connecting'; failures: number } & Attempt)
  | ({ phase: 'online' } & Attempt)
  | { phase: 'waiting'; failures: number; retryInMs: number; reason: string }
  | { phase: 'leaving'; reason: string }
  | { phase: 'stopped'; reason: string }
  | { phase: 'failed'; reason: string };

export type LinkEvent =
  | { type: 'start' }
  /** The first PRESENCE of this session: the relay admitted us. */
  | { type: 'logged-in' }
  /** The relay (or its certificate) refused us; the connection closes next. */
  | { type: 'refused'; reason: string; terminal: boolean; retryAfterMs?: number }
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
  | { kind: 'open' }
  | { kind: 'close'; reason: string }
  | { kind: 'arm'; timer: LinkTimer; ms: number }
  | { kind: 'cancel'; timer: LinkTimer }
  /** Logged in: start heartbeats, SYNC, and whatever else a live session does. */
  | { kind: 'session-up' }
  /** The connection is gone: forget everything that belonged to it. */
  | { kind: 'session-down' }
  /** Send DISCONNECT, flush, close; then dispatch `left`. */
  | { kind: 'say-goodbye'; reason: string }
  | { kind: 'show'; state: LinkShownState; reason?: string; retryInMs?: number };

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
      return connect(config, 0);

    case 'retry-due':
      if (state.phase !== 'waiting') return same(state);
      return connect(config, state.failures);

    case 'logged-in':
      if (state.phase !== 'connecting') return same(state);
      return {
        state: { phase: 'online', ...attemptOf(state) },
        effects: [{ kind: 'cancel', timer: 'auth' }, { kind: 'session-up' }],
      };

    case 'refused': {
      if (state.phase !== 'connecting' && state.phase !== 'online') return same(state);
      const next = { ...state };
      if (event.terminal) next.terminal ??= event.reason;
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
      const failures = state.phase === 'online' ? 0 : state.failures;
      const delay = Math.max(backoffDelay(config.backoff, failures, event.random), state.retryAfterMs ?? 0);
      return {
        state: { phase: 'waiting', failures: failures + 1, retryInMs: delay, reason: event.reason },
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

function connect(config: LinkConfig, failures: number): LinkStep {
  return {
    state: { phase: 'connecting', failures },
    effects: [
      { kind: 'show', state: 'Connecting' },
      { kind: 'open' },
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

function attemptOf(state: Attempt): Attempt {
  return {
    ...(state.terminal !== undefined ? { terminal: state.terminal } : {}),
    ...(state.retryAfterMs !== undefined ? { retryAfterMs: state.retryAfterMs } : {}),
  };
}
