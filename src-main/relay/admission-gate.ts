/**
 * The admission gate: a TCP connection is accepted into the pending pool (or closed at once when
 * its address spent its budget or has too many pending), the TLS link comes up, the member
 * certificate it presented is checked against the group, and HELLO is sent. Until the member
 * logs in (login.ts) it holds a pending slot and must do so within the auth deadline.
 */
import type { Socket } from 'node:net';
import type { TLSSocket } from 'node:tls';
import type { Logger } from 'pino';
import { acceptLink, peerCertificate } from '../core/link/tls.js';
import type { Certificate } from '../core/pki/certificate.js';
import { PkiError } from '../core/pki/errors.js';
import type { LocalIdentity } from '../core/pki/local-identity.js';
import type { RelayErrorCode } from '../core/protocol/index.js';
import { RelayConnection } from './connection.js';
import type { ConnectionControl } from './control.js';
import type { RelayLimits } from './limits.js';
import type { LoginBudgets } from './login-budgets.js';
import type { Membership } from './membership.js';
import { PendingPool } from './pending-pool.js';
import { PressureReport, type PressureEvent } from './pressure-report.js';
import type { Refusals } from './refusals.js';
import type { RelayFrames } from './relay-frames.js';

/** Admission pressure is logged at most this often; budgets are swept at the same pace. */
const ADMISSION_REPORT_MS = 10_000;

export interface AdmissionHooks {
  /** True once the relay is shutting down: nothing more is accepted. */
  closing(): boolean;
  /** A connection was accepted (TLS starts). */
  opened(conn: RelayConnection): void;
  /** HELLO went out: the connection's reads from now on. */
  data(conn: RelayConnection, chunk: Buffer): void;
  /** The connection's socket closed. */
  closed(conn: RelayConnection): void;
}

export class AdmissionGate {
  private readonly pending: PendingPool<number>;
  /** The connections in the pending pool, by id (the pool itself holds ids only). */
  private readonly pendingConns = new Map<number, RelayConnection>();
  private readonly pressure = new PressureReport(ADMISSION_REPORT_MS);
  private nextId = 1;
  private sweepTimer: NodeJS.Timeout | undefined;

  constructor(
    private readonly identity: LocalIdentity,
    private readonly limits: RelayLimits,
    private readonly log: Logger,
    private readonly frames: RelayFrames,
    private readonly budgets: LoginBudgets,
    private readonly membership: Membership,
    private readonly refusals: Refusals,
    private readonly control: ConnectionControl,
    private readonly hooks: AdmissionHooks,
  ) {
    this.pending = new PendingPool(limits);
  }

  /** Connections in the pending pool (not logged in yet). */
  get pendingCount(): number {
    return this.pending.size;
  }

  /** Starts the periodic pressure report and budget sweep. */
  start(): void {
    this.sweepTimer = setInterval(
      () => this.control.guard(undefined, () => this.admissionTick()),
      ADMISSION_REPORT_MS,
    );
    this.sweepTimer.unref();
  }

  stop(): void {
    if (this.sweepTimer) clearInterval(this.sweepTimer);
  }

  /** Logged in or closing: the connection's pending slot is free again. */
  leavePending(conn: RelayConnection): void {
    this.pending.remove(conn.id);
    this.pendingConns.delete(conn.id);
  }

  /** A TCP connection came in. */
  accept(raw: Socket): void {
    const remote = raw.remoteAddress ?? 'unknown';
    raw.on('error', () => {
      // ECONNRESET and friends: the TLS socket's 'close' handler does the cleanup.
    });
    if (this.hooks.closing()) {
      raw.destroy();
      return;
    }
    // Both refusals below close the socket before any TLS work: a flood costs an accept and a
    // close, and no handshake. There is no way to say why without TLS; the client's retry is the
    // same as after any dropped connection.
    if (this.budgets.addressRetryAfter(remote) > 0) {
      this.closeAtAccept(raw, 'refusedAddressBudget');
      return;
    }
    const id = this.nextId++;
    const decision = this.pending.admit(id, remote);
    if (!decision.admitted) {
      this.closeAtAccept(raw, 'refusedPerAddress');
      return;
    }
    if (decision.evict !== undefined) this.evict(decision.evict);
    if (decision.underPressure) this.notePressure('shortDeadline');
    raw.setNoDelay(true);
    raw.setKeepAlive(true, 30_000);
    const socket = acceptLink(raw, this.identity.linkContext);
    const conn = new RelayConnection(id, socket, remote, this.limits);
    this.hooks.opened(conn);
    this.pendingConns.set(id, conn);
    socket.on('error', (err: NodeJS.ErrnoException) => {
      // A handshake OpenSSL refused (no client certificate, not TLS at all): no member identity
      // answers for it, so the address pays. Resets and the like cost nothing; 'close' cleans up.
      if (conn.state === 'hello' && typeof err.code === 'string' && err.code.startsWith('ERR_SSL_')) {
        this.budgets.addressFailed(remote);
      }
    });
    this.log.info({ event: 'accepted', conn: conn.id, remote }, 'connection accepted');
    socket.on('close', () => this.control.guard(undefined, () => this.hooks.closed(conn)));
    conn.authTimer = setTimeout(
      () =>
        this.control.guard(conn, () =>
          this.control.drop(
            conn,
            'auth-timeout',
            conn.state === 'hello'
              ? undefined
              : this.refusals.error(
                  conn,
                  'AuthTimeout',
                  `not authenticated within ${decision.deadlineMs} ms`,
                  true,
                ),
          ),
        ),
      decision.deadlineMs,
    );
    socket.once('secure', () => this.control.guard(conn, () => this.onLinkUp(conn, socket)));
  }

  private closeAtAccept(raw: Socket, why: PressureEvent): void {
    raw.destroy();
    this.notePressure(why);
  }

  /** The pending pool is full: the connection it chose makes room for a newer one. */
  private evict(id: number): void {
    const victim = this.pendingConns.get(id);
    this.pendingConns.delete(id);
    this.notePressure('evicted');
    // Closed without a word: most victims of a flood never finished TLS, and a member that was
    // evicted simply reconnects.
    if (victim) this.control.drop(victim, 'evicted', undefined, true);
  }

  private notePressure(event: PressureEvent): void {
    const counts = this.pressure.note(event);
    if (counts) this.logPressure(counts);
  }

  private logPressure(counts: Record<PressureEvent, number>): void {
    this.log.warn(
      { event: 'admission-pressure', pending: this.pending.size, ...counts },
      'connections that do not log in are being turned away',
    );
  }

  private admissionTick(): void {
    const counts = this.pressure.flush();
    if (counts) this.logPressure(counts);
    this.budgets.sweep();
  }

  /**
   * The TLS handshake finished: the peer proved it holds the key of the certificate it presented.
   * That certificate must be a member's of this group before the relay spends a signature on HELLO.
   */
  private onLinkUp(conn: RelayConnection, socket: TLSSocket): void {
    const presented = peerCertificate(socket);
    let cert: Certificate;
    try {
      if (!presented) throw new PkiError('BadCertificate', 'no client certificate');
      cert = this.identity.validator.validate(presented, { role: 'member' });
    } catch (err) {
      const why =
        err instanceof PkiError
          ? `${err.message} (${err.code})`
          : err instanceof Error
            ? err.message
            : String(err);
      this.log.warn(
        { event: 'link-refused', conn: conn.id, remote: conn.remote, reason: why },
        'TLS peer refused',
      );
      this.budgets.addressFailed(conn.remote);
      // Say why (a member of another group, an expired certificate): its client stops retrying.
      this.refuseLink(conn, 'link-refused', 'CertificateRejected', `certificate refused: ${why}`);
      return;
    }
    conn.linkCertificate = cert;
    this.pending.markLinked(conn.id);
    const retryAfterMs = this.budgets.identityRetryAfter(cert.fingerprintHex);
    if (retryAfterMs > 0) {
      this.refuseLink(
        conn,
        'rate-limited',
        'RateLimited',
        `too many failed logins for ${cert.name}; retry in ${retryAfterMs / 1000} s`,
        retryAfterMs,
      );
      return;
    }
    if (this.membership.full(cert.name)) {
      this.refuseLink(conn, 'server-full', 'ServerFull', this.membership.fullMessage());
      return;
    }
    this.frames.hello().then(
      ({ challenge, frame }) =>
        this.control.guard(conn, () => {
          if (conn.state !== 'hello') return;
          conn.challenge = challenge;
          conn.state = 'awaiting-auth';
          this.control.send(conn, frame);
          socket.on('data', (chunk: Buffer) => this.control.guard(conn, () => this.hooks.data(conn, chunk)));
        }),
      (err: unknown) => {
        this.log.error({ event: 'internal-error', conn: conn.id, err: String(err) }, 'signing HELLO failed');
        socket.destroy();
      },
    );
  }

  /**
   * Refuses a link before HELLO: the refusal HELLO is signed once for all and the ERROR is cached
   * per message, so refusing costs no RSA work per connection.
   */
  private refuseLink(
    conn: RelayConnection,
    reason: string,
    code: RelayErrorCode,
    message: string,
    retryAfterMs?: number,
  ): void {
    const refusal = this.refusals.error(conn, code, message, true, retryAfterMs);
    this.control.drop(conn, reason, Buffer.concat([this.frames.refusalHelloFrame(), refusal]));
  }
}
