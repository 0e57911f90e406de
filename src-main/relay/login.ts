/**
 * Login: on a link whose certificate passed the admission gate, CONNECTION must answer the HELLO
 * challenge with that same certificate. Failures are charged to the identity's budget; a login
 * makes the connection a member (replacing an older login of the same name).
 */
import type { Logger } from 'pino';
import { Liveness } from '../core/link/liveness.js';
import type { Certificate } from '../core/pki/certificate.js';
import type { LocalIdentity } from '../core/pki/local-identity.js';
import { ProtocolError, readHeader, type EnvelopeHeader } from '../core/protocol/index.js';
import type { AdmissionGate } from './admission-gate.js';
import { authenticate } from './auth.js';
import type { RelayConnection } from './connection.js';
import type { ConnectionControl } from './control.js';
import { RelayRefusal } from './errors.js';
import type { RelayLimits } from './limits.js';
import type { LoginBudgets } from './login-budgets.js';
import type { Membership } from './membership.js';
import { refusalCode, type Refusals } from './refusals.js';
import type { RelayFrames } from './relay-frames.js';
import type { RosterGate } from './roster-gate.js';
import type { PrekeyGate } from './prekey-gate.js';

export class Login {
  /** Sends PREKEYS after the ROSTER at login (prekey-gate.ts); set by the server. */
  prekeys: PrekeyGate | undefined;
  /** On a cluster node: why it takes no members now (its NATS link is down), else undefined. */
  unavailable: (() => string | undefined) | undefined;

  constructor(
    private readonly identity: LocalIdentity,
    private readonly limits: RelayLimits,
    private readonly log: Logger,
    private readonly frames: RelayFrames,
    private readonly budgets: LoginBudgets,
    private readonly membership: Membership,
    private readonly refusals: Refusals,
    private readonly gate: AdmissionGate,
    private readonly control: ConnectionControl,
    private readonly roster: RosterGate,
  ) {}

  /**
   * A frame from `conn` before it logged in: only CONNECTION is accepted (in the roster-only
   * window, only a ROSTER upload).
   */
  onFrame(conn: RelayConnection, payload: Buffer): void {
    conn.charge(payload.length);
    if (conn.state === 'roster-only') {
      this.roster.onWindowFrame(conn, payload);
      return;
    }
    let header: EnvelopeHeader;
    try {
      header = readHeader(payload);
    } catch (err) {
      if (!(err instanceof ProtocolError)) throw err;
      this.refusals.refuseFrame(conn, refusalCode(err.code), err.message);
      return;
    }
    let cert: Certificate;
    try {
      if (!conn.challenge) throw new Error('login frame before HELLO');
      cert = authenticate(header, conn.challenge, this.identity);
      if (cert.fingerprintHex !== conn.linkCertificate?.fingerprintHex) {
        throw new RelayRefusal('AuthFailed', 'CONNECTION presents another certificate than the TLS link');
      }
    } catch (err) {
      if (!(err instanceof RelayRefusal)) throw err;
      if (err.code === 'NotAuthenticated' || err.code === 'SchemaViolation') {
        this.refusals.refuseFrame(conn, err.code, err.message);
        return;
      }
      this.authFailed(conn, err);
      return;
    }
    this.admit(conn, cert);
  }

  private authFailed(conn: RelayConnection, err: RelayRefusal): void {
    conn.authFailures++;
    // CONNECTION is only read on a link whose certificate passed the group's checks: the failure
    // is that identity's, whatever address it came from.
    const identity = conn.linkCertificate;
    if (!identity) throw new Error('CONNECTION on a link without a certificate');
    const withinBudget = this.budgets.identityFailed(identity.fingerprintHex);
    this.log.warn(
      {
        event: 'auth-failed',
        conn: conn.id,
        remote: conn.remote,
        name: identity.name,
        code: err.code,
        reason: err.message,
      },
      'login refused',
    );
    if (!withinBudget) {
      const retryAfterMs = this.budgets.identityRetryAfter(identity.fingerprintHex);
      this.control.drop(
        conn,
        'rate-limited',
        this.refusals.error(
          conn,
          'RateLimited',
          `${err.message}; too many failed logins for ${identity.name}; retry in ${retryAfterMs / 1000} s`,
          true,
          retryAfterMs,
        ),
      );
    } else if (conn.authFailures >= this.limits.maxAuthFailures) {
      this.control.drop(
        conn,
        'auth-failed',
        this.refusals.error(
          conn,
          err.code,
          `${err.message}; ${conn.authFailures} failed logins on this connection`,
          true,
        ),
      );
    } else {
      this.control.send(conn, this.refusals.error(conn, err.code, err.message, false));
    }
  }

  /** A connection of the roster-only window, after a roster arrived: admission once more. */
  readmit(conn: RelayConnection): void {
    if (conn.state === 'roster-only' && conn.certificate) this.admit(conn, conn.certificate);
  }

  private admit(conn: RelayConnection, cert: Certificate): void {
    const down = this.unavailable?.();
    if (down !== undefined) {
      this.control.drop(conn, 'unavailable', this.refusals.error(conn, 'Unavailable', down, true));
      return;
    }
    if (this.membership.full(cert.name)) {
      this.control.drop(
        conn,
        'server-full',
        this.refusals.error(conn, 'ServerFull', this.membership.fullMessage(), true),
      );
      return;
    }
    if (!this.roster.admits(conn, cert)) return;
    this.gate.leavePending(conn);
    conn.certificate = cert;
    conn.state = 'member';
    conn.decoder.maxFrameBytes = this.limits.maxFrameBytes;
    conn.liveness = new Liveness(
      { intervalMs: this.limits.heartbeatIntervalMs, timeoutMs: this.limits.heartbeatTimeoutMs },
      performance.now(),
    );
    conn.heartbeatFrame = this.frames.heartbeat(this.refusals.sessionOf(conn));
    if (conn.authTimer) clearTimeout(conn.authTimer);
    conn.authTimer = undefined;
    const previous = this.membership.join(conn, cert.name);
    if (previous && previous !== conn) {
      this.log.info({ event: 'replaced', name: cert.name, conn: previous.id, by: conn.id }, 'login replaced');
      previous.closeReason = 'replaced';
      this.control.drop(
        previous,
        'replaced',
        this.refusals.error(previous, 'Replaced', `${cert.name} logged in on another connection`, true),
      );
    }
    this.log.info(
      {
        event: 'joined',
        conn: conn.id,
        remote: conn.remote,
        name: cert.name,
        fingerprint: cert.fingerprintHex,
      },
      'member joined',
    );
    // The roster before PRESENCE: a member knows who belongs before it hears who is here.
    this.roster.welcome(conn);
    this.prekeys?.welcome(conn);
    this.membership.schedulePresence();
  }
}
