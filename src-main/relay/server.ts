/**
 * Relay S: accepts TCP connections, authenticates members (HELLO / CONNECTION), publishes the
 * signed member list (PRESENCE), answers CERT_REQUEST and forwards members' frames by header.
 * It never holds the group key and never parses a routed frame's body.
 *
 * Every event handler is wrapped: an exception while handling one connection closes that
 * connection and is logged; it cannot take the process down or touch other connections.
 */
import { EventEmitter } from 'node:events';
import { createServer, type AddressInfo, type Server, type Socket } from 'node:net';
import type { TLSSocket } from 'node:tls';
import { Liveness } from '../core/link/liveness.js';
import { acceptLink, peerCertificate } from '../core/link/tls.js';
import { PkiError } from '../core/pki/errors.js';
import { pino, type Logger } from 'pino';
import type { Certificate } from '../core/pki/certificate.js';
import type { LocalIdentity } from '../core/pki/local-identity.js';
import {
  ProtocolError,
  readHeader,
  type EnvelopeHeader,
  type RelayErrorCode,
} from '../core/protocol/index.js';
import { authenticate } from './auth.js';
import { RelayConnection } from './connection.js';
import type { ConnectionControl } from './control.js';
import { RelayRefusal } from './errors.js';
import { resolveLimits, type RelayLimits } from './limits.js';
import { LoginBudgets } from './login-budgets.js';
import { Forwarder, type RelayCounters } from './forwarding.js';
import { LivenessSweep } from './liveness-sweep.js';
import { MemberFrames } from './member-frames.js';
import { Membership } from './membership.js';
import { PendingPool } from './pending-pool.js';
import { Output } from './output.js';
import { PressureReport, type PressureEvent } from './pressure-report.js';
import { RelayFrames, type PresenceMember } from './relay-frames.js';
import { refusalCode, Refusals } from './refusals.js';

export interface RelayServerOptions {
  /** The relay's identity (a relay / serverAuth bundle); its CA is the group's. */
  identity: LocalIdentity;
  limits?: Partial<RelayLimits>;
  /** Structured log sink; silent if omitted. Message bodies are never logged. */
  logger?: Logger;
}

export interface RelayStats {
  /** Open TCP connections, authenticated or not. */
  connections: number;
  /** Connections in the pending pool (not logged in yet). */
  pending: number;
  /** Authenticated members. */
  members: number;
  /** Frames received from clients. */
  framesReceived: number;
  /** Member frames routed (each counted once, however many receivers). */
  framesForwarded: number;
  /** Frame copies written to receivers by forwarding. */
  deliveries: number;
  bytesForwarded: number;
  /** ERROR frames sent, by code. */
  refusals: Partial<Record<RelayErrorCode, number>>;
  /** Current PRESENCE version. */
  membershipVersion: number;
}

export interface RelayEvents {
  /** The member list changed (sent as PRESENCE with this version). */
  members: [members: PresenceMember[], version: number];
  /** listen() succeeded. */
  listening: [address: { host: string; port: number }];
  /** close() finished. */
  closed: [];
}

/** Admission pressure is logged at most this often; budgets are swept at the same pace. */
const ADMISSION_REPORT_MS = 10_000;

export class RelayServer extends EventEmitter<RelayEvents> {
  readonly limits: RelayLimits;
  private readonly identity: LocalIdentity;
  private readonly log: Logger;
  private readonly frames: RelayFrames;
  private server: Server | undefined;
  private readonly connections = new Set<RelayConnection>();
  private readonly budgets: LoginBudgets;
  private readonly pending: PendingPool<number>;
  /** The connections in the pending pool, by id (the pool itself holds ids only). */
  private readonly pendingConns = new Map<number, RelayConnection>();
  private readonly pressure = new PressureReport(ADMISSION_REPORT_MS);
  private nextId = 1;
  private sweepTimer: NodeJS.Timeout | undefined;
  private closing: Promise<void> | undefined;
  private readonly counters: RelayCounters = {
    framesReceived: 0,
    framesForwarded: 0,
    deliveries: 0,
    bytesForwarded: 0,
  };
  private readonly refusals: Refusals;
  private readonly output: Output;
  private readonly membership: Membership;
  private readonly liveness: LivenessSweep;
  private readonly memberFrames: MemberFrames;

  constructor(options: RelayServerOptions) {
    super();
    if (!options.identity.certificate.serverAuth) {
      throw new TypeError(`"${options.identity.name}" is not a relay identity (no serverAuth certificate)`);
    }
    this.identity = options.identity;
    this.limits = resolveLimits(options.limits);
    this.log = options.logger ?? pino({ level: 'silent' });
    this.frames = new RelayFrames(this.identity, this.limits.maxFrameBytes);
    this.budgets = new LoginBudgets(this.limits);
    this.pending = new PendingPool(this.limits);
    const control: ConnectionControl = {
      guard: (conn, fn) => this.guard(conn, fn),
      drop: (conn, reason, last, destroyNow) => this.drop(conn, reason, last, destroyNow),
      send: (conn, data) => this.output.send(conn, data),
    };
    this.refusals = new Refusals(this.frames, this.log, control);
    this.output = new Output(this.limits, this.log, control, this.refusals);
    this.membership = new Membership(this.limits, this.log, this.frames, this.refusals, control, {
      closing: () => this.closing !== undefined,
      changed: (members, version) => this.emit('members', members, version),
    });
    this.liveness = new LivenessSweep(this.limits, this.log, this.membership, control);
    this.memberFrames = new MemberFrames(
      this.identity,
      this.limits,
      this.log,
      this.frames,
      this.membership,
      this.refusals,
      new Forwarder(this.membership, this.output, this.counters),
      control,
    );
  }

  /** Starts listening; `port: 0` picks a free port. Resolves with the bound address. */
  listen(options: { host?: string; port?: number } = {}): Promise<{ host: string; port: number }> {
    if (this.server) return Promise.reject(new Error('the relay is already listening'));
    const server = createServer({ noDelay: true, keepAlive: true, keepAliveInitialDelay: 30_000 });
    this.server = server;
    server.on('connection', (socket) => this.guard(undefined, () => this.accept(socket)));
    return new Promise((resolve, reject) => {
      const onError = (err: Error): void => {
        this.server = undefined;
        reject(err);
      };
      server.once('error', onError);
      server.listen({ host: options.host ?? '127.0.0.1', port: options.port ?? 7443 }, () => {
        server.off('error', onError);
        server.on('error', (err) =>
          this.log.error({ event: 'server-error', err: err.message }, 'listener error'),
        );
        const address = server.address() as AddressInfo;
        const bound = { host: address.address, port: address.port };
        this.sweepTimer = setInterval(
          () => this.guard(undefined, () => this.admissionTick()),
          ADMISSION_REPORT_MS,
        );
        this.sweepTimer.unref();
        this.output.start(this.connections);
        this.liveness.start();
        this.log.info({ event: 'listening', ...bound, relay: this.identity.name }, 'relay listening');
        this.emit('listening', bound);
        resolve(bound);
      });
    });
  }

  /** The bound address, once listening. */
  get address(): { host: string; port: number } | undefined {
    const a = this.server?.address();
    return a && typeof a === 'object' ? { host: a.address, port: a.port } : undefined;
  }

  /** Current members, sorted by name. */
  memberList(): PresenceMember[] {
    return this.membership.list();
  }

  stats(): RelayStats {
    return {
      connections: this.connections.size,
      pending: this.pending.size,
      members: this.membership.size,
      ...this.counters,
      refusals: this.refusals.snapshot(),
      membershipVersion: this.membership.version,
    };
  }

  /**
   * Stops accepting, tells every connection `ERROR ShuttingDown` (fatal), lets them flush for up
   * to closeLingerMs and then closes. Idempotent.
   */
  close(reason = 'the relay is shutting down'): Promise<void> {
    this.closing ??= this.shutdown(reason);
    return this.closing;
  }

  private async shutdown(reason: string): Promise<void> {
    this.log.info({ event: 'shutdown', reason, connections: this.connections.size }, 'relay shutting down');
    this.membership.stop();
    if (this.sweepTimer) clearInterval(this.sweepTimer);
    this.output.stop();
    this.liveness.stop();
    const server = this.server;
    const serverClosed = server
      ? new Promise<void>((resolve) => server.close(() => resolve()))
      : Promise.resolve();
    const sockets = [...this.connections].map(
      (c) =>
        new Promise<void>((resolve) =>
          c.state === 'closed' ? resolve() : c.socket.once('close', () => resolve()),
        ),
    );
    for (const c of [...this.connections]) {
      this.guard(c, () =>
        this.drop(
          c,
          'shutdown',
          c.state === 'hello'
            ? undefined
            : this.frames.error(this.refusals.sessionOf(c), 'ShuttingDown', reason, true),
        ),
      );
    }
    await Promise.all([serverClosed, ...sockets]);
    this.membership.clear();
    this.log.info({ event: 'closed' }, 'relay closed');
    this.emit('closed');
  }

  // ---- accept and authenticate --------------------------------------------------------------

  private accept(raw: Socket): void {
    const remote = raw.remoteAddress ?? 'unknown';
    raw.on('error', () => {
      // ECONNRESET and friends: the TLS socket's 'close' handler does the cleanup.
    });
    if (this.closing) {
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
    this.connections.add(conn);
    this.pendingConns.set(id, conn);
    socket.on('error', (err: NodeJS.ErrnoException) => {
      // A handshake OpenSSL refused (no client certificate, not TLS at all): no member identity
      // answers for it, so the address pays. Resets and the like cost nothing; 'close' cleans up.
      if (conn.state === 'hello' && typeof err.code === 'string' && err.code.startsWith('ERR_SSL_')) {
        this.budgets.addressFailed(remote);
      }
    });
    this.log.info({ event: 'accepted', conn: conn.id, remote }, 'connection accepted');
    socket.on('close', () => this.guard(undefined, () => this.onClosed(conn)));
    conn.authTimer = setTimeout(
      () =>
        this.guard(conn, () =>
          this.drop(
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
    socket.once('secure', () => this.guard(conn, () => this.onLinkUp(conn, socket)));
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
    if (victim) this.drop(victim, 'evicted', undefined, true);
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
        this.guard(conn, () => {
          if (conn.state !== 'hello') return;
          conn.challenge = challenge;
          conn.state = 'awaiting-auth';
          this.output.send(conn, frame);
          socket.on('data', (chunk: Buffer) => this.guard(conn, () => this.onData(conn, chunk)));
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
    this.drop(conn, reason, Buffer.concat([this.frames.refusalHelloFrame(), refusal]));
  }

  private onData(conn: RelayConnection, chunk: Buffer): void {
    if (!conn.open) return;
    let payloads: Buffer[];
    try {
      payloads = conn.decoder.push(chunk);
    } catch (err) {
      if (!(err instanceof ProtocolError)) throw err;
      // Framing is lost: nothing after this can be trusted.
      this.drop(
        conn,
        `framing: ${err.code}`,
        this.refusals.error(conn, refusalCode(err.code), err.message, true),
      );
      return;
    }
    const now = performance.now();
    conn.liveness?.received(now);
    for (const payload of payloads) {
      if (!conn.open) break;
      this.counters.framesReceived++;
      if (conn.state === 'member') this.memberFrames.onFrame(conn, payload, chunk, now);
      else this.onLoginFrame(conn, payload);
    }
  }

  private onLoginFrame(conn: RelayConnection, payload: Buffer): void {
    conn.charge(payload.length);
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
      this.drop(
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
      this.drop(
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
      this.output.send(conn, this.refusals.error(conn, err.code, err.message, false));
    }
  }

  private admit(conn: RelayConnection, cert: Certificate): void {
    if (this.membership.full(cert.name)) {
      this.drop(
        conn,
        'server-full',
        this.refusals.error(conn, 'ServerFull', this.membership.fullMessage(), true),
      );
      return;
    }
    this.leavePending(conn);
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
      this.drop(
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
    this.membership.schedulePresence();
  }

  // ---- membership ----------------------------------------------------------------------------

  /** Closes a connection (optionally after a final ERROR) and removes it from the members. */
  private drop(conn: RelayConnection, reason: string, last?: Buffer, destroyNow = false): void {
    if (!conn.open) return;
    this.output.forget(conn);
    this.leavePending(conn);
    conn.close(reason, last, destroyNow);
    this.membership.leave(conn);
  }

  /** Logged in or closing: the connection's pending slot is free again. */
  private leavePending(conn: RelayConnection): void {
    this.pending.remove(conn.id);
    this.pendingConns.delete(conn.id);
  }

  private onClosed(conn: RelayConnection): void {
    if (conn.open) conn.closeReason ??= 'connection lost';
    conn.closed();
    this.output.forget(conn);
    this.connections.delete(conn);
    this.leavePending(conn);
    this.membership.leave(conn);
    this.log.info(
      { event: 'closed', conn: conn.id, name: conn.name, reason: conn.closeReason },
      'connection closed',
    );
  }

  /** Runs a handler; an exception closes only the connection it belongs to and is logged. */
  private guard(conn: RelayConnection | undefined, fn: () => unknown): void {
    try {
      fn();
    } catch (err) {
      this.log.error(
        {
          event: 'internal-error',
          conn: conn?.id,
          err: err instanceof Error ? (err.stack ?? err.message) : String(err),
        },
        'handler failed',
      );
      if (conn) {
        try {
          this.drop(conn, 'internal-error', undefined, true);
        } catch {
          conn.socket.destroy();
        }
      }
    }
  }
}
