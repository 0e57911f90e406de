/**
 * A logged-in member's frames: charged against its rate limits, routed by header (routing.ts)
 * and forwarded, or answered by the relay itself (CERT_REQUEST, HEARTBEAT, DISCONNECT). A frame
 * the relay refuses is answered with ERROR; the body of a routed frame is never parsed.
 */
import type { Logger } from 'pino';
import type { LocalIdentity } from '../core/pki/local-identity.js';
import {
  decodeBody,
  ProtocolError,
  readHeader,
  verifyHeader,
  type EnvelopeHeader,
} from '../core/protocol/index.js';
import type { RelayConnection } from './connection.js';
import type { ConnectionControl } from './control.js';
import { RelayRefusal } from './errors.js';
import type { Forwarder } from './forwarding.js';
import type { LogFanout } from './log-fanout.js';
import type { RelayLimits } from './limits.js';
import type { Membership } from './membership.js';
import { refusalCode, type Refusals } from './refusals.js';
import type { RelayFrames } from './relay-frames.js';
import { route } from './routing.js';
import type { SyncSessions } from './sync-session.js';

/** What a relay with a store uses: the log's fan-out and the SYNC sessions. */
export interface LoggedFrames {
  fanout: LogFanout;
  syncs: SyncSessions;
}

/** The types that go through the log on a relay with a store (docs/protocol.md "What is logged"). */
const LOGGED_TYPES: ReadonlySet<string> = new Set(['ENCRYPTED_TEXT', 'KEY_DISTRIBUTION']);

export class MemberFrames {
  /** Where a member's ROSTER upload goes (roster-gate.ts); set by the server. */
  onRoster: ((conn: RelayConnection, payload: Buffer) => void) | undefined;
  /** Where a member's PREKEY goes (prekey-gate.ts); set by the server. */
  onPrekey: ((conn: RelayConnection, header: EnvelopeHeader, payload: Buffer) => void) | undefined;
  /**
   * On a cluster node (cluster/wiring.ts): members on other nodes, to route targeted frames and
   * answer CERT_REQUEST for them.
   */
  remote:
    | {
        has(name: string): boolean;
        forward(name: string, payload: Buffer): void;
        certificate(name: string): Buffer | undefined;
      }
    | undefined;

  constructor(
    private readonly identity: LocalIdentity,
    private readonly limits: RelayLimits,
    private readonly log: Logger,
    private readonly frames: RelayFrames,
    private readonly membership: Membership,
    private readonly refusals: Refusals,
    private readonly forwarder: Forwarder,
    private readonly control: ConnectionControl,
    /** Set on a relay with a store; without it the relay behaves as protocol v1. */
    private readonly logged?: LoggedFrames,
  ) {}

  /** One frame from member `conn`, `payload` decoded from read `chunk` at `now`. */
  onFrame(conn: RelayConnection, payload: Buffer, chunk: Buffer, now: number): void {
    let header: EnvelopeHeader;
    try {
      header = readHeader(payload);
    } catch (err) {
      conn.charge(payload.length, 1, now);
      if (!(err instanceof ProtocolError)) throw err;
      this.refusals.refuseFrame(conn, refusalCode(err.code), err.message);
      return;
    }
    // Each costs the relay RSA work (a PREKEY: two verifications and a store write).
    const costly = header.type === 'CERT_REQUEST' || header.type === 'ROSTER' || header.type === 'PREKEY';
    conn.charge(payload.length, costly ? this.limits.certRequestCost : 1, now);
    if (header.type === 'ROSTER' && this.onRoster) {
      // The CA-signed envelope as it is (sender: the CA certificate), not a frame of this member.
      this.onRoster(conn, payload);
      return;
    }
    const logged = this.logged;
    // Counted before routing can refuse it: see MemberLogState.sent.
    const n = logged && LOGGED_TYPES.has(header.type) ? logged.fanout.count(conn) : 0;
    try {
      const remote = this.remote;
      const r = route(header, conn, this.membership.byName, {
        storeTargeted: logged !== undefined,
        ...(remote ? { remote: (name: string) => remote.has(name) } : {}),
      });
      switch (r.kind) {
        case 'broadcast':
          if (logged && header.type === 'ENCRYPTED_TEXT') logged.fanout.append(conn, n, payload, chunk);
          else this.forwarder.broadcast(conn, payload, chunk);
          return;
        case 'store-for':
          if (!logged) throw new Error('store-for without a log');
          logged.fanout.append(conn, n, payload, chunk, r.name);
          return;
        case 'sync': {
          this.verifyOwn(conn, header);
          const body = decodeBody('SYNC', header.body);
          if (!logged) throw new RelayRefusal('NotAllowed', 'this relay keeps no log');
          logged.syncs.start(conn, body);
          return;
        }
        case 'forward':
          this.forwarder.forward(r.to, payload, chunk);
          return;
        case 'remote':
          this.remote?.forward(r.name, payload);
          return;
        case 'cert-request':
          this.answerCertRequest(conn, header);
          return;
        case 'prekey':
          if (!this.onPrekey) throw new RelayRefusal('NotAllowed', 'this relay takes no prekeys');
          this.onPrekey(conn, header, payload);
          return;
        case 'heartbeat': {
          const { session } = decodeBody('HEARTBEAT', header.body);
          if (!conn.challenge || !session.equals(conn.challenge)) {
            throw new RelayRefusal('NotAllowed', 'HEARTBEAT for another session');
          }
          return;
        }
        case 'disconnect':
          this.verifyOwn(conn, header);
          decodeBody('DISCONNECT', header.body);
          this.forwarder.broadcast(conn, payload, chunk);
          this.control.drop(conn, 'disconnect');
          return;
      }
    } catch (err) {
      if (err instanceof RelayRefusal) {
        this.refusals.refuseFrame(conn, err.code, err.message);
        return;
      }
      if (err instanceof ProtocolError) {
        this.refusals.refuseFrame(conn, refusalCode(err.code), err.message);
        return;
      }
      throw err;
    }
  }

  private verifyOwn(conn: RelayConnection, header: EnvelopeHeader): void {
    if (!conn.certificate) throw new RelayRefusal('NotAuthenticated', 'send CONNECTION first');
    verifyHeader(header, conn.certificate.publicKey);
  }

  private answerCertRequest(conn: RelayConnection, header: EnvelopeHeader): void {
    this.verifyOwn(conn, header);
    const { names } = decodeBody('CERT_REQUEST', header.body);
    const certificates: { name: string; certificate: Buffer }[] = [];
    const unknown: string[] = [];
    for (const name of new Set(names)) {
      const member = this.membership.byName.get(name)?.certificate;
      const remote = member ? undefined : this.remote?.certificate(name);
      if (member) certificates.push({ name, certificate: member.der });
      else if (remote) certificates.push({ name, certificate: remote });
      else if (name === this.identity.name)
        certificates.push({ name, certificate: this.identity.certificate.der });
      else unknown.push(name);
    }
    this.frames.certResponse(this.refusals.sessionOf(conn), certificates, unknown).then(
      (frame) => this.control.guard(conn, () => conn.state === 'member' && this.control.send(conn, frame)),
      (err: unknown) =>
        this.log.error(
          { event: 'internal-error', conn: conn.id, err: String(err) },
          'signing CERT_RESPONSE failed',
        ),
    );
  }
}
