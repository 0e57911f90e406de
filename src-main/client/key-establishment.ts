/**
 * The group key establishment of docs/protocol.md (v2, epochs over the roster), for one member,
 * in both roles. M = every roster member (sorted), O = the roster members online now (PRESENCE):
 *
 *   initiator I = O[attempt mod |O|]:  NONCE_REQUEST (OAEP challenge) to each online t ≠ I
 *   online target t:                   NONCE_RESPONSE (OAEP_I(challenge ‖ own nonce))
 *   initiator, all echoes checked:     KEY_DISTRIBUTION to every m ∈ M \ {I}, online or not
 *   everyone:                          K_e = HKDF(contributors' nonces, salt(G, e, v, fp(M)))
 *
 * The key belongs to every roster member; presence changes never start a round. A round starts when
 * a live member holds no usable key for its roster version, when the roster changes, on rotation
 * (age or message count) and on request (rate-limited). The key material's checks are in
 * key-material.ts.
 *
 * Transitional: until a roster is given (setRoster), M = the members of PRESENCE and the roster
 * version is 0. Then a key is usable whatever the presence, so leaves do not re-key; a newcomer
 * without a key asks for one (REKEY_REQUEST key-missing) and gets a key over who is online.
 *
 * It owns no sockets and no timers: the engine feeds it verified, schema-checked bodies with the
 * sender's CA-validated name, and gives it a `send` that signs and queues a frame. That keeps the
 * protocol logic testable with an in-memory bus (test/unit/client-key-establishment.test.ts).
 */
import { randomBytes as secureRandomBytes } from '../core/crypto/primitives.js';
import type { Certificate } from '../core/pki/certificate.js';
import { encodeJsonBody } from '../core/protocol/json-body.js';
import type { BodyOf } from '../core/protocol/schemas.js';
import type { Roster } from '../core/roster/index.js';
import {
  DEFAULT_ROTATION_MAX_MESSAGES,
  DEFAULT_ROTATION_PERIOD_MS,
  RekeyRateLimiter,
  rotationDue,
  type RotationPolicy,
} from './epoch-policy.js';
import { type InitiatorRound, type KeyEstablishmentDeps, zeroRound } from './key-establishment-state.js';
import { KeyReceiver } from './key-receiver.js';
import { sealKeyMaterial, sealSecret } from './handshake-seal.js';
import { initiatorFor, NONCE_BYTES } from './key-schedule.js';

export { EPOCH_CEILING, MAX_EPOCH_STEP } from './epoch-policy.js';

export type {
  CurrentKeyInfo,
  EstablishedKey,
  HeldKey,
  KeyEstablishmentDeps,
  KeyProblemCode,
} from './key-establishment-state.js';

/** Stale-epoch restarts one round may make before it waits for the failover timer instead. */
const MAX_RESTARTS = 4;

export class KeyEstablishment extends KeyReceiver {
  /** Failover counter: the initiator is O[attempt mod |O|]. */
  private attemptNo = 0;
  /** The attempt in which this member last asked the initiator for a key (key-missing). */
  private askedInAttempt = -1;
  /** The highest unknown epoch a message came under that this member asked a key for. */
  private askedForEpoch = 0;
  /** The highest epoch whose stored key this member could not open (its prekey is gone). */
  private unreadableEpoch = 0;
  private readonly unknownEpochLimiter: RekeyRateLimiter;
  private readonly rotation: RotationPolicy;
  private readonly roundTimeoutMs: number;

  constructor(deps: KeyEstablishmentDeps) {
    super(deps, deps.randomBytes ?? secureRandomBytes);
    this.rotation = {
      periodMs: deps.rotation?.periodMs ?? DEFAULT_ROTATION_PERIOD_MS,
      maxMessages: deps.rotation?.maxMessages ?? DEFAULT_ROTATION_MAX_MESSAGES,
    };
    this.roundTimeoutMs = deps.roundTimeoutMs ?? 5_000;
    this.unknownEpochLimiter = new RekeyRateLimiter(deps.now ?? Date.now);
  }

  get attempt(): number {
    return this.attemptNo;
  }

  /** Who should run the current attempt: O[attempt mod |O|]. */
  get expectedInitiator(): string | undefined {
    return this.online.length > 0 ? initiatorFor(this.online, this.attemptNo) : undefined;
  }

  /**
   * Live, alone online, without a key and with nothing to send: the key waits for a message or
   * for another member (see KeyEstablishmentDeps.wantsToSend).
   */
  get idleAlone(): boolean {
    return (
      this.live &&
      this.needsKey &&
      this.online.every((n) => n === this.self) &&
      !(this.deps.wantsToSend?.() ?? true)
    );
  }

  get initiating(): boolean {
    return this.rounds.size > 0;
  }

  get isLive(): boolean {
    return this.live;
  }

  /**
   * True while this member holds no key it may send with for its roster version: none at all, or
   * one for another roster version (the roster changed). Without a roster any key is usable.
   */
  get needsKey(): boolean {
    const k = this.deps.currentKey();
    if (!k) return true;
    return this.roster !== undefined && k.rosterVersion !== this.roster.version;
  }

  /**
   * A verified roster of this group (never an older one). A new version means a new epoch: the
   * current key no longer covers the roster's members.
   */
  setRoster(roster: Roster): void {
    if (roster.groupId !== this.groupId) {
      this.problem(`a roster of another group (${roster.groupId}) ignored`);
      return;
    }
    if (this.roster && roster.version <= this.roster.version) return;
    this.roster = roster;
    this.attemptNo = 0;
    this.askedInAttempt = -1;
    this.rounds.drop((r) => r.rosterVersion !== roster.version);
    this.online = this.online.filter((n) => roster.member(n) !== undefined);
    this.releaseHeld();
    this.ensureKey();
  }

  /** Who is online (the names of a PRESENCE whose certificates are settled, sorted). Never keys. */
  setPresence(names: readonly string[], presenceVersion: number): void {
    const roster = this.roster;
    this.online = roster ? names.filter((n) => roster.member(n) !== undefined) : [...names];
    this.presenceVersion = presenceVersion;
    this.releaseHeld();
  }

  /**
   * The member is live (for now: the first PRESENCE after login; later the relay's LIVE after the
   * stored frames were replayed). From here on a missing key is worth a round.
   */
  goLive(): void {
    this.live = true;
    this.releaseHeld();
    this.ensureKey();
    if (this.unreadableEpoch > this.deps.heldEpoch()) this.onUnknownEpoch(this.unreadableEpoch);
  }

  /**
   * A key for `epoch` that this member cannot open (sealed to a prekey it lost with its state): the
   * others are on that epoch, so once live it asks for the next, as for a message under an epoch it
   * holds no key for.
   */
  protected onUnreadableKey(epoch: number): void {
    if (epoch <= this.deps.heldEpoch()) return;
    this.unreadableEpoch = Math.max(this.unreadableEpoch, epoch);
    if (this.live) this.onUnknownEpoch(epoch);
  }

  /**
   * Shorthand for a PRESENCE on a v1 session: who is online, then live. Kept for the callers and
   * tests of the presence-based API; it never re-keys a member that holds a usable key.
   */
  setMembership(names: string[], presenceVersion: number): void {
    this.setPresence(names, presenceVersion);
    if (this.live) this.ensureKey();
    else this.goLive();
  }

  /** The session ended: nothing in flight can complete. */
  reset(): void {
    this.live = false;
    this.online = [];
    this.presenceVersion = undefined;
    this.rounds.drop();
    this.answered.drop();
    this.futureRequests = [];
    this.attemptNo = 0;
    this.askedInAttempt = -1;
  }

  /** Failover: the attempt produced no key in time; the next online member takes over. */
  nextAttempt(): void {
    this.attemptNo++;
    this.ensureKey();
  }

  /**
   * If live and without a usable key: the expected initiator starts a round; anyone else asks it
   * (once per attempt) with REKEY_REQUEST key-missing, since the others may well hold a key
   * already (this member was offline when it was made and nothing stored it).
   */
  ensureKey(): void {
    if (!this.live || !this.needsKey || this.roundRunning()) return;
    const initiator = this.expectedInitiator;
    if (initiator === undefined || !this.memberList().includes(this.self)) return;
    if (initiator === this.self) {
      if (!this.idleAlone) this.startRound();
      return;
    }
    // After a roster change every online member sees it: only a member without any key, or one
    // whose first attempt failed, asks (the initiator is already on it otherwise). A member that
    // follows the log asks only once the first attempt timed out: the key of a round that began
    // before it came online is on its way to it, and asking at once would cross it and make the
    // initiator start one more epoch.
    if (this.attemptNo === 0 && (this.deps.currentKey() !== undefined || this.deps.followsLog?.() === true))
      return;
    if (this.askedInAttempt === this.attemptNo) return;
    // A round this member answered is on its way to a key: asking now would only start another.
    for (const a of this.answered.values()) if (a.rosterVersion === this.rosterVersion) return;
    this.askedInAttempt = this.attemptNo;
    this.deps.send('REKEY_REQUEST', initiator, {
      minEpoch: this.highestEpochSeen + 1,
      reason: 'key-missing',
    });
  }

  /**
   * A member's message for an epoch above ours that we never got the key of: the others moved on
   * while this member was away (a key restored from the store can be stale when nothing stored the
   * newer KEY_DISTRIBUTIONs). Ask for a new epoch, once per such epoch (the initiator rate-limits).
   */
  onUnknownEpoch(epoch: number): void {
    if (!this.live || epoch <= this.deps.heldEpoch() || epoch <= this.askedForEpoch) return;
    if (epoch > this.epochLimit) return;
    const initiator = this.expectedInitiator;
    if (initiator === undefined || !this.memberList().includes(this.self)) return;
    // One unverifiable claim (any member can send under any epoch) must not make us re-key at will:
    // at most one such request per interval, and never for more than the next epoch we know of.
    if (!this.unknownEpochLimiter.allow(this.self)) return;
    this.askedForEpoch = epoch;
    const minEpoch = this.highestEpochSeen + 1;
    if (initiator === this.self) {
      if (!this.roundRunning()) this.startRound(minEpoch);
      return;
    }
    this.deps.send('REKEY_REQUEST', initiator, { minEpoch, reason: 'key-missing' });
  }

  /**
   * Rotation, checked by the online initiator (the engine calls this on a timer and as messages
   * are counted): the current epoch is older than the period or carried the message bound.
   */
  maybeRotate(): boolean {
    if (!this.live || this.needsKey || this.roundRunning()) return false;
    if (this.expectedInitiator !== this.self) return false;
    const k = this.deps.currentKey();
    if (!k || !rotationDue(k, this.clock(), this.rotation)) return false;
    return this.startRound();
  }

  /** Starts a round with this member as initiator (its attempt, a failover, a rotation, a request). */
  startRound(minEpoch = 0, restarts = 0): boolean {
    const members = this.memberList();
    if (members.length === 0 || !members.includes(this.self)) return false;
    const epoch = Math.max(this.highestEpochSeen + 1, minEpoch);
    if (epoch > this.epochLimit) {
      this.problem(
        `not starting epoch ${epoch}: more than allowed above ${this.highestEpochSeen} (limit ${this.epochLimit})`,
        'EpochOutOfRange',
      );
      return false;
    }
    const targets = this.online.filter((t) => t !== this.self && members.includes(t));
    const certs = new Map<string, Certificate>();
    for (const t of targets) {
      const cert = this.certFor(t);
      if (!cert) {
        this.problem(`cannot start epoch ${epoch}: no validated certificate for ${t}`);
        return false;
      }
      certs.set(t, cert);
    }
    if (!this.raise(epoch)) return false; // write-ahead: stored before any request leaves
    const round: InitiatorRound = {
      epoch,
      rosterVersion: this.rosterVersion,
      members: [...members],
      attempt: this.attemptNo,
      startedAt: this.clock(),
      challenges: new Map(),
      nonces: new Map(),
      restarts,
      forMissingKey: this.needsKey,
    };
    for (const [t, cert] of certs) {
      const challenge = this.random(NONCE_BYTES);
      round.challenges.set(t, challenge);
      this.deps.send('NONCE_REQUEST', t, {
        epoch,
        membershipVersion: this.presenceVersion ?? 0,
        rosterVersion: round.rosterVersion,
        members: round.members,
        ...this.sealedChallenge(epoch, t, cert, challenge),
      });
    }
    this.rounds.add(round);
    // Alone online: a group of one contributor, sealed for every roster member at once.
    if (round.challenges.size === 0) this.distribute(round);
    return true;
  }

  onRekeyRequest(sender: string, body: BodyOf<'REKEY_REQUEST'>): void {
    if (!this.withinLimit('REKEY_REQUEST', sender, body.minEpoch)) return;
    if (!this.memberList().includes(sender)) return;
    if (body.reason === 'stale-epoch') {
      let stale: InitiatorRound | undefined;
      for (const r of this.rounds.values()) {
        if (r.epoch >= body.minEpoch) return; // a round at or above it is already running
        if (r.challenges.has(sender)) stale = r;
      }
      if (stale) {
        // A target holds a newer epoch than our round: start over above it, unless the round was
        // only for a key this member lacked and one has arrived since (the round the target took
        // part in, most likely).
        const { restarts, forMissingKey } = stale;
        this.rounds.drop((r) => r === stale);
        if (!this.raise(body.minEpoch - 1)) return;
        if (forMissingKey && !this.needsKey) return;
        if (restarts < MAX_RESTARTS) this.startRound(body.minEpoch, restarts + 1);
        return;
      }
      // The late answer to a round of ours that ended before it came (another round's key made
      // it unnecessary): nothing to do.
      if (this.rounds.lateAnswer(sender, body.minEpoch - 1)) return;
      // No round of ours asked: a member saw conflicting keys for our epoch and wants the next one.
      // Only the next one: a stale-epoch answer must never let a member jump the epoch.
      if (body.minEpoch <= this.deps.heldEpoch() || body.minEpoch > this.highestEpochSeen + 1) return;
    } else if (body.reason === 'key-missing' && this.roundRunning()) {
      return; // the running round's KEY_DISTRIBUTION is sealed for every roster member anyway
    }
    if (!this.rekeyLimiter.allow(sender)) {
      this.problem(
        `REKEY_REQUEST from ${sender} ignored: one is honoured per sender every ${this.rekeyIntervalS} s (next in ${this.rekeyLimiter.waitMs(sender)} ms)`,
        'RekeyRateLimited',
      );
      return;
    }
    this.startRound(body.minEpoch);
  }

  /** Seals the key material for every m ∈ M \ {I}, online or not (the relay stores it). */
  protected distribute(round: InitiatorRound): void {
    const ownNonce = this.random(NONCE_BYTES);
    const contributors = [...round.nonces.keys(), this.self].sort((a, b) => (a < b ? -1 : a > b ? 1 : 0));
    const nonces = contributors.map((m) => (m === this.self ? ownNonce : (round.nonces.get(m) as Buffer)));
    // This round's key supersedes every older round of ours. Its challenges are spent; its
    // nonces live on in `nonces` until finish() (or the failure below) zeroes them.
    this.rounds.complete(round);
    round.nonces.clear();
    this.rounds.drop((r) => r.epoch <= round.epoch);
    const recipients = round.members.filter((t) => t !== this.self);
    const certs: Certificate[] = [];
    for (const t of recipients) {
      const cert = this.certFor(t);
      if (!cert) {
        this.problem(`cannot finish epoch ${round.epoch}: the certificate of ${t} is gone`);
        for (const n of nonces) n.fill(0);
        return;
      }
      certs.push(cert);
    }
    const plaintext = encodeJsonBody({
      groupId: this.groupId,
      epoch: round.epoch,
      initiator: this.self,
      rosterVersion: round.rosterVersion,
      members: round.members,
      contributors,
      nonces,
    });
    try {
      recipients.forEach((t, i) => {
        const cert = certs[i] as Certificate;
        const envelope = sealKeyMaterial(
          this.sealContext('key-distribution', round.epoch, this.self, t),
          cert,
          this.deps.prekeys?.sealTarget(cert),
          plaintext,
        );
        this.deps.send('KEY_DISTRIBUTION', t, { epoch: round.epoch, ...envelope });
      });
    } finally {
      plaintext.fill(0);
    }
    this.finish(
      {
        epoch: round.epoch,
        members: round.members,
        contributors,
        initiator: this.self,
        rosterVersion: round.rosterVersion,
        readOnly: false,
      },
      nonces,
    );
  }

  /**
   * Two keys for the installed epoch: keep ours, and have one deterministic member (the lower
   * name of the two initiators, the same choice on every member) run an epoch above it.
   */
  protected onConflict(epoch: number, installedBy: string, sender: string): void {
    this.problem(
      `a second key for epoch ${epoch} from ${sender} (the installed one is from ${installedBy}): kept the installed one, asking for a new epoch`,
      'KeyConflict',
    );
    const minEpoch = Math.max(this.highestEpochSeen, epoch) + 1;
    const target = installedBy < sender ? installedBy : sender;
    if (target === this.self) {
      if (!this.roundRunning()) this.startRound(minEpoch);
      return;
    }
    this.deps.send('REKEY_REQUEST', target, { minEpoch, reason: 'stale-epoch' });
  }

  /** The challenge for `t`: HPKE to its prekey, or RSA-OAEP to its certificate (handshake-seal.ts). */
  private sealedChallenge(
    epoch: number,
    t: string,
    cert: Certificate,
    challenge: Buffer,
  ): Pick<BodyOf<'NONCE_REQUEST'>, 'challenge' | 'hpke'> {
    const { sealed, hpke } = sealSecret(
      this.sealContext('nonce-request', epoch, this.self, t),
      cert,
      this.deps.prekeys?.sealTarget(cert),
      challenge,
    );
    return { challenge: sealed, ...(hpke ? { hpke } : {}) };
  }

  /** A round of ours for the current roster, young enough to still be worth waiting for. */
  private roundRunning(): boolean {
    const now = this.clock();
    for (const r of this.rounds.values()) {
      if (r.rosterVersion === this.rosterVersion && now - r.startedAt < this.roundTimeoutMs) return true;
    }
    return false;
  }
}

export { zeroRound };
