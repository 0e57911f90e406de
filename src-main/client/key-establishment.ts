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
import { epochLimit, REKEY_REQUEST_INTERVAL_MS, RekeyRateLimiter } from './epoch-policy.js';
import {
  AnsweredRequests,
  Rounds,
  zeroRound,
  type AnsweredRequest,
  type HandshakeType,
  type InitiatorRound,
  type KeyEstablishmentDeps,
  type KeyProblemCode,
} from './key-establishment-state.js';

export { EPOCH_CEILING, MAX_EPOCH_STEP } from './epoch-policy.js';

export type { EstablishedKey, KeyEstablishmentDeps, KeyProblemCode } from './key-establishment-state.js';

interface MembershipView {
  members: string[];
  version: number;
}

const MAX_ANSWERED = 8;
const MAX_ROUNDS = 3;
const MAX_FUTURE_REQUESTS = 16;
/** Stale-epoch restarts one round may make before it waits for the failover timer instead. */
const MAX_RESTARTS = 4;
const REKEY_INTERVAL_S = REKEY_REQUEST_INTERVAL_MS / 1000;

function sameList(a: readonly string[], b: readonly string[]): boolean {
  return a.length === b.length && a.every((x, i) => x === b[i]);
}

export class KeyEstablishment {
  private view: MembershipView | undefined;
  /** Failover counter for the current membership version. */
  private attemptNo = 0;
  /** The highest epoch seen anywhere (held, requested, distributed, asked for). */
  private highestSeen = 0;
  private readonly rounds = new Rounds(MAX_ROUNDS);
  private readonly answered = new AnsweredRequests(MAX_ANSWERED);
  /** NONCE_REQUESTs for a membership version this member has not seen yet (PRESENCE still on its way). */
  private futureRequests: { sender: string; body: BodyOf<'NONCE_REQUEST'> }[] = [];
  private readonly random: (n: number) => Buffer;
  /** The highest epoch a key was derived for here, or that was stored before (never goes down). */
  private keyedFloor: number;
  private readonly rekeyLimiter: RekeyRateLimiter;

  constructor(private readonly deps: KeyEstablishmentDeps) {
    this.random = deps.randomBytes ?? secureRandomBytes;
    const stored = deps.initialHighestEpoch ?? 0;
    this.highestSeen = stored;
    this.keyedFloor = stored;
    this.rekeyLimiter = new RekeyRateLimiter(deps.now ?? Date.now);
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

  /** The highest epoch a frame may move this member to (see epoch-policy.ts). */
  get epochLimit(): number {
    return epochLimit(Math.max(this.deps.heldEpoch(), this.keyedFloor), this.highestEpochSeen);
  }

  /**
   * TEST ONLY: the challenge and nonce buffers this machine holds right now, so a test can check
   * they are zeroed once a round ends however it ends. Never used by the engine.
   */
  heldSecretsForTest(): Buffer[] {
    return [...this.rounds.secrets(), ...this.answered.secrets()];
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
      this.rounds.drop();
    }
    const waiting = this.futureRequests;
    this.futureRequests = [];
    if (changed && this.expectedInitiator === this.self) this.startRound();
    for (const r of waiting) this.onNonceRequest(r.sender, r.body);
  }

  /** The session ended: nothing in flight can complete. */
  reset(): void {
    this.view = undefined;
    this.rounds.drop();
    this.answered.drop();
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
    if (epoch > this.epochLimit) {
      this.problem(
        `not starting epoch ${epoch}: more than allowed above ${this.highestEpochSeen} (limit ${this.epochLimit})`,
        'EpochOutOfRange',
      );
      return false;
    }
    if (!this.raise(epoch)) return false; // write-ahead: stored before any request leaves
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
        this.problem(`cannot start epoch ${epoch}: no validated certificate for ${t}`);
        zeroRound(round);
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
    this.rounds.add(round);
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
      this.problem(`NONCE_REQUEST from ${sender} for epoch ${body.epoch} has an inconsistent member list`);
      return;
    }
    if (!this.withinLimit('NONCE_REQUEST', sender, body.epoch)) return;
    if (this.answered.get(sender, body.epoch)) return; // a duplicate (or a replay): the first answer stands
    // Epochs of keys held before (also before a restart) are never answered again: no epoch repeats.
    const held = Math.max(this.deps.heldEpoch(), this.keyedFloor);
    let answeredByOther = 0;
    for (const a of this.answered.values())
      if (a.epoch >= body.epoch) answeredByOther = Math.max(answeredByOther, a.epoch);
    if (body.epoch <= held || answeredByOther > 0) {
      const minEpoch = Math.max(held, answeredByOther, body.epoch) + 1;
      this.deps.send('REKEY_REQUEST', sender, { minEpoch, reason: 'stale-epoch' });
      return;
    }
    const initiatorCert = this.deps.certificateOf(sender);
    if (!initiatorCert) {
      this.problem(`NONCE_REQUEST from ${sender}, whose certificate is not validated`);
      return;
    }
    let challenge: Buffer;
    try {
      challenge = this.deps.identity.decrypt(
        body.challenge,
        nonceRequestLabel(this.groupId, body.epoch, sender, this.self),
      );
    } catch {
      this.problem(`the challenge from ${sender} for epoch ${body.epoch} does not decrypt`);
      return;
    }
    let answer: Buffer | undefined;
    try {
      if (challenge.length !== NONCE_BYTES) {
        this.problem(`the challenge from ${sender} for epoch ${body.epoch} is not ${NONCE_BYTES} bytes`);
        return;
      }
      if (!this.raise(body.epoch)) return; // write-ahead: stored before our nonce leaves
      const nonce = this.random(NONCE_BYTES);
      this.answered.remember({ initiator: sender, epoch: body.epoch, members: [...body.members], nonce });
      answer = Buffer.concat([challenge, nonce]);
      const sealed = oaepEncrypt(
        initiatorCert.publicKey,
        answer,
        nonceResponseLabel(this.groupId, body.epoch, this.self, sender),
      );
      this.deps.send('NONCE_RESPONSE', sender, { epoch: body.epoch, sealed });
    } finally {
      challenge.fill(0);
      answer?.fill(0);
    }
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
      this.problem(`the nonce response of ${sender} for epoch ${body.epoch} does not decrypt`);
      return;
    }
    try {
      // Constant time: the echo proves the target could decrypt our challenge.
      if (opened.length !== 2 * NONCE_BYTES || !timingSafeEqual(opened.subarray(0, NONCE_BYTES), challenge)) {
        this.problem(`${sender} did not echo the epoch ${body.epoch} challenge`);
        return;
      }
      round.nonces.set(sender, Buffer.from(opened.subarray(NONCE_BYTES)));
    } finally {
      opened.fill(0);
    }
    if (round.nonces.size < round.challenges.size) return;
    if (round.epoch <= this.deps.heldEpoch()) {
      this.rounds.drop((r) => r === round); // finished too late: a newer key is already in use
      return;
    }
    this.distribute(round);
  }

  /** Target side, step 4. */
  onKeyDistribution(sender: string, body: BodyOf<'KEY_DISTRIBUTION'>): void {
    if (body.epoch <= this.deps.heldEpoch()) return; // superseded
    if (!this.withinLimit('KEY_DISTRIBUTION', sender, body.epoch)) return;
    const pending = this.answered.get(sender, body.epoch);
    if (!pending) {
      this.problem(
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
      this.problem(`the key distribution of ${sender} for epoch ${body.epoch} does not decrypt`);
      return;
    }
    let material;
    try {
      material = decodeJsonBody(KeyMaterialSchema, plaintext, 'key material');
    } finally {
      plaintext.fill(0);
    }
    try {
      this.acceptKeyMaterial(sender, body.epoch, pending, material);
    } finally {
      for (const n of material.nonces) n.fill(0);
    }
  }

  /** Step 4's checks, then the key. */
  private acceptKeyMaterial(
    sender: string,
    epoch: number,
    pending: AnsweredRequest,
    material: { groupId: string; epoch: number; initiator: string; members: string[]; nonces: Buffer[] },
  ): void {
    const position = pending.members.indexOf(this.self);
    const ownNonce = material.nonces[position];
    if (
      material.groupId !== this.groupId ||
      material.epoch !== epoch ||
      material.initiator !== sender ||
      !sameList(material.members, pending.members) ||
      material.nonces.length !== pending.members.length ||
      !ownNonce ||
      !timingSafeEqual(ownNonce, pending.nonce)
    ) {
      this.problem(
        `the key material of ${sender} for epoch ${epoch} does not match what this member answered`,
      );
      return;
    }
    if (!this.view || !sameList(this.view.members, material.members)) return; // membership moved on
    this.finish(epoch, material.members, sender, material.nonces);
  }

  onRekeyRequest(sender: string, body: BodyOf<'REKEY_REQUEST'>): void {
    if (!this.withinLimit('REKEY_REQUEST', sender, body.minEpoch)) return;
    if (body.reason === 'stale-epoch') {
      // Only an answer to a round of ours that asked this sender moves anything.
      let stale: InitiatorRound | undefined;
      for (const r of this.rounds.values()) {
        if (r.epoch >= body.minEpoch) return; // a round at or above it is already running
        if (r.challenges.has(sender)) stale = r;
      }
      if (!stale) return;
      const restarts = stale.restarts;
      this.rounds.drop((r) => r === stale);
      if (!this.raise(body.minEpoch - 1)) return;
      if (restarts < MAX_RESTARTS) this.startRound(body.minEpoch, restarts + 1);
      return;
    }
    // requested / key-missing: the sender wants a fresh epoch over the current members.
    if (!this.view?.members.includes(sender)) return;
    if (!this.rekeyLimiter.allow(sender)) {
      this.problem(
        `REKEY_REQUEST from ${sender} ignored: one is honoured per sender every ${REKEY_INTERVAL_S} s (next in ${this.rekeyLimiter.waitMs(sender)} ms)`,
        'RekeyRateLimited',
      );
      return;
    }
    this.startRound(body.minEpoch);
  }

  private distribute(round: InitiatorRound): void {
    const ownNonce = this.random(NONCE_BYTES);
    const nonces = round.members.map((m) => (m === this.self ? ownNonce : (round.nonces.get(m) as Buffer)));
    // This round's key supersedes every older round of ours. Its challenges are spent; its
    // nonces live on in `nonces` until finish() (or the failure below) zeroes them.
    round.nonces.clear();
    this.rounds.drop((r) => r.epoch <= round.epoch);
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
        this.problem(`cannot finish epoch ${round.epoch}: the certificate of ${t} is gone`);
        plaintext.fill(0);
        for (const n of nonces) n.fill(0);
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

  /** Derives K_e and hands it on; the nonces are zeroed on every way out. */
  private finish(epoch: number, members: string[], initiator: string, nonces: Buffer[]): void {
    let derived: EpochKey;
    try {
      const fingerprints: Buffer[] = [];
      for (const m of members) {
        const cert = this.deps.certificateOf(m);
        if (!cert) {
          this.problem(`cannot derive epoch ${epoch}: no validated certificate for ${m}`);
          return;
        }
        fingerprints.push(cert.fingerprint);
      }
      if (!this.raise(epoch)) return;
      derived = deriveEpochKey({ groupId: this.groupId, epoch, fingerprints, nonces });
    } finally {
      for (const n of nonces) n.fill(0);
    }
    this.keyedFloor = Math.max(this.keyedFloor, epoch);
    // Rounds and answers at or below this epoch can no longer be used: their secrets go now.
    this.rounds.drop((r) => r.epoch <= epoch);
    this.answered.drop(epoch);
    this.deps.onKey({ epoch, members: [...members], initiator, derived });
  }

  private problem(message: string, code: KeyProblemCode = 'KeyEstablishment'): void {
    this.deps.onProblem(message, code);
  }

  /** Refuses (visibly) a frame that would move this member above its epoch limit. */
  private withinLimit(type: HandshakeType, sender: string, epoch: number): boolean {
    const limit = this.epochLimit;
    if (epoch <= limit) return true;
    this.problem(
      `${type} from ${sender} for epoch ${epoch} refused: too far above ${this.highestEpochSeen} (limit ${limit})`,
      'EpochOutOfRange',
    );
    return false;
  }

  /** Raises the highest epoch seen, storing it first; false (reported) if it could not be stored. */
  private raise(epoch: number): boolean {
    if (epoch <= this.highestSeen) return true;
    try {
      this.deps.persistEpoch?.(epoch);
    } catch (err) {
      this.problem(
        `epoch ${epoch} not used: storing it failed (${(err as Error).message})`,
        'StateStoreFailed',
      );
      return false;
    }
    this.highestSeen = epoch;
    return true;
  }
}
