/**
 * The group key establishment of docs/protocol.md, for one member, in both roles:
 *
 *   initiator I = M[attempt mod |M|]:  NONCE_REQUEST (OAEP challenge) to each t ≠ I
 *   target t:                          NONCE_RESPONSE (OAEP_I(challenge ‖ own nonce))
 *   initiator, all echoes checked:     KEY_DISTRIBUTION (digital envelope of every nonce) to each t
 *   everyone:                          K_e = HKDF(nonces in member order, salt(G, e, fingerprints))
 *
 * It owns no sockets and no timers: the engine feeds it verified, schema-checked bodies with the
 * sender's CA-validated name, and gives it a `send` that signs and queues a frame. That keeps the
 * protocol logic testable with an in-memory bus (test/unit/client-key-establishment.test.ts).
 */
import { timingSafeEqual } from 'node:crypto';
import { sealEnvelope } from '../core/crypto/digital-envelope.js';
import { oaepEncrypt, randomBytes as secureRandomBytes } from '../core/crypto/primitives.js';
import type { Certificate } from '../core/pki/certificate.js';
import type { LocalIdentity } from '../core/pki/local-identity.js';
import { decodeJsonBody, encodeJsonBody } from '../core/protocol/json-body.js';
import { KeyMaterialSchema, type BodyOf } from '../core/protocol/schemas.js';
import {
  deriveEpochKey,
  initiatorFor,
  keyDistributionAad,
  NONCE_BYTES,
  nonceRequestLabel,
  nonceResponseLabel,
  type EpochKey,
} from './key-schedule.js';

type HandshakeType = 'NONCE_REQUEST' | 'NONCE_RESPONSE' | 'KEY_DISTRIBUTION' | 'REKEY_REQUEST';

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
  /** The newest epoch this member holds a key for (0 = none). */
  heldEpoch(): number;
  onKey(key: EstablishedKey): void;
  /** Something a person should see (a check failed); benign races are not reported. */
  onProblem(message: string): void;
  randomBytes?: (n: number) => Buffer;
}

interface MembershipView {
  members: string[];
  version: number;
}

interface InitiatorRound {
  epoch: number;
  members: string[];
  challenges: Map<string, Buffer>;
  nonces: Map<string, Buffer>;
  restarts: number;
}

interface AnsweredRequest {
  initiator: string;
  epoch: number;
  members: string[];
  nonce: Buffer;
}

const MAX_ANSWERED = 8;
const MAX_ROUNDS = 3;
const MAX_FUTURE_REQUESTS = 16;
/** Stale-epoch restarts one round may make before it waits for the failover timer instead. */
const MAX_RESTARTS = 4;
/**
 * How far above the highest epoch it has seen a member holding a key lets a REKEY_REQUEST move it.
 * Epochs are capped at 2^53 - 1 and every re-key needs one more: without a bound, one request for
 * the last epoch would leave the group unable to ever re-key again. Legitimate jumps (re-keys
 * missed during an outage) are far smaller; a member without a key (a newcomer) takes any epoch.
 */
export const MAX_EPOCH_STEP = 2 ** 20;

function sameList(a: readonly string[], b: readonly string[]): boolean {
  return a.length === b.length && a.every((x, i) => x === b[i]);
}

export class KeyEstablishment {
  private view: MembershipView | undefined;
  /** Failover counter for the current membership version. */
  private attemptNo = 0;
  /** The highest epoch seen anywhere (held, requested, distributed, asked for). */
  private highestSeen = 0;
  /**
   * Rounds this member runs as initiator, by epoch. A round survives failover: on a slow machine it
   * may finish after the timeout, and the first round to finish wins (a later one only supersedes
   * it with a higher epoch). Discarding it instead could livelock when every round is slow.
   */
  private readonly rounds = new Map<number, InitiatorRound>();
  /** Targets' side: requests answered, by initiator and epoch, until their key arrives. */
  private readonly answered = new Map<string, AnsweredRequest>();
  /** NONCE_REQUESTs for a membership version this member has not seen yet (PRESENCE still on its way). */
  private futureRequests: { sender: string; body: BodyOf<'NONCE_REQUEST'> }[] = [];
  private readonly random: (n: number) => Buffer;

  constructor(private readonly deps: KeyEstablishmentDeps) {
    this.random = deps.randomBytes ?? secureRandomBytes;
  }

  private get self(): string {
    return this.deps.identity.name;
  }

  private get groupId(): string {
    return this.deps.identity.groupId;
  }

  get attempt(): number {
    return this.attemptNo;
  }

  get members(): readonly string[] {
    return this.view?.members ?? [];
  }

  /** Who should run the current attempt. */
  get expectedInitiator(): string | undefined {
    const m = this.view?.members;
    return m && m.length >= 2 ? initiatorFor(m, this.attemptNo) : undefined;
  }

  get highestEpochSeen(): number {
    return Math.max(this.highestSeen, this.deps.heldEpoch());
  }

  get initiating(): boolean {
    return this.rounds.size > 0;
  }

  /**
   * A new membership (sorted names, self included) from a PRESENCE whose certificates are all
   * settled. Abandons a round over the old members and starts one if this member is the initiator.
   */
  setMembership(members: string[], version: number): void {
    const changed = !this.view || this.view.version !== version || !sameList(this.view.members, members);
    this.view = { members, version };
    if (changed) {
      this.attemptNo = 0;
      this.rounds.clear();
    }
    const waiting = this.futureRequests;
    this.futureRequests = [];
    if (changed && this.expectedInitiator === this.self) this.startRound();
    for (const r of waiting) this.onNonceRequest(r.sender, r.body);
  }

  /** The session ended: nothing in flight can complete. */
  reset(): void {
    this.view = undefined;
    this.rounds.clear();
    this.answered.clear();
    this.futureRequests = [];
    this.attemptNo = 0;
  }

  /** Failover: the attempt produced no key in time; the next member in M takes over. */
  nextAttempt(): void {
    this.attemptNo++;
    if (this.expectedInitiator === this.self) this.startRound();
  }

  /** Starts a round with this member as initiator (its attempt, a failover, or a requested re-key). */
  startRound(minEpoch = 0, restarts = 0): boolean {
    const view = this.view;
    if (!view || view.members.length < 2 || !view.members.includes(this.self)) return false;
    const epoch = Math.max(this.highestEpochSeen + 1, minEpoch);
    this.highestSeen = Math.max(this.highestSeen, epoch);
    const round: InitiatorRound = {
      epoch,
      members: [...view.members],
      challenges: new Map(),
      nonces: new Map(),
      restarts,
    };
    for (const t of round.members) {
      if (t === this.self) continue;
      const cert = this.deps.certificateOf(t);
      if (!cert) {
        this.deps.onProblem(`cannot start epoch ${epoch}: no validated certificate for ${t}`);
        return false;
      }
      const challenge = this.random(NONCE_BYTES);
      round.challenges.set(t, challenge);
      const sealed = oaepEncrypt(
        cert.publicKey,
        challenge,
        nonceRequestLabel(this.groupId, epoch, this.self, t),
      );
      this.deps.send('NONCE_REQUEST', t, {
        epoch,
        membershipVersion: view.version,
        members: round.members,
        challenge: sealed,
      });
    }
    this.rounds.set(epoch, round);
    for (const e of this.rounds.keys()) if (this.rounds.size > MAX_ROUNDS) this.rounds.delete(e);
    return true;
  }

  /** Target side, step 2. */
  onNonceRequest(sender: string, body: BodyOf<'NONCE_REQUEST'>): void {
    const view = this.view;
    if (!view || body.membershipVersion > view.version) {
      // The initiator saw a PRESENCE that is still on its way to us; answer once it is here.
      if (this.futureRequests.length < MAX_FUTURE_REQUESTS) this.futureRequests.push({ sender, body });
      return;
    }
    if (!sameList(body.members, view.members)) return; // a round over an older membership: superseded
    if (!body.members.includes(sender) || !body.members.includes(this.self) || sender === this.self) {
      this.deps.onProblem(
        `NONCE_REQUEST from ${sender} for epoch ${body.epoch} has an inconsistent member list`,
      );
      return;
    }
    const key = `${sender}\0${body.epoch}`;
    if (this.answered.has(key)) return; // a duplicate (or a replay): the first answer stands
    const held = this.deps.heldEpoch();
    let answeredByOther = 0;
    for (const a of this.answered.values())
      if (a.epoch >= body.epoch) answeredByOther = Math.max(answeredByOther, a.epoch);
    if (body.epoch <= held || answeredByOther > 0) {
      const minEpoch = Math.max(held, answeredByOther, body.epoch) + 1;
      this.highestSeen = Math.max(this.highestSeen, minEpoch - 1);
      this.deps.send('REKEY_REQUEST', sender, { minEpoch, reason: 'stale-epoch' });
      return;
    }
    const initiatorCert = this.deps.certificateOf(sender);
    if (!initiatorCert) {
      this.deps.onProblem(`NONCE_REQUEST from ${sender}, whose certificate is not validated`);
      return;
    }
    let challenge: Buffer;
    try {
      challenge = this.deps.identity.decrypt(
        body.challenge,
        nonceRequestLabel(this.groupId, body.epoch, sender, this.self),
      );
    } catch {
      this.deps.onProblem(`the challenge from ${sender} for epoch ${body.epoch} does not decrypt`);
      return;
    }
    if (challenge.length !== NONCE_BYTES) {
      this.deps.onProblem(`the challenge from ${sender} for epoch ${body.epoch} is not ${NONCE_BYTES} bytes`);
      return;
    }
    this.highestSeen = Math.max(this.highestSeen, body.epoch);
    const nonce = this.random(NONCE_BYTES);
    this.remember({ initiator: sender, epoch: body.epoch, members: [...body.members], nonce });
    const sealed = oaepEncrypt(
      initiatorCert.publicKey,
      Buffer.concat([challenge, nonce]),
      nonceResponseLabel(this.groupId, body.epoch, this.self, sender),
    );
    challenge.fill(0);
    this.deps.send('NONCE_RESPONSE', sender, { epoch: body.epoch, sealed });
  }

  /** Initiator side, step 3. */
  onNonceResponse(sender: string, body: BodyOf<'NONCE_RESPONSE'>): void {
    const round = this.rounds.get(body.epoch);
    if (!round) return; // from an abandoned round
    const challenge = round.challenges.get(sender);
    if (!challenge || round.nonces.has(sender)) return;
    let opened: Buffer;
    try {
      opened = this.deps.identity.decrypt(
        body.sealed,
        nonceResponseLabel(this.groupId, body.epoch, sender, this.self),
      );
    } catch {
      this.deps.onProblem(`the nonce response of ${sender} for epoch ${body.epoch} does not decrypt`);
      return;
    }
    // Constant time: the echo proves the target could decrypt our challenge.
    if (opened.length !== 2 * NONCE_BYTES || !timingSafeEqual(opened.subarray(0, NONCE_BYTES), challenge)) {
      this.deps.onProblem(`${sender} did not echo the epoch ${body.epoch} challenge`);
      return;
    }
    round.nonces.set(sender, Buffer.from(opened.subarray(NONCE_BYTES)));
    opened.fill(0);
    if (round.nonces.size < round.challenges.size) return;
    if (round.epoch <= this.deps.heldEpoch()) {
      this.rounds.delete(round.epoch); // finished too late: a newer key is already in use
      return;
    }
    this.distribute(round);
  }

  /** Target side, step 4. */
  onKeyDistribution(sender: string, body: BodyOf<'KEY_DISTRIBUTION'>): void {
    if (body.epoch <= this.deps.heldEpoch()) return; // superseded
    const pending = this.answered.get(`${sender}\0${body.epoch}`);
    if (!pending) {
      this.deps.onProblem(
        `KEY_DISTRIBUTION from ${sender} for epoch ${body.epoch}, which this member never answered`,
      );
      return;
    }
    let plaintext: Buffer;
    try {
      plaintext = this.deps.identity.openEnvelope(
        { wrappedKey: body.wrappedKey, iv: body.iv, ciphertext: body.ciphertext },
        keyDistributionAad(this.groupId, body.epoch, sender, this.self),
      );
    } catch {
      this.deps.onProblem(`the key distribution of ${sender} for epoch ${body.epoch} does not decrypt`);
      return;
    }
    let material;
    try {
      material = decodeJsonBody(KeyMaterialSchema, plaintext, 'key material');
    } finally {
      plaintext.fill(0);
    }
    const position = pending.members.indexOf(this.self);
    const ownNonce = material.nonces[position];
    if (
      material.groupId !== this.groupId ||
      material.epoch !== body.epoch ||
      material.initiator !== sender ||
      !sameList(material.members, pending.members) ||
      material.nonces.length !== pending.members.length ||
      !ownNonce ||
      !timingSafeEqual(ownNonce, pending.nonce)
    ) {
      this.deps.onProblem(
        `the key material of ${sender} for epoch ${body.epoch} does not match what this member answered`,
      );
      return;
    }
    if (!this.view || !sameList(this.view.members, material.members)) return; // membership moved on
    for (const [k, a] of this.answered) if (a.epoch <= body.epoch) this.answered.delete(k);
    this.finish(body.epoch, material.members, sender, material.nonces);
  }

  onRekeyRequest(sender: string, body: BodyOf<'REKEY_REQUEST'>): void {
    if (this.deps.heldEpoch() > 0 && body.minEpoch > this.highestEpochSeen + MAX_EPOCH_STEP) {
      this.deps.onProblem(
        `REKEY_REQUEST from ${sender} for epoch ${body.minEpoch}, too far above ${this.highestEpochSeen}`,
      );
      return;
    }
    this.highestSeen = Math.max(this.highestSeen, body.minEpoch - 1);
    if (body.reason === 'stale-epoch') {
      let stale: InitiatorRound | undefined;
      for (const r of this.rounds.values()) {
        if (r.epoch >= body.minEpoch) return; // a round at or above it is already running
        if (r.challenges.has(sender)) stale = r;
      }
      if (!stale) return;
      this.rounds.delete(stale.epoch);
      if (stale.restarts < MAX_RESTARTS) this.startRound(body.minEpoch, stale.restarts + 1);
      return;
    }
    // requested / key-missing: the sender wants a fresh epoch over the current members.
    if (!this.view?.members.includes(sender)) return;
    this.startRound(body.minEpoch);
  }

  private distribute(round: InitiatorRound): void {
    // This round's key supersedes every older round of ours.
    for (const e of [...this.rounds.keys()]) if (e <= round.epoch) this.rounds.delete(e);
    const ownNonce = this.random(NONCE_BYTES);
    const nonces = round.members.map((m) => (m === this.self ? ownNonce : (round.nonces.get(m) as Buffer)));
    const plaintext = encodeJsonBody({
      groupId: this.groupId,
      epoch: round.epoch,
      initiator: this.self,
      members: round.members,
      nonces,
    });
    for (const t of round.members) {
      if (t === this.self) continue;
      const cert = this.deps.certificateOf(t);
      if (!cert) {
        this.deps.onProblem(`cannot finish epoch ${round.epoch}: the certificate of ${t} is gone`);
        return;
      }
      const envelope = sealEnvelope(
        cert.publicKey,
        plaintext,
        keyDistributionAad(this.groupId, round.epoch, this.self, t),
      );
      this.deps.send('KEY_DISTRIBUTION', t, { epoch: round.epoch, ...envelope });
    }
    plaintext.fill(0);
    this.finish(round.epoch, round.members, this.self, nonces);
  }

  private finish(epoch: number, members: string[], initiator: string, nonces: Buffer[]): void {
    const fingerprints: Buffer[] = [];
    for (const m of members) {
      const cert = this.deps.certificateOf(m);
      if (!cert) {
        this.deps.onProblem(`cannot derive epoch ${epoch}: no validated certificate for ${m}`);
        return;
      }
      fingerprints.push(cert.fingerprint);
    }
    const derived = deriveEpochKey({ groupId: this.groupId, epoch, fingerprints, nonces });
    for (const n of nonces) n.fill(0);
    this.highestSeen = Math.max(this.highestSeen, epoch);
    this.deps.onKey({ epoch, members: [...members], initiator, derived });
  }

  private remember(a: AnsweredRequest): void {
    this.answered.set(`${a.initiator}\0${a.epoch}`, a);
    while (this.answered.size > MAX_ANSWERED) {
      const oldest = this.answered.keys().next().value;
      if (oldest === undefined) break;
      this.answered.delete(oldest);
    }
  }
}
