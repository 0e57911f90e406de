/** Tunables of the chat engine. Defaults suit people chatting; tests shorten the timeouts. */
import { DEFAULT_LIVENESS } from '../core/link/liveness.js';
import type { LocalIdentity } from '../core/pki/local-identity.js';
import { DEFAULT_BACKOFF, type BackoffOptions } from './backoff.js';
import { MemoryRosterStore, type RosterStore } from './roster-tracker.js';
import type { RelayAddress } from './engine-types.js';
import type { LogHistory } from './log-follower.js';
import { DEFAULT_SEQUENCE_WINDOW } from './sequence-window.js';

/**
 * TEST ONLY. Lets a test observe what a real deployment must never reveal, to prove properties such
 * as "a departed member's old key cannot read what follows". Neither the CLI nor the desktop app
 * ever sets it; nothing else in the engine exports key material.
 */
export interface UnsafeTestHooks {
  /** Receives a copy of each group key as it is installed. */
  onGroupKey?(epoch: number, key: Buffer): void;
}

/**
 * Where the highest epoch this member has seen is kept across restarts, so that epoch numbers
 * never repeat (DESIGN.md §10.2). The CLI and the app pass a MemberStateStore
 * (state/member-store.ts); tests may pass an in-memory one.
 */
export interface EpochStore {
  /** The highest epoch saved before (0 = none). */
  load(): number;
  /**
   * Saves `epoch` if it is above the saved one (never lowers it); durable when it returns. The
   * engine calls it before it uses a new epoch; a throw means the epoch is not used.
   */
  save(epoch: number): void;
}

/** An EpochStore that lives as long as the process (the default: nothing survives a restart). */
export class MemoryEpochStore implements EpochStore {
  constructor(private highest = 0) {}

  load(): number {
    return this.highest;
  }

  save(epoch: number): void {
    this.highest = Math.max(this.highest, epoch);
  }
}

export interface ChatEngineOptions {
  identity: LocalIdentity;
  relay: RelayAddress;
  /** An attempt that has produced no key by then hands over to the next initiator. */
  keyEstablishmentTimeoutMs?: number;
  /** How long the previous epoch stays acceptable after a re-key. */
  retiredEpochGraceMs?: number;
  /**
   * After a reconnect, queued messages wait up to this long for the members of the last key to be
   * back: the relay does not store and forward, so sending to whoever returned first would leave
   * the later ones without what was typed during the outage.
   */
  reconnectSettleMs?: number;
  /** From TCP connect to the first PRESENCE. */
  authTimeoutMs?: number;
  connectTimeoutMs?: number;
  backoff?: Partial<BackoffOptions>;
  /** Chat messages signed in parallel ahead of the socket (order on the wire is kept). */
  signPipelineDepth?: number;
  /** Frames kept while their sender's certificate, or their epoch's key, is on its way. */
  maxHeldFrames?: number;
  outboxCapacity?: number;
  /** Stop signing ahead while the socket holds this many unsent bytes. */
  writeHighWaterBytes?: number;
  sequenceWindow?: number;
  /** The largest frame accepted from the relay. */
  maxFrameBytes?: number;
  /** Send a HEARTBEAT after this long without sending anything (core/link/liveness.ts). */
  heartbeatIntervalMs?: number;
  /** A relay that sent nothing for this long is not responding: reconnect. */
  heartbeatTimeoutMs?: number;
  /** Keeps the highest epoch seen across restarts (default: in memory only). */
  epochStore?: EpochStore;
  /**
   * The message history and log position (a MemberStateStore's `history`). With it the engine
   * follows the relay's log (SYNC, STORED, replay) and shows each message once; without it the
   * session is v1: nothing is replayed or kept.
   */
  history?: LogHistory;
  /** Keeps the highest roster seen across restarts (default: in memory only). */
  rosterStore?: RosterStore;
  /** Clock (ms) for the REKEY_REQUEST rate limit; tests inject a fake one. */
  now?: () => number;
  unsafeTestHooks?: UnsafeTestHooks;
}

export type ResolvedOptions = Required<Omit<ChatEngineOptions, 'unsafeTestHooks' | 'backoff' | 'history'>> & {
  backoff: BackoffOptions;
  unsafeTestHooks: UnsafeTestHooks | undefined;
};

export function resolveOptions(o: ChatEngineOptions): ResolvedOptions {
  return {
    identity: o.identity,
    relay: o.relay,
    keyEstablishmentTimeoutMs: o.keyEstablishmentTimeoutMs ?? 5_000,
    retiredEpochGraceMs: o.retiredEpochGraceMs ?? 10_000,
    reconnectSettleMs: o.reconnectSettleMs ?? 5_000,
    authTimeoutMs: o.authTimeoutMs ?? 10_000,
    connectTimeoutMs: o.connectTimeoutMs ?? 10_000,
    backoff: { ...DEFAULT_BACKOFF, ...o.backoff },
    signPipelineDepth: o.signPipelineDepth ?? 16,
    maxHeldFrames: o.maxHeldFrames ?? 1024,
    outboxCapacity: o.outboxCapacity ?? 100_000,
    writeHighWaterBytes: o.writeHighWaterBytes ?? 1024 * 1024,
    sequenceWindow: o.sequenceWindow ?? DEFAULT_SEQUENCE_WINDOW,
    maxFrameBytes: o.maxFrameBytes ?? 1024 * 1024,
    heartbeatIntervalMs: o.heartbeatIntervalMs ?? DEFAULT_LIVENESS.intervalMs,
    heartbeatTimeoutMs: o.heartbeatTimeoutMs ?? DEFAULT_LIVENESS.timeoutMs,
    epochStore: o.epochStore ?? new MemoryEpochStore(),
    rosterStore: o.rosterStore ?? new MemoryRosterStore(),
    now: o.now ?? Date.now,
    unsafeTestHooks: o.unsafeTestHooks,
  };
}
