/**
 * The half of the key-establishment machine that reacts to frames (key-establishment.ts adds the
 * triggers and the initiator's own actions): answering NONCE_REQUEST, collecting NONCE_RESPONSE,
 * accepting KEY_DISTRIBUTION, deriving K_e. Shared state lives here so both halves see one truth.
 */
import { timingSafeEqual } from 'node:crypto';
import {
  openKeyMaterial,
  openSecret,
  sealSecret,
  type SealContext,
  type SealKind,
} from './handshake-seal.js';
import type { Certificate } from '../core/pki/certificate.js';
import { decodeJsonBody } from '../core/protocol/json-body.js';
import { KeyMaterialSchema, type BodyOf, type KeyMaterial } from '../core/protocol/schemas.js';
import type { Roster } from '../core/roster/index.js';
import { epochLimit, REKEY_REQUEST_INTERVAL_MS, RekeyRateLimiter } from './epoch-policy.js';
import {
  AnsweredRequests,
  Rounds,
  type HandshakeType,
  type InitiatorRound,
  type KeyEstablishmentDeps,
  type KeyProblemCode,
} from './key-establishment-state.js';
import { checkKeyMaterial, sameList } from './key-material.js';
import {
  deriveEpochKey,
  keyDistributionAad,
  NONCE_BYTES,
  nonceRequestLabel,
  nonceResponseLabel,
  type EpochKey,
} from './key-schedule.js';

const MAX_ANSWERED = 8;
const MAX_ROUNDS = 3;
/** Frames for a roster version (or PRESENCE) this member does not hold yet, kept until it does. */
const MAX_HELD = 16;

/** What a completed round established, besides its nonces: what finish() turns into a key. */
export interface RoundOutcome {
  epoch: number;
  members: string[];
  contributors: string[];
  initiator: string;
  rosterVersion: number;
  readOnly: boolean;
}

export abstract class KeyReceiver {
  protected roster: Roster | undefined;
  /** O: the roster members online now (sorted, self included once PRESENCE came). */
  protected online: string[] = [];
  protected presenceVersion: number | undefined;
  /**
   * Caught up: the stored frames were replayed (LIVE), or on a session without a log the first
   * PRESENCE came. Until then NONCE_REQUESTs wait, since the replay may still hold the key
   * distributions of epochs that a fresh answer would reuse.
   */
  protected live = false;
  /** The highest epoch seen anywhere (held, requested, distributed, asked for). */
  protected highestSeen: number;
  /** The highest epoch a key was derived for here, or that was stored before (never goes down). */
  protected keyedFloor: number;
  protected readonly rounds = new Rounds(MAX_ROUNDS);
  protected readonly answered = new AnsweredRequests(MAX_ANSWERED);
  protected futureRequests: { sender: string; body: BodyOf<'NONCE_REQUEST'> }[] = [];
  protected futureKeys: { sender: string; body: BodyOf<'KEY_DISTRIBUTION'> }[] = [];
  protected readonly rekeyLimiter: RekeyRateLimiter;
  protected readonly rekeyIntervalS = REKEY_REQUEST_INTERVAL_MS / 1000;

  constructor(
    protected readonly deps: KeyEstablishmentDeps,
    protected readonly random: (n: number) => Buffer,
  ) {
    const stored = deps.initialHighestEpoch ?? 0;
    this.highestSeen = stored;
    this.keyedFloor = stored;
    this.rekeyLimiter = new RekeyRateLimiter(deps.now ?? Date.now);
  }

  protected abstract distribute(round: InitiatorRound): void;
  protected abstract onConflict(epoch: number, installedBy: string, sender: string): void;

  protected get self(): string {
    return this.deps.identity.name;
  }

  protected get groupId(): string {
    return this.deps.identity.groupId;
  }

  protected clock(): number {
    return (this.deps.now ?? Date.now)();
  }

  /** M: the roster's members, or (no roster yet, transitional) the members online. */
  protected memberList(): string[] {
    return this.roster ? [...this.roster.memberNames] : [...this.online];
  }

  protected get rosterVersion(): number {
    return this.roster?.version ?? 0;
  }

  /** M as this member sees it now. */
  get members(): readonly string[] {
    return this.memberList();
  }

  /** O: the roster members online now. */
  get onlineMembers(): readonly string[] {
    return this.online;
  }

  get currentRosterVersion(): number {
    return this.rosterVersion;
  }

  /** The highest roster given (setRoster); it also says which relays a member may talk to. */
  get heldRoster(): Roster | undefined {
    return this.roster;
  }

  get highestEpochSeen(): number {
    return Math.max(this.highestSeen, this.deps.heldEpoch());
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

  /** A KEY_DISTRIBUTION for `epoch` could not be opened with any prekey held (key-establishment.ts). */
  protected abstract onUnreadableKey(epoch: number): void;

  /** The binding of a sealed secret: group, epoch, sender and receiver (handshake-seal.ts). */
  protected sealContext(kind: SealKind, epoch: number, from: string, to: string): SealContext {
    const aad =
      kind === 'nonce-request'
        ? nonceRequestLabel(this.groupId, epoch, from, to)
        : kind === 'nonce-response'
          ? nonceResponseLabel(this.groupId, epoch, from, to)
          : keyDistributionAad(this.groupId, epoch, from, to);
    return { kind, groupId: this.groupId, epoch, from, to, aad };
  }

  /** The certificate this member trusts for `name`: what its prekeys are verified against. */
  trustedCertificate(name: string): Certificate | undefined {
    return this.certFor(name);
  }

  /** A roster member's certificate (CA-signed roster), or without a roster the validated PRESENCE one. */
  protected certFor(name: string): Certificate | undefined {
    if (this.roster) return this.roster.member(name)?.certificate;
    return this.deps.certificateOf(name);
  }

  /**
   * fp(m) for the salt. A historic key may list members removed since: their fingerprint is in the
   * roster's removed list.
   */
  private fingerprintFor(name: string): Buffer | undefined {
    const r = this.roster;
    if (!r) return this.deps.certificateOf(name)?.fingerprint;
    const listed = r.member(name);
    if (listed) return listed.certificate.fingerprint;
    const removed = [...r.removed].reverse().find((x) => x.name === name);
    return removed ? Buffer.from(removed.fingerprint, 'hex') : undefined;
  }

  /** Frames that waited for a roster version or PRESENCE this member now holds. */
  protected releaseHeld(): void {
    const requests = this.futureRequests;
    const keys = this.futureKeys;
    this.futureRequests = [];
    this.futureKeys = [];
    for (const r of requests) this.onNonceRequest(r.sender, r.body);
    for (const k of keys) this.onKeyDistribution(k.sender, k.body);
  }

  /** Target side, step 2. */
  onNonceRequest(sender: string, body: BodyOf<'NONCE_REQUEST'>): void {
    if (!this.live) {
      if (this.futureRequests.length < MAX_HELD) this.futureRequests.push({ sender, body });
      return;
    }
    const ahead = this.roster
      ? body.rosterVersion > this.roster.version
      : body.rosterVersion > 0 ||
        this.presenceVersion === undefined ||
        body.membershipVersion > this.presenceVersion;
    if (ahead) {
      // The initiator holds a roster (or saw a PRESENCE) still on its way to us: answer once here.
      if (this.futureRequests.length < MAX_HELD) this.futureRequests.push({ sender, body });
      return;
    }
    if (body.rosterVersion !== this.rosterVersion) return; // a round over an older roster: superseded
    if (!sameList(body.members, this.memberList())) return; // over other members: superseded
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
    const initiatorCert = this.certFor(sender);
    if (!initiatorCert) {
      this.problem(`NONCE_REQUEST from ${sender}, whose certificate is not validated`);
      return;
    }
    let challenge: Buffer;
    try {
      challenge = openSecret(
        this.sealContext('nonce-request', body.epoch, sender, this.self),
        this.deps.identity,
        this.deps.prekeys,
        body.challenge,
        body.hpke,
      );
    } catch (err) {
      this.problem(
        `the challenge from ${sender} for epoch ${body.epoch} does not decrypt: ${(err as Error).message}`,
      );
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
      this.answered.remember({
        initiator: sender,
        epoch: body.epoch,
        rosterVersion: body.rosterVersion,
        members: [...body.members],
        nonce,
      });
      answer = Buffer.concat([challenge, nonce]);
      const { sealed, hpke } = sealSecret(
        this.sealContext('nonce-response', body.epoch, this.self, sender),
        initiatorCert,
        this.deps.prekeys?.sealTarget(initiatorCert),
        answer,
      );
      this.deps.send('NONCE_RESPONSE', sender, { epoch: body.epoch, sealed, ...(hpke ? { hpke } : {}) });
    } finally {
      challenge.fill(0);
      answer?.fill(0);
    }
  }

  /** Initiator side, step 3. */
  onNonceResponse(sender: string, body: BodyOf<'NONCE_RESPONSE'>): void {
    const round = this.rounds.get(body.epoch);
    if (!round) {
      this.rounds.lateAnswer(sender, body.epoch); // from an abandoned round
      return;
    }
    const challenge = round.challenges.get(sender);
    if (!challenge || round.nonces.has(sender)) return;
    let opened: Buffer;
    try {
      opened = openSecret(
        this.sealContext('nonce-response', body.epoch, sender, this.self),
        this.deps.identity,
        this.deps.prekeys,
        body.sealed,
        body.hpke,
      );
    } catch (err) {
      this.problem(
        `the nonce response of ${sender} for epoch ${body.epoch} does not decrypt: ${(err as Error).message}`,
      );
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

  /** Target side, step 4: for a member online or not (a stored frame), answered or not. */
  onKeyDistribution(sender: string, body: BodyOf<'KEY_DISTRIBUTION'>): void {
    if (!this.withinLimit('KEY_DISTRIBUTION', sender, body.epoch)) return;
    let plaintext: Buffer;
    try {
      plaintext = openKeyMaterial(
        this.sealContext('key-distribution', body.epoch, sender, this.self),
        this.deps.identity,
        this.deps.prekeys,
        body,
      );
    } catch (err) {
      this.problem(
        `the key distribution of ${sender} for epoch ${body.epoch} does not decrypt: ${(err as Error).message}`,
      );
      // Sealed to a prekey this member no longer holds (its state was lost): that key is gone for
      // it, by design (forward secrecy). The others chat under it, so ask for a new epoch.
      if (body.hpke !== undefined) this.onUnreadableKey(body.epoch);
      return;
    }
    let material: KeyMaterial;
    try {
      material = decodeJsonBody(KeyMaterialSchema, plaintext, 'key material');
    } finally {
      plaintext.fill(0);
    }
    try {
      this.acceptKeyMaterial(sender, body, material);
    } finally {
      for (const n of material.nonces) n.fill(0);
    }
  }

  private acceptKeyMaterial(sender: string, body: BodyOf<'KEY_DISTRIBUTION'>, m: KeyMaterial): void {
    const answered = this.answered.get(sender, body.epoch);
    const installed = this.deps.heldKey(m.epoch);
    const verdict = checkKeyMaterial(m, {
      self: this.self,
      groupId: this.groupId,
      sender,
      epoch: body.epoch,
      answered,
      roster: this.roster ? { version: this.roster.version, members: this.roster.memberNames } : undefined,
      online: this.online,
      installed: installed !== undefined,
      backlog: this.deps.replayingBacklog?.() ?? false,
    });
    switch (verdict.kind) {
      case 'refuse':
        this.problem(verdict.reason);
        return;
      case 'ignore':
        return;
      case 'hold':
        if (this.futureKeys.length < MAX_HELD) this.futureKeys.push({ sender, body });
        else
          this.problem(`the key distribution of ${sender} for epoch ${body.epoch} dropped: too many waiting`);
        return;
      case 'accept':
        break;
    }
    // Below the key in use: still worth reading what was said under it (a stored frame), never sending.
    const readOnly = verdict.readOnly || m.epoch < this.deps.heldEpoch();
    this.finish(
      {
        epoch: m.epoch,
        members: m.members,
        contributors: m.contributors,
        initiator: sender,
        rosterVersion: m.rosterVersion,
        readOnly,
      },
      m.nonces.map((n) => Buffer.from(n)),
      installed === undefined
        ? undefined
        : (k) => {
            if (installed.matches(k.key)) return false; // the same key again (a replayed stored frame)
            this.onConflict(m.epoch, installed.initiator, sender);
            return false;
          },
    );
  }

  /**
   * Derives K_e and hands it on; the nonces are zeroed on every way out. `vet` may look at the
   * derived key first and veto installing it (a key for an epoch already held).
   */
  protected finish(facts: RoundOutcome, nonces: Buffer[], vet?: (k: EpochKey) => boolean): void {
    const { epoch, members } = facts;
    let derived: EpochKey;
    try {
      const fingerprints: Buffer[] = [];
      for (const m of members) {
        const fp = this.fingerprintFor(m);
        if (!fp) {
          this.problem(`cannot derive epoch ${epoch}: no certificate fingerprint for ${m}`);
          return;
        }
        fingerprints.push(fp);
      }
      if (!this.raise(epoch)) return;
      derived = deriveEpochKey({
        groupId: this.groupId,
        epoch,
        rosterVersion: facts.rosterVersion,
        fingerprints,
        nonces,
      });
    } finally {
      for (const n of nonces) n.fill(0);
    }
    if (vet && !vet(derived)) {
      derived.key.fill(0);
      return;
    }
    this.keyedFloor = Math.max(this.keyedFloor, epoch);
    // Rounds and answers at or below this epoch can no longer be used: their secrets go now.
    this.rounds.drop((r) => r.epoch <= epoch);
    this.answered.drop(epoch);
    // A usable key for the roster: rounds of ours that only looked for one have nothing left to do.
    if (!facts.readOnly) this.rounds.drop((r) => r.forMissingKey && r.rosterVersion === facts.rosterVersion);
    this.deps.onKey({ ...facts, members: [...members], contributors: [...facts.contributors], derived });
  }

  protected problem(message: string, code: KeyProblemCode = 'KeyEstablishment'): void {
    this.deps.onProblem(message, code);
  }

  /** Refuses (visibly) a frame that would move this member above its epoch limit. */
  protected withinLimit(type: HandshakeType, sender: string, epoch: number): boolean {
    const limit = this.epochLimit;
    if (epoch <= limit) return true;
    this.problem(
      `${type} from ${sender} for epoch ${epoch} refused: too far above ${this.highestEpochSeen} (limit ${limit})`,
      'EpochOutOfRange',
    );
    return false;
  }

  /** Raises the highest epoch seen, storing it first; false (reported) if it could not be stored. */
  protected raise(epoch: number): boolean {
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
