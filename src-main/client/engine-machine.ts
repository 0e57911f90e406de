/**
 * The data of the chat engine's state machine: its configuration, state, events and effects, the
 * initial state, and the two questions the driver asks of a state. The reducer over them is
 * engine-state.ts; keeping the vocabulary apart lets the driver and its parts import the types
 * without the transitions.
 */
import type { LivenessOptions } from '../core/link/liveness.js';
import { INITIAL_LINK, type LinkConfig, type LinkState } from './link-lifecycle.js';
import type { LinkCloseCause } from './transport.js';
import type { EngineState } from './types.js';

export interface EngineConfig extends LinkConfig {
  liveness: LivenessOptions;
  keyEstablishmentTimeoutMs: number;
  reconnectSettleMs: number;
  rotationCheckMs: number;
  /** The most a DISCONNECT may take to be signed and written before the link is closed anyway. */
  goodbyeMs: number;
}

export type TimerName =
  | 'auth'
  | 'retry'
  | 'heartbeat'
  | 'key'
  | 'cert-retry'
  | 'settle'
  | 'rekey-fallback'
  | 'held-sweep'
  | 'rotation'
  | 'goodbye';

/** What the session of a connection is doing, from the TLS link to chatting. */
export type SessionStage =
  /** Link open, HELLO / CONNECTION under way, waiting for the first PRESENCE. */
  | { stage: 'login' }
  /** Logged in; certificates named by PRESENCE are on their way. */
  | { stage: 'certificates'; pending: number }
  /** Every certificate settled; no usable key for the roster yet. */
  | { stage: 'keying'; reason: string }
  /** Alone online without a key and nothing to send: shown as Chatting, a key is made on send. */
  | { stage: 'alone' }
  | { stage: 'chatting' };

/** The driver's reading of the key-establishment machine after presence, a roster or a key. */
export interface GroupFacts {
  /** The others online in the latest settled PRESENCE (self excluded). */
  others: readonly string[];
  /** A roster is held, or someone else is online: a key is worth sending under. */
  enoughOnline: boolean;
  needsKey: boolean;
  /** Live and alone online with nothing to send: the key waits for a message or another member. */
  idleAlone: boolean;
  onlineCount: number;
  memberCount: number;
  attempt: number;
  initiator: string | undefined;
  /** The current usable epoch, if any. */
  epoch: number | undefined;
}

export interface EngineMachine {
  link: LinkState;
  /** Present exactly while a connection is open (connecting, online or leaving). */
  session: SessionStage | undefined;
  /** What was last shown (a `state` event): the same state and reason are not shown twice. */
  shown: { state: EngineState; reason: string | undefined };
  timers: readonly TimerName[];
  /** Monotonic ms of the last frame in each direction; online only. */
  liveness: { received: number; sent: number } | undefined;
  /** After a reconnect: the queue waits until these are back, or until `until` (settle timer). */
  settle: { waiting: readonly string[] } | undefined;
  /** Who else was online in the last settled PRESENCE, across reconnects. */
  lastOthers: readonly string[];
  everLoggedIn: boolean;
  /** Login extended to the relay's roster-only window (NoRoster). */
  authExtended: boolean;
  /** Leaving: DISCONNECT being written, then the link being ended. */
  goodbye: 'writing' | 'ending' | undefined;
  /** requestRekey() was asked under this epoch: the fallback runs a round if it is still current. */
  rekeyFrom: number | undefined | null;
  epoch: number | undefined;
  /**
   * Why this machine last closed the link itself, as a code (the reason is words for people): the
   * Reconnecting that follows carries it, so the app never has to read the words.
   */
  closedFor: ConnectionCause | undefined;
}

/**
 * A typed cause a shown state may carry: the relay went silent (heartbeats), or what the socket's
 * error code said of the link's end (transport.ts).
 */
export type ConnectionCause = 'relay-silent' | LinkCloseCause;

export type EngineEvent =
  | { type: 'start' }
  | { type: 'stop'; reason: string }
  | { type: 'closed'; reason: string; random: number; cause?: LinkCloseCause }
  /**
   * The relay refused us (or we refused its certificate: `scope` 'relay'); the close that follows
   * decides what comes next.
   */
  | { type: 'refused'; reason: string; terminal: boolean; scope?: 'relay'; retryAfterMs?: number }
  | { type: 'timer'; timer: TimerName; at: number }
  /** The first PRESENCE of this connection. */
  | { type: 'logged-in'; at: number }
  | { type: 'received'; at: number }
  | { type: 'wrote'; at: number }
  /** A non-fatal NoRoster: the relay waits for a roster, so our login deadline makes room. */
  | { type: 'no-roster' }
  | { type: 'certificates-requested' }
  | { type: 'certificates-pending'; count: number }
  | { type: 'group'; facts: GroupFacts }
  /** The key timer moved to the next initiator (handshake.nextAttempt). */
  | { type: 'attempt'; facts: GroupFacts }
  | { type: 'rekey-requested'; epoch: number | undefined }
  | { type: 'held-for-key'; count: number }
  | { type: 'live' }
  | { type: 'goodbye-written' }
  | { type: 'left' };

export type EngineEffect =
  /** Connect to the relay address at this index of the member's list. */
  | { kind: 'open'; relay: number }
  | { kind: 'close'; reason: string }
  | { kind: 'arm'; timer: TimerName; ms: number; repeat: boolean }
  | { kind: 'cancel'; timer: TimerName }
  | {
      kind: 'show';
      state: EngineState;
      reason?: string;
      retryInMs?: number;
      cause?: ConnectionCause;
      /** On Connecting: the index of the relay address being tried. */
      relay?: number;
    }
  /** Logged in: SYNC with the relay's log (and resend what it never acknowledged). */
  | { kind: 'sync' }
  /** The connection is gone: forget what belonged to it, put unwritten messages back. */
  | { kind: 'session-down' }
  /** Stopped: keys leave memory, counters are saved. */
  | { kind: 'wipe' }
  | { kind: 'send-heartbeat' }
  /** Send queued messages now (canSend holds). */
  | { kind: 'pump' }
  | { kind: 'next-attempt' }
  | { kind: 'retry-certificates' }
  | { kind: 'start-round' }
  | { kind: 'sweep-held' }
  | { kind: 'maybe-rotate' }
  | { kind: 'say-goodbye'; reason: string }
  /** DISCONNECT written (or given up on): flush and close the link, then dispatch `left`. */
  | { kind: 'end-link' };

export interface EngineStep {
  state: EngineMachine;
  effects: EngineEffect[];
  /** Set when the event was illegal in this state; the state is then unchanged. */
  refused?: string;
}

export const INITIAL_ENGINE: EngineMachine = {
  link: INITIAL_LINK,
  session: undefined,
  shown: { state: 'Initialization', reason: undefined },
  timers: [],
  liveness: undefined,
  settle: undefined,
  lastOthers: [],
  everLoggedIn: false,
  authExtended: false,
  goodbye: undefined,
  rekeyFrom: null,
  epoch: undefined,
  closedFor: undefined,
};

/** Queued messages may be signed and written now. */
export function canSend(m: EngineMachine): boolean {
  return m.link.phase === 'online' && m.session?.stage === 'chatting' && m.settle === undefined;
}

/** Logged in on the current connection (not leaving). */
export function isOnline(m: EngineMachine): boolean {
  return m.link.phase === 'online';
}
