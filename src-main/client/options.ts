/** Tunables of the chat engine. Defaults suit people chatting; tests shorten the timeouts. */
import { DEFAULT_LIVENESS } from '../core/link/liveness.js';
import type { LocalIdentity } from '../core/pki/local-identity.js';
import type { Roster } from '../core/roster/index.js';
import { DEFAULT_BACKOFF, type BackoffOptions } from './backoff.js';
import { MemoryRosterStore, type RosterStore } from './roster-tracker.js';
import { DEFAULT_ROTATION_MAX_MESSAGES, DEFAULT_ROTATION_PERIOD_MS } from './epoch-policy.js';
import type { StoredEpochKey } from './state/epoch-keys.js';
import type { RelayAddress } from './engine-types.js';
import { systemClock, type Clock } from './clock.js';
import { connectTls, type ConnectRelay } from './engine-transport.js';
import type { LogHistory } from './log-follower.js';
import type { PrekeyStore } from './prekeys.js';
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
  /** The epoch keys kept before (oldest first); without it nothing is restored. */
  loadKeys?(): StoredEpochKey[];
  /** Keeps an epoch key (the store keeps the newest 64); durable when it returns. */
  saveKey?(key: StoredEpochKey): void;
  /**
   * Erases a stored epoch key (overwritten, then deleted): no retained frame under it can still
   * arrive (engine-keys.ts `eraseRetiredKeys`). Durable when it returns.
   */
  eraseKey?(epoch: number): void;
  /** How many messages an epoch carried (rotation by count across restarts). */
  saveMessages?(epoch: number, messages: number): void;
  /** Reserves our own sequence numbers of an epoch up to `seq`; durable when it returns. */
  saveSentSeq?(epoch: number, seq: number): void;
  /**
   * The highest sequence number received per sender under `epoch`, from the history: a restored
   * key's replay window resumes there instead of at 0.
   */
  receivedSeqs?(epoch: number): ReadonlyMap<string, number>;
}

/** An EpochStore that lives as long as the process (the default: nothing survives a restart). */
export class MemoryEpochStore implements EpochStore {
  private readonly keys = new Map<number, StoredEpochKey>();

  constructor(private highest = 0) {}

  load(): number {
    return this.highest;
  }

  save(epoch: number): void {
    this.highest = Math.max(this.highest, epoch);
  }

  loadKeys(): StoredEpochKey[] {
    return [...this.keys.values()]
      .sort((a, b) => a.epoch - b.epoch)
      .map((k) => ({
        ...k,
        key: Buffer.from(k.key),
        members: [...k.members],
        contributors: [...k.contributors],
      }));
  }

  saveKey(key: StoredEpochKey): void {
    if (!key.readOnly) for (const k of this.keys.values()) if (k.epoch < key.epoch) k.readOnly = true;
    this.keys.set(key.epoch, { ...key, key: Buffer.from(key.key) });
    const keep = [...this.keys.keys()].sort((a, b) => b - a).slice(0, 64);
    for (const e of [...this.keys.keys()]) if (!keep.includes(e)) this.keys.delete(e);
  }

  saveMessages(epoch: number, messages: number): void {
    const k = this.keys.get(epoch);
    if (k) k.messages = messages;
  }

  eraseKey(epoch: number): void {
    this.keys.get(epoch)?.key.fill(0);
    this.keys.delete(epoch);
  }

  saveSentSeq(epoch: number, seq: number): void {
    const k = this.keys.get(epoch);
    if (k) k.sentSeq = Math.max(k.sentSeq, seq);
  }
}

export interface ChatEngineOptions {
  identity: LocalIdentity;
  /**
   * The relay, or several (a cluster's nodes, in the order to try them): the engine stays on the
   * one that works and on loss goes on to the next, wrapping around (link-lifecycle.ts).
   */
  relay: RelayAddress | readonly RelayAddress[];
  /** An attempt that has produced no key by then hands over to the next initiator. */
  keyEstablishmentTimeoutMs?: number;
  /** How long the previous epoch stays acceptable after a re-key. */
  retiredEpochGraceMs?: number;
  /**
   * After a reconnect, queued messages wait up to this long for the members who were online before
   * the outage to be back: a v1 relay does not store and forward, so sending to whoever returned
   * first would leave the later ones without what was typed meanwhile. (Not about keys: a
   * reconnect never re-keys.) Once sessions SYNC with a logging relay this is no longer needed.
   */
  reconnectSettleMs?: number;
  /**
   * The group's roster to start with (from a file or the member store). Until a roster is given,
   * here or through ChatEngine.useRoster, M is the members of PRESENCE (transitional fallback).
   */
  roster?: Roster;
  /** Rotation: a new epoch once the current one is this old (default 24 h)… */
  rotationPeriodMs?: number;
  /** …or has carried this many messages (default 100,000). */
  rotationMaxMessages?: number;
  /** How often the online initiator checks whether rotation is due (default 60 s). */
  rotationCheckMs?: number;
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
  /**
   * Where this member's X25519 prekeys (and the others' latest) are kept (DESIGN.md §10.8; the
   * CLI passes its MemberStateStore). With it the engine publishes a signed prekey and rotates
   * and erases it on schedule; without it, it publishes none (others seal to it with RSA-OAEP).
   */
  prekeyStore?: PrekeyStore;
  /** A new prekey this long after the current one became valid (default 7 days). */
  prekeyRotationMs?: number;
  /**
   * How long the relay keeps a stored frame (its retention, default 30 days): a retired private
   * prekey is erased this long after its successor was published, an epoch key this long after
   * the next epoch's key was established (engine-keys.ts).
   */
  prekeyRetentionMs?: number;
  /**
   * Clock (ms) for the REKEY_REQUEST rate limit and rotation by age; tests inject a fake one.
   * Defaults to `clock.now`.
   */
  now?: () => number;
  /** Every timer and reading of time the engine makes (default: the real clock). */
  clock?: Clock;
  /** How the engine reaches the relay (default: the TLS link). */
  connect?: ConnectRelay;
  /** In [0, 1): the backoff's jitter (default Math.random). */
  random?: () => number;
  unsafeTestHooks?: UnsafeTestHooks;
}

export type ResolvedOptions = Required<
  Omit<
    ChatEngineOptions,
    | 'unsafeTestHooks'
    | 'backoff'
    | 'history'
    | 'roster'
    | 'relay'
    | 'prekeyStore'
    | 'prekeyRotationMs'
    | 'prekeyRetentionMs'
  >
> & {
  /** At least one. */
  relays: readonly RelayAddress[];
  backoff: BackoffOptions;
  unsafeTestHooks: UnsafeTestHooks | undefined;
  roster: Roster | undefined;
};

export function resolveOptions(o: ChatEngineOptions): ResolvedOptions {
  const clock = o.clock ?? systemClock();
  const relays = isAddressList(o.relay) ? [...o.relay] : [o.relay];
  if (relays.length === 0) throw new RangeError('the engine needs at least one relay address');
  return {
    identity: o.identity,
    relays,
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
    clock,
    now: o.now ?? (() => clock.now()),
    connect: o.connect ?? connectTls,
    random: o.random ?? Math.random,
    roster: o.roster,
    rotationPeriodMs: o.rotationPeriodMs ?? DEFAULT_ROTATION_PERIOD_MS,
    rotationMaxMessages: o.rotationMaxMessages ?? DEFAULT_ROTATION_MAX_MESSAGES,
    rotationCheckMs: o.rotationCheckMs ?? 60_000,
    unsafeTestHooks: o.unsafeTestHooks,
  };
}

function isAddressList(r: RelayAddress | readonly RelayAddress[]): r is readonly RelayAddress[] {
  return Array.isArray(r);
}
