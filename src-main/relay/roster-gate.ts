/**
 * The roster at the relay's door and in its members' hands (docs/protocol.md, "Roster"):
 *
 * - admission: a certificate listed in the held roster is admitted; a removed one gets a fatal
 *   `Removed`, any other a fatal `NotInRoster`. With no roster at all the connection gets a
 *   non-fatal `NoRoster` and a roster-only window (rosterWindowMs) in which the only frame accepted
 *   is a ROSTER upload; a valid one re-runs admission, the end of the window is a fatal NoRoster.
 * - welcome: a member that logs in is sent the held ROSTER before its first PRESENCE.
 * - uploads: a ROSTER from a member (or a connection in the window) is verified and, if newer,
 *   stored, pushed to every member, and the members it no longer lists are dropped; the same one
 *   is ignored; anything else gets a non-fatal `RosterRejected` and the held ROSTER.
 */
import type { Logger } from 'pino';
import type { Certificate } from '../core/pki/certificate.js';
import { ProtocolError, readHeader, type EnvelopeHeader } from '../core/protocol/index.js';
import type { RelayConnection } from './connection.js';
import type { ConnectionControl } from './control.js';
import type { RelayLimits } from './limits.js';
import type { Membership } from './membership.js';
import { refusalCode, type Refusals } from './refusals.js';
import type { RosterKeeper, RosterOffer } from './roster-keeper.js';

export const NO_ROSTER_MESSAGE =
  'this relay holds no roster yet: publish one with `securechat-x group publish` or start it with --roster';

export interface RosterGateHooks {
  /** Runs admission again for a connection of the roster-only window (Login). */
  readmit(conn: RelayConnection): void;
}

export class RosterGate {
  /** Connections in the roster-only window. */
  private readonly waiting = new Set<RelayConnection>();

  constructor(
    private readonly keeper: RosterKeeper,
    private readonly limits: RelayLimits,
    private readonly log: Logger,
    private readonly membership: Membership,
    private readonly refusals: Refusals,
    private readonly control: ConnectionControl,
    private readonly hooks: RosterGateHooks,
  ) {}

  /** Connections waiting in the roster-only window. */
  get waitingCount(): number {
    return this.waiting.size;
  }

  /**
   * After CONNECTION passed its checks: true if `cert` may log in now. Otherwise the connection was
   * dropped (Removed, NotInRoster) or moved into the roster-only window, and login stops here.
   */
  admits(conn: RelayConnection, cert: Certificate): boolean {
    const verdict = this.keeper.verdict(cert.fingerprintHex);
    switch (verdict.kind) {
      case 'member':
        this.waiting.delete(conn);
        return true;
      case 'no-roster':
        this.openWindow(conn, cert);
        return false;
      case 'removed':
        this.waiting.delete(conn);
        this.control.drop(
          conn,
          'removed',
          this.refusals.error(conn, 'Removed', removedMessage(verdict.name, verdict.reason), true),
        );
        return false;
      case 'not-listed':
        this.waiting.delete(conn);
        this.control.drop(
          conn,
          'not-in-roster',
          this.refusals.error(conn, 'NotInRoster', this.notListedMessage(cert.name), true),
        );
        return false;
    }
  }

  /** A member just logged in: its first frame after login is the held ROSTER (before PRESENCE). */
  welcome(conn: RelayConnection): void {
    const frame = this.keeper.frame;
    if (frame) this.control.send(conn, frame);
  }

  /** The connection is closing or closed. */
  forget(conn: RelayConnection): void {
    this.waiting.delete(conn);
  }

  /** A frame from a connection in the roster-only window: a ROSTER upload, or refused. */
  onWindowFrame(conn: RelayConnection, payload: Buffer): void {
    let header: EnvelopeHeader;
    try {
      header = readHeader(payload);
    } catch (err) {
      if (!(err instanceof ProtocolError)) throw err;
      this.refusals.refuseFrame(conn, refusalCode(err.code), err.message);
      return;
    }
    if (header.type !== 'ROSTER') {
      this.refusals.refuseFrame(
        conn,
        'NotAllowed',
        `${header.type} refused: the relay holds no roster, only a ROSTER upload is accepted now`,
      );
      return;
    }
    this.upload(conn, payload);
  }

  /** A ROSTER frame (the CA-signed envelope as it is) from `conn`, a member or in the window. */
  upload(conn: RelayConnection, payload: Buffer): void {
    const bytes = Buffer.from(payload);
    this.keeper.offer(bytes).then(
      (offer) => this.control.guard(conn, () => this.settle(conn, offer)),
      (err: unknown) =>
        this.log.error(
          { event: 'internal-error', conn: conn.id, err: err instanceof Error ? err.message : String(err) },
          'handling a roster upload failed',
        ),
    );
  }

  /**
   * A roster stored by another cluster node (the shared meta's watch): in force here at once,
   * pushed to this node's members, who it no longer lists are dropped.
   */
  shared(bytes: Buffer): void {
    this.keeper.adopt(bytes).then(
      (offer) =>
        this.control.guard(undefined, () => {
          if (offer.kind === 'stored') {
            this.log.info(
              { event: 'roster-shared', version: offer.roster.version, previous: offer.previous?.version },
              `roster v${offer.roster.version} from another node`,
            );
            this.applyNewRoster();
          } else if (offer.kind === 'rejected') {
            this.log.warn(
              { event: 'roster-shared-ignored', code: offer.code, reason: offer.message },
              'a shared roster was not taken',
            );
          }
        }),
      (err: unknown) =>
        this.log.error(
          { event: 'internal-error', err: err instanceof Error ? err.message : String(err) },
          'handling a shared roster failed',
        ),
    );
  }

  private settle(conn: RelayConnection, offer: RosterOffer): void {
    switch (offer.kind) {
      case 'same':
        this.log.debug(
          { event: 'roster-same', conn: conn.id, name: conn.name, version: offer.roster.version },
          'roster upload: already held',
        );
        return;
      case 'rejected':
        this.log.warn(
          {
            event: 'roster-rejected',
            conn: conn.id,
            name: conn.name,
            code: offer.code,
            reason: offer.message,
            held: this.keeper.current?.version,
          },
          'roster upload refused',
        );
        if (!conn.open) return;
        this.refusals.refuseFrame(conn, 'RosterRejected', `${offer.message} (${offer.code})`);
        if (conn.open && conn.state === 'member') this.welcome(conn);
        return;
      case 'stored':
        this.log.info(
          {
            event: 'roster-stored',
            conn: conn.id,
            name: conn.name,
            version: offer.roster.version,
            previous: offer.previous?.version,
          },
          `roster v${offer.roster.version} stored`,
        );
        this.applyNewRoster();
        return;
    }
  }

  /** A newer roster is held: every member gets it, those it does not list go, the window re-admits. */
  private applyNewRoster(): void {
    const frame = this.keeper.frame;
    if (!frame) return;
    for (const c of this.membership.all) {
      if (c.state !== 'member' || !c.certificate) continue;
      this.control.send(c, frame);
      const verdict = this.keeper.verdict(c.certificate.fingerprintHex);
      if (verdict.kind === 'removed') {
        this.control.drop(
          c,
          'removed',
          this.refusals.error(c, 'Removed', removedMessage(verdict.name, verdict.reason), true),
        );
      } else if (verdict.kind !== 'member') {
        this.control.drop(
          c,
          'not-in-roster',
          this.refusals.error(c, 'NotInRoster', this.notListedMessage(c.certificate.name), true),
        );
      }
    }
    for (const c of [...this.waiting]) {
      this.waiting.delete(c);
      if (c.state === 'roster-only') this.hooks.readmit(c);
    }
  }

  private openWindow(conn: RelayConnection, cert: Certificate): void {
    conn.certificate = cert;
    conn.state = 'roster-only';
    // A roster upload is up to a whole frame, far above the pre-login bound.
    conn.decoder.maxFrameBytes = this.limits.maxFrameBytes;
    if (conn.authTimer) clearTimeout(conn.authTimer);
    conn.authTimer = setTimeout(
      () =>
        this.control.guard(conn, () => {
          this.waiting.delete(conn);
          if (conn.state !== 'roster-only') return;
          this.control.drop(
            conn,
            'no-roster',
            this.refusals.error(
              conn,
              'NoRoster',
              `${NO_ROSTER_MESSAGE} (no roster within ${this.limits.rosterWindowMs} ms)`,
              true,
            ),
          );
        }),
      this.limits.rosterWindowMs,
    );
    this.waiting.add(conn);
    this.log.info(
      { event: 'roster-window', conn: conn.id, name: cert.name, windowMs: this.limits.rosterWindowMs },
      'no roster: waiting for an upload',
    );
    this.control.send(conn, this.refusals.error(conn, 'NoRoster', NO_ROSTER_MESSAGE, false));
  }

  private notListedMessage(name: string): string {
    const version = this.keeper.current?.version;
    return `${name} is not in this group's roster${version !== undefined ? ` (v${version})` : ''}`;
  }
}

function removedMessage(name: string, reason: string): string {
  return `${name} was removed from this group${reason ? ` (${reason})` : ''}`;
}
