/**
 * What the key-establishment machine (key-establishment.ts) holds between frames: the rounds it
 * runs as initiator and the requests it answered as a target. The challenges and nonces in them
 * are secrets until the key is derived, so every way out of a round (key derived, superseded,
 * abandoned for a new membership, evicted, session reset) goes through here and zeroes them.
 */
import type { Certificate } from '../core/pki/certificate.js';
import type { LocalIdentity } from '../core/pki/local-identity.js';
import type { BodyOf } from '../core/protocol/schemas.js';
import type { EpochKey } from './key-schedule.js';

export type HandshakeType = 'NONCE_REQUEST' | 'NONCE_RESPONSE' | 'KEY_DISTRIBUTION' | 'REKEY_REQUEST';

/** The error codes a key-establishment problem is reported with (see errors.ts). */
export type KeyProblemCode = 'KeyEstablishment' | 'EpochOutOfRange' | 'RekeyRateLimited' | 'StateStoreFailed';

export interface EstablishedKey {
  epoch: number;
  members: string[];
  initiator: string;
  derived: EpochKey;
}

export interface KeyEstablishmentDeps {
  identity: LocalIdentity;
  /** The CA-validated certificate the current PRESENCE names for a member. */
  certificateOf(name: string): Certificate | undefined;
  /** Signs and queues a targeted frame; order of calls is the order on the wire. */
  send<T extends HandshakeType>(type: T, target: string, body: BodyOf<T>): void;
  /** The highest epoch this member holds or held a key for in this process (0 = none). */
  heldEpoch(): number;
  onKey(key: EstablishedKey): void;
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
  /** Clock for the re-key request rate limit (ms). */
  now?: () => number;
}

export interface InitiatorRound {
  epoch: number;
  members: string[];
  challenges: Map<string, Buffer>;
  nonces: Map<string, Buffer>;
  restarts: number;
}

export interface AnsweredRequest {
  initiator: string;
  epoch: number;
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

  /** Ends the rounds that match, zeroing what they hold. */
  drop(match: (r: InitiatorRound) => boolean = () => true): void {
    for (const [e, r] of [...this.byEpoch]) {
      if (!match(r)) continue;
      zeroRound(r);
      this.byEpoch.delete(e);
    }
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
