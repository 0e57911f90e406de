/**
 * What the key-establishment machine (key-establishment.ts) holds between frames: the rounds it
 * runs as initiator and the requests it answered as a target. The challenges and nonces in them
 * are secrets until the key is derived, so every way out of a round (key derived, superseded,
 * abandoned for a new membership, evicted, session reset) goes through here and zeroes them.
 */
import type { Certificate } from '../core/pki/certificate.js';
import type { RotationPolicy } from './epoch-policy.js';
import type { LocalIdentity } from '../core/pki/local-identity.js';
import type { BodyOf } from '../core/protocol/schemas.js';
import type { EpochKey } from './key-schedule.js';
import type { PrekeyAccess } from './handshake-seal.js';

export type HandshakeType = 'NONCE_REQUEST' | 'NONCE_RESPONSE' | 'KEY_DISTRIBUTION' | 'REKEY_REQUEST';

/** The error codes a key-establishment problem is reported with (see errors.ts). */
export type KeyProblemCode =
  'KeyEstablishment' | 'KeyConflict' | 'EpochOutOfRange' | 'RekeyRateLimited' | 'StateStoreFailed';

export interface EstablishedKey {
  epoch: number;
  /** M: every roster member the key was sealed for, online or not (sorted). */
  members: string[];
  /** C ⊆ M: who gave a nonce (the initiator and the online members that answered), sorted. */
  contributors: string[];
  initiator: string;
  /** The roster version M was taken from (0 = no roster: the transitional presence fallback). */
  rosterVersion: number;
  /**
   * A key for an older roster version (catch-up through stored frames after being offline), or for
   * an epoch below the current one: it may decrypt, it is never used to send.
   */
  readOnly: boolean;
  derived: EpochKey;
}

/** What the machine needs to know of the key the member chats under. */
export interface CurrentKeyInfo {
  epoch: number;
  rosterVersion: number;
  initiator: string;
  /** When it was installed (ms, the injected clock) and how many messages it carried: rotation. */
  establishedAt: number;
  messages: number;
}

/** A key the member holds for one epoch, as far as the machine may look at it. */
export interface HeldKey {
  initiator: string;
  /** Constant-time comparison with a freshly derived key (conflict detection). */
  matches(key: Buffer): boolean;
}

export interface KeyEstablishmentDeps {
  identity: LocalIdentity;
  /**
   * Prekeys (DESIGN.md §10.8): secrets go sealed with HPKE to a receiver's valid prekey, RSA-OAEP
   * otherwise; HPKE-sealed ones to us open with our private prekey. Without it: RSA-OAEP only.
   */
  prekeys?: PrekeyAccess;
  /**
   * The CA-validated certificate the current PRESENCE names for a member. Used without a roster
   * (the transitional presence fallback); with one, the roster's certificates are used.
   */
  certificateOf(name: string): Certificate | undefined;
  /** Signs and queues a targeted frame; order of calls is the order on the wire. */
  send<T extends HandshakeType>(type: T, target: string, body: BodyOf<T>): void;
  /** The highest epoch this member holds or held a key for in this process (0 = none). */
  heldEpoch(): number;
  /** The key the member chats under now, if any. */
  currentKey(): CurrentKeyInfo | undefined;
  /** The key held for `epoch` (current or read-only), if any. */
  heldKey(epoch: number): HeldKey | undefined;
  onKey(key: EstablishedKey): void;
  /**
   * Whether this member has something to send. Alone online it keys only then (default: always):
   * two members that connect at the same moment may each find themselves alone, and two keys made
   * alone for one epoch conflict; once both are online the deterministic initiator keys once.
   */
  wantsToSend?(): boolean;
  /**
   * The frame being handled was stored before this session began (the log's backlog, before
   * LIVE). What this member answered in an earlier run is not kept, so a stored key that names it
   * as a contributor cannot be held against its answers: it is accepted on the initiator's
   * signature alone (docs/security.md). Live frames are always checked.
   */
  replayingBacklog?(): boolean;
  /**
   * This session follows the relay's log (it sent SYNC): every KEY_DISTRIBUTION sealed for it
   * reaches it, stored or live, so at LIVE without a key it waits one attempt before asking.
   */
  followsLog?(): boolean;
  /** Something a person should see (a check failed); benign races are not reported. */
  onProblem(message: string, code: KeyProblemCode): void;
  randomBytes?: (n: number) => Buffer;
  /** The highest epoch this member stored before (its persisted state; 0 = none). */
  initialHighestEpoch?: number;
  /**
   * Makes `epoch` the stored highest epoch. Called before the epoch is used (a request sent or
   * answered, a key derived); a throw means it was not stored, and the epoch is not used.
   */
  persistEpoch?(epoch: number): void;
  /** Clock (ms) for the re-key request rate limit, rotation and round ages. */
  now?: () => number;
  /** Rotation period and message bound (defaults: 24 h, 100,000; epoch-policy.ts). */
  rotation?: Partial<RotationPolicy>;
  /** A round of ours older than this no longer holds back a rotation or a requested key (ms). */
  roundTimeoutMs?: number;
}

export interface InitiatorRound {
  epoch: number;
  rosterVersion: number;
  /** M: everyone the key will be sealed for. */
  members: string[];
  /** The failover attempt it was started in, and when (ms). */
  attempt: number;
  startedAt: number;
  /** One challenge per online target t ≠ I at the start; the round completes when all answered. */
  challenges: Map<string, Buffer>;
  nonces: Map<string, Buffer>;
  restarts: number;
  /**
   * Started because this member had no usable key. Another round's key serves that purpose just as
   * well, so such a round is dropped once one arrives (a member that comes online during a round it
   * could not see would otherwise cross it with a second epoch).
   */
  forMissingKey: boolean;
}

export interface AnsweredRequest {
  initiator: string;
  epoch: number;
  rosterVersion: number;
  members: string[];
  nonce: Buffer;
}

export function zeroRound(round: InitiatorRound): void {
  for (const c of round.challenges.values()) c.fill(0);
  for (const n of round.nonces.values()) n.fill(0);
}

/**
 * Rounds this member runs as initiator, by epoch. A round survives failover: on a slow machine it
 * may finish after the timeout, and the first round to finish wins (a later one only supersedes
 * it with a higher epoch). Discarding it instead could livelock when every round is slow.
 */
export class Rounds {
  private readonly byEpoch = new Map<number, InitiatorRound>();
  /**
   * For rounds dropped before every target answered: the targets still to answer, by epoch. Their
   * answer may yet come (a stale-epoch REKEY_REQUEST, say) and is an answer, not a request of its own.
   */
  private readonly unanswered = new Map<number, Set<string>>();

  constructor(private readonly max: number) {}

  get size(): number {
    return this.byEpoch.size;
  }

  get(epoch: number): InitiatorRound | undefined {
    return this.byEpoch.get(epoch);
  }

  values(): IterableIterator<InitiatorRound> {
    return this.byEpoch.values();
  }

  /** Adds a round (replacing one at the same epoch); the oldest beyond `max` are dropped. */
  add(round: InitiatorRound): void {
    const replaced = this.byEpoch.get(round.epoch);
    if (replaced) zeroRound(replaced);
    this.byEpoch.set(round.epoch, round);
    for (const [e, r] of this.byEpoch) {
      if (this.byEpoch.size <= this.max) break;
      zeroRound(r);
      this.byEpoch.delete(e);
    }
  }

  /** Ends the rounds that match, zeroing what they hold and noting who had not answered yet. */
  drop(match: (r: InitiatorRound) => boolean = () => true): void {
    for (const [e, r] of [...this.byEpoch]) {
      if (!match(r)) continue;
      const waiting = [...r.challenges.keys()].filter((t) => !r.nonces.has(t));
      if (waiting.length > 0) this.unanswered.set(e, new Set(waiting));
      zeroRound(r);
      this.byEpoch.delete(e);
    }
    for (const e of this.unanswered.keys()) {
      if (this.unanswered.size <= this.max * 2) break;
      this.unanswered.delete(e);
    }
  }

  /** The round distributed its key: it ends with nobody left to answer. */
  complete(round: InitiatorRound): void {
    if (this.byEpoch.get(round.epoch) !== round) return;
    // Its nonces go on into the key (the caller zeroes them); its challenges are spent.
    for (const c of round.challenges.values()) c.fill(0);
    this.byEpoch.delete(round.epoch);
  }

  /**
   * True (once) if `target` still owed an answer to a dropped round of ours at an epoch up to
   * `atMost`, the highest such: this frame is that answer.
   */
  lateAnswer(target: string, atMost: number): boolean {
    let best: number | undefined;
    for (const [e, waiting] of this.unanswered) {
      if (e <= atMost && waiting.has(target) && (best === undefined || e > best)) best = e;
    }
    if (best === undefined) return false;
    const waiting = this.unanswered.get(best) as Set<string>;
    waiting.delete(target);
    if (waiting.size === 0) this.unanswered.delete(best);
    return true;
  }

  secrets(): Buffer[] {
    return [...this.byEpoch.values()].flatMap((r) => [...r.challenges.values(), ...r.nonces.values()]);
  }
}

/** Targets' side: requests answered, by initiator and epoch, until their key arrives. */
export class AnsweredRequests {
  private readonly byKey = new Map<string, AnsweredRequest>();

  constructor(private readonly max: number) {}

  get(initiator: string, epoch: number): AnsweredRequest | undefined {
    return this.byKey.get(`${initiator}\0${epoch}`);
  }

  values(): IterableIterator<AnsweredRequest> {
    return this.byKey.values();
  }

  remember(a: AnsweredRequest): void {
    this.byKey.set(`${a.initiator}\0${a.epoch}`, a);
    while (this.byKey.size > this.max) {
      const oldest = this.byKey.entries().next().value;
      if (oldest === undefined) break;
      oldest[1].nonce.fill(0);
      this.byKey.delete(oldest[0]);
    }
  }

  /** Forgets (zeroed) every answer at or below `epoch` (default: all). */
  drop(epoch = Infinity): void {
    for (const [k, a] of [...this.byKey]) {
      if (a.epoch > epoch) continue;
      a.nonce.fill(0);
      this.byKey.delete(k);
    }
  }

  secrets(): Buffer[] {
    return [...this.byKey.values()].map((a) => a.nonce);
  }
}
