/**
 * Who is in the group and who is online: ROSTER frames (kept if newer, answered with ours if
 * older), PRESENCE (the first one logs the session in), certificate fetching and its retry. Once
 * every certificate of the latest PRESENCE is settled, the key-establishment machine learns who is
 * online and the state machine gets the group's facts (engine-state.ts decides the state).
 */
import { Certificate } from '../core/pki/certificate.js';
import type { BodyOf } from '../core/protocol/schemas.js';
import { enoughOnline, type EngineParts, type Session } from './engine-core.js';
import type { HeldFrames } from './engine-held.js';
import type { RosterOffer } from './engine-types.js';
import type { SendPipeline } from './engine-send.js';
import type { GroupFacts } from './engine-machine.js';
import type { Roster } from '../core/roster/index.js';
import type { Member } from './types.js';

export interface PresenceHooks {
  useRoster(roster: Roster): void;
  /** The member is live: a missing key is worth a round from now on, rotation is checked. */
  goLive(session: Session): void;
}

export class GroupView {
  private memberList: Member[] = [];
  private everHadMembers = false;

  constructor(
    private readonly p: EngineParts,
    private readonly send: SendPipeline,
    private readonly held: HeldFrames,
    private readonly hooks: PresenceHooks,
  ) {}

  get members(): readonly Member[] {
    return this.memberList;
  }

  /** The key-establishment machine's reading, for the state machine. */
  facts(): GroupFacts {
    const { handshake, keyring, identity } = this.p;
    return {
      others: handshake.onlineMembers.filter((n) => n !== identity.name),
      enoughOnline: enoughOnline(handshake),
      needsKey: handshake.needsKey,
      idleAlone: handshake.idleAlone,
      onlineCount: handshake.onlineMembers.length,
      memberCount: handshake.members.length,
      attempt: handshake.attempt,
      initiator: handshake.expectedInitiator,
      epoch: keyring.currentEpoch,
    };
  }

  /** After presence, a roster or a key (refused by the machine when no session is logged in). */
  changed(): void {
    this.p.host.dispatch({ type: 'group', facts: this.facts() });
  }

  /**
   * A ROSTER (the CA-signed envelope; the relay sends its own before PRESENCE and each newer one):
   * kept if newer, answered with ours if older (roster-tracker.ts).
   */
  onRosterFrame(session: Session, frame: Buffer): void {
    const { rosters, host } = this.p;
    const receipt = rosters.receive(frame);
    // A newer roster changes M and starts a new epoch (setRoster ignores one it already has).
    if (receipt.kind === 'newer' || receipt.kind === 'same') this.hooks.useRoster(receipt.roster);
    if (receipt.kind === 'refused') {
      host.emitError('RosterRefused', `roster from the relay refused (${receipt.code}): ${receipt.message}`);
    } else if (receipt.kind === 'older') {
      this.uploadRoster(session);
    }
    const view = rosters.toReport();
    if (view) host.emit({ event: 'roster', ...view });
  }

  /**
   * A roster signed by the organiser here (the app's organiser tools), taken as one from the relay
   * would be: kept if newer, then handed to the relay at once if the link is up (otherwise at the
   * next login, where the relay's older one is answered with it).
   */
  offerRoster(session: Session | undefined, bytes: Buffer): RosterOffer {
    const { rosters, host } = this.p;
    const receipt = rosters.receive(bytes);
    switch (receipt.kind) {
      case 'newer': {
        this.hooks.useRoster(receipt.roster);
        if (session) this.uploadRoster(session);
        const view = rosters.toReport();
        if (view) host.emit({ event: 'roster', ...view });
        return { accepted: true, version: receipt.roster.version };
      }
      case 'same':
        return { accepted: true, version: receipt.roster.version };
      case 'older':
        return {
          accepted: false,
          version: receipt.held.version,
          code: 'RosterOlder',
          message: `roster v${receipt.incoming.version} is older than the one held (v${receipt.held.version})`,
        };
      case 'refused':
        return {
          accepted: false,
          version: rosters.held?.version ?? 0,
          code: receipt.code,
          message: receipt.message,
        };
    }
  }

  /** Sends the held roster to the relay, as it is (its validity is the CA's signature). */
  uploadRoster(session: Session): void {
    const held = this.p.rosters.held;
    if (!held || this.p.host.session !== session || !session.link.isOpen) return;
    this.send.raw(held.bytes, { kind: 'control', type: 'ROSTER' });
  }

  onPresence(session: Session, body: BodyOf<'PRESENCE'>): void {
    const { host, directory, identity, clock } = this.p;
    if (session.presenceVersion !== undefined && body.version <= session.presenceVersion) return;
    session.presenceVersion = body.version;
    if (host.machine.link.phase === 'connecting') host.dispatch({ type: 'logged-in', at: clock.monotonic() });
    const me = body.members.find((m) => m.name === identity.name);
    if (me && me.fingerprint !== identity.certificate.fingerprintHex) {
      host.emitError('CertificateRejected', 'the relay lists this member with a different certificate');
    }
    // Who is online changed; the key did not (DESIGN.md §10.2: presence never re-keys).
    const missing = directory.applyPresence(body.members);
    if (missing.length > 0) this.requestCertificates(missing);
    if (!directory.resolved) host.dispatch({ type: 'certificates-pending', count: missing.length });
    this.afterCertificates(session);
  }

  onCertResponse(session: Session, body: BodyOf<'CERT_RESPONSE'>): void {
    const { directory, host } = this.p;
    for (const entry of body.certificates) {
      let cert: Certificate;
      try {
        cert = Certificate.fromDer(entry.certificate);
      } catch (err) {
        host.emitError('CertificateRejected', `certificate of ${entry.name}: ${(err as Error).message}`);
        directory.markUnknown(entry.name);
        continue;
      }
      const result = directory.accept(entry.name, cert);
      if (!result.ok) host.emitError('CertificateRejected', result.reason);
    }
    for (const name of body.unknown) directory.markUnknown(name);
    this.afterCertificates(session);
  }

  /** The cert-retry timer fired: ask again for what has not come. */
  retryCertificates(): void {
    const { directory } = this.p;
    if (directory.resolved) return;
    const pending = directory.takePending();
    if (pending.length > 0) this.requestCertificates(pending);
  }

  /** The session ended: who is online is unknown until the next PRESENCE. */
  resetSession(): void {
    this.p.directory.resetSession();
  }

  private requestCertificates(names: string[]): void {
    this.send.control('CERT_REQUEST', '', { names });
    this.p.host.dispatch({ type: 'certificates-requested' });
  }

  /** LIVE: a member that waited for the replay's key distributions may go live now. */
  caughtUp(session: Session): void {
    if (this.p.handshake.isLive || !this.presenceSettled(session)) return;
    this.hooks.goLive(session);
    this.changed();
  }

  private presenceSettled(session: Session): session is Session & { presenceVersion: number } {
    return this.p.directory.resolved && session.presenceVersion !== undefined;
  }

  /** Once every member of the latest PRESENCE is settled: publish who is online, check the key. */
  private afterCertificates(session: Session): void {
    const { directory, handshake } = this.p;
    if (!this.presenceSettled(session)) return;
    const valid = directory.validMembers();
    this.publishMembers(valid);
    this.held.releaseForCertificate(session);
    handshake.setPresence(
      valid.map((m) => m.name),
      session.presenceVersion,
    );
    // A member that replays the log goes live at LIVE, once it has taken every stored key
    // distribution: starting a round before that would fork the epoch it is about to receive.
    if (!handshake.isLive) {
      if (!session.synced || session.caughtUp) this.hooks.goLive(session);
    } else handshake.ensureKey();
    this.changed();
  }

  private publishMembers(valid: Member[]): void {
    const { host } = this.p;
    const before = new Set(this.memberList.map((m) => m.name));
    const after = new Set(valid.map((m) => m.name));
    const same =
      valid.length === this.memberList.length &&
      valid.every(
        (m, i) => m.name === this.memberList[i]?.name && m.fingerprint === this.memberList[i]?.fingerprint,
      );
    this.memberList = valid;
    if (!same) host.emit({ event: 'members', members: valid.map((m) => ({ ...m })) });
    if (this.everHadMembers) {
      for (const n of after) if (!before.has(n)) host.emit({ event: 'system', kind: 'joined', name: n });
      for (const n of before) if (!after.has(n)) host.emit({ event: 'system', kind: 'left', name: n });
    }
    this.everHadMembers = true;
  }
}
