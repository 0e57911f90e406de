/**
 * Relay S: accepts TCP connections, authenticates members (HELLO / CONNECTION), publishes the
 * signed member list (PRESENCE), answers CERT_REQUEST and forwards members' frames by header.
 * It never holds the group key and never parses a routed frame's body.
 *
 * This class is the coordinator: it wires the parts together and owns the connection lifecycle
 * (read → login or member frame, drop, close). The parts: admission-gate.ts (accept, pending pool,
 * TLS link-up, HELLO), login.ts (CONNECTION), membership.ts (members, PRESENCE), member-frames.ts
 * (routing a member's frames), forwarding.ts (frames out, zero-copy), output.ts (once-per-turn
 * flush, SlowConsumer), liveness-sweep.ts (heartbeats), refusals.ts (ERROR frames); with a store,
 * log-fanout.ts (logged frames: to the log, then out), sync-session.ts (SYNC, GAP, replay, LIVE) and
 * log-retention.ts (built by logging-parts.ts); on a cluster node, cluster/ (wired by
 * cluster/wiring.ts).
 *
 * Every event handler is wrapped: an exception while handling one connection closes that
 * connection and is logged; it cannot take the process down or touch other connections.
 */
import { EventEmitter } from 'node:events';
import { createServer, type AddressInfo, type Server } from 'node:net';
import { pino, type Logger } from 'pino';
import type { LocalIdentity } from '../core/pki/local-identity.js';
import { ProtocolError, type RelayErrorCode } from '../core/protocol/index.js';
import { AdmissionGate } from './admission-gate.js';
import type { ClusterNode, ClusterSide } from './cluster/node.js';
import { wireCluster } from './cluster/wiring.js';
import type { RelayConnection } from './connection.js';
import type { ConnectionControl } from './control.js';
import { Forwarder, type RelayCounters } from './forwarding.js';
import type { LogFanoutCounters } from './log-fanout.js';
import type { RetentionCounters } from './log-retention.js';
import { openLogging, type LoggingParts } from './logging-parts.js';
import type { RelayLog } from './log/types.js';
import { resolveLimits, type RelayLimits } from './limits.js';
import { LivenessSweep } from './liveness-sweep.js';
import { Login } from './login.js';
import { LoginBudgets } from './login-budgets.js';
import { MemberFrames } from './member-frames.js';
import { Membership } from './membership.js';
import { Output } from './output.js';
import { RelayFrames, type PresenceMember } from './relay-frames.js';
import { refusalCode, Refusals } from './refusals.js';
import type { SyncCounters } from './sync-session.js';
import { RosterGate } from './roster-gate.js';
import { RosterKeeper } from './roster-keeper.js';
import { PrekeyGate } from './prekey-gate.js';
import { PrekeyKeeper } from './prekey-keeper.js';

export interface RelayServerOptions {
  /** The relay's identity (a relay / serverAuth bundle); its CA is the group's. */
  identity: LocalIdentity;
  limits?: Partial<RelayLimits>;
  /** Structured log sink; silent if omitted. Message bodies are never logged. */
  logger?: Logger;
  /**
   * The durable store (DESIGN §10.3): the store-and-forward log and, in its meta, the highest
   * roster. Opened and closed by whoever starts the relay (`securechat-x relay --data-dir`, the
   * app's relay child); the relay never closes it.
   */
  store?: RelayLog;
  /**
   * The roster file's bytes (`--roster roster.scx`), verified against the relay's CA here (a
   * RelayRosterError if they do not verify). listen() keeps the newer of it and the stored one;
   * an older one is logged and ignored. Without a roster at all, nobody is admitted (NoRoster).
   */
  roster?: Buffer;
  /**
   * A cluster node (`--cluster`, cluster/node.ts) whose log is `store`: members on every node share
   * the log's live frames, presence and the roster. Opened and stopped by whoever starts the relay.
   */
  cluster?: ClusterNode;
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
  /** The log's side (relays with a store only). */
  log?: LogFanoutCounters & SyncCounters & RetentionCounters;
  /** The version of the roster the relay holds (undefined: none yet). */
  rosterVersion: number | undefined;
  /** Members whose latest prekey the relay holds. */
  prekeys: number;
}

export interface RelayEvents {
  /** The member list changed (sent as PRESENCE with this version). */
  members: [members: PresenceMember[], version: number];
  /** listen() succeeded. */
  listening: [address: { host: string; port: number }];
  /** close() finished. */
  closed: [];
}

export class RelayServer extends EventEmitter<RelayEvents> {
  readonly limits: RelayLimits;
  private readonly identity: LocalIdentity;
  private readonly log: Logger;
  private readonly frames: RelayFrames;
  private server: Server | undefined;
  /** listen() was called (the roster loads before the socket is bound). */
  private listening = false;
  private readonly connections = new Set<RelayConnection>();
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
  private readonly gate: AdmissionGate;
  private readonly login: Login;
  private readonly logging: LoggingParts | undefined;
  private readonly rosterKeeper: RosterKeeper;
  private readonly rosterGate: RosterGate;
  private readonly prekeyKeeper: PrekeyKeeper;
  private readonly cluster: { node: ClusterNode; side: ClusterSide } | undefined;

  constructor(options: RelayServerOptions) {
    super();
    if (!options.identity.certificate.serverAuth) {
      throw new TypeError(`"${options.identity.name}" is not a relay identity (no serverAuth certificate)`);
    }
    this.identity = options.identity;
    this.limits = resolveLimits(options.limits);
    this.log = options.logger ?? pino({ level: 'silent' });
    this.frames = new RelayFrames(this.identity, this.limits.maxFrameBytes, options.store?.streamId);
    const budgets = new LoginBudgets(this.limits);
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
    this.rosterKeeper = new RosterKeeper(this.identity.ca, options.store, this.log, options.roster);
    this.rosterGate = new RosterGate(
      this.rosterKeeper,
      this.limits,
      this.log,
      this.membership,
      this.refusals,
      control,
      { readmit: (conn) => this.login.readmit(conn) },
    );
    this.liveness = new LivenessSweep(this.limits, this.log, this.membership, control);
    this.logging = options.store
      ? openLogging(options.store, {
          membership: this.membership,
          output: this.output,
          counters: this.counters,
          frames: this.frames,
          refusals: this.refusals,
          limits: this.limits,
          log: this.log,
          control,
        })
      : undefined;
    const forwarder = new Forwarder(this.membership, this.output, this.counters);
    this.memberFrames = new MemberFrames(
      this.identity,
      this.limits,
      this.log,
      this.frames,
      this.membership,
      this.refusals,
      forwarder,
      control,
      this.logging,
    );
    this.memberFrames.onRoster = (conn, payload) => this.rosterGate.upload(conn, payload);
    this.prekeyKeeper = new PrekeyKeeper(options.store, this.log);
    const prekeys = new PrekeyGate(
      this.prekeyKeeper,
      this.rosterKeeper,
      this.frames,
      this.refusals,
      forwarder,
      control,
      this.log,
    );
    this.memberFrames.onPrekey = (conn, header, payload) => prekeys.onPrekey(conn, header, payload);
    this.gate = new AdmissionGate(
      this.identity,
      this.limits,
      this.log,
      this.frames,
      budgets,
      this.membership,
      this.refusals,
      control,
      {
        closing: () => this.closing !== undefined,
        opened: (conn) => this.connections.add(conn),
        data: (conn, chunk) => this.onData(conn, chunk),
        closed: (conn) => this.onClosed(conn),
      },
    );
    this.login = new Login(
      this.identity,
      this.limits,
      this.log,
      this.frames,
      budgets,
      this.membership,
      this.refusals,
      this.gate,
      control,
      this.rosterGate,
    );
    this.login.prekeys = prekeys;
    const node = options.cluster;
    if (node && !this.logging) throw new TypeError('a cluster node needs its store (the shared log)');
    this.cluster =
      node && this.logging
        ? {
            node,
            side: wireCluster(node, {
              ...this.logging,
              membership: this.membership,
              memberFrames: this.memberFrames,
              login: this.login,
              rosterGate: this.rosterGate,
              prekeyGate: prekeys,
              output: this.output,
              counters: this.counters,
              control,
              dropAll: (reason) => this.dropAll('Unavailable', reason),
              drop: (conns, reason) => this.dropAll('Unavailable', reason, conns),
            }),
          }
        : undefined;
  }

  /**
   * Loads the roster (the stored one and the --roster file's, keeping the newer and storing it),
   * then starts listening; `port: 0` picks a free port. Resolves with the bound address.
   */
  async listen(options: { host?: string; port?: number } = {}): Promise<{ host: string; port: number }> {
    if (this.server || this.listening) throw new Error('the relay is already listening');
    this.listening = true;
    try {
      await this.rosterKeeper.load();
      await this.prekeyKeeper.load();
      await this.cluster?.node.start(this.cluster.side);
    } catch (err) {
      this.listening = false;
      throw err;
    }
    return this.bind(options);
  }

  private bind(options: { host?: string; port?: number }): Promise<{ host: string; port: number }> {
    const server = createServer({ noDelay: true, keepAlive: true, keepAliveInitialDelay: 30_000 });
    this.server = server;
    server.on('connection', (socket) => this.guard(undefined, () => this.gate.accept(socket)));
    return new Promise((resolve, reject) => {
      const onError = (err: Error): void => {
        this.server = undefined;
        this.listening = false;
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
        this.gate.start();
        this.output.start(this.connections);
        this.liveness.start();
        this.logging?.retention.start();
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
      pending: this.gate.pendingCount,
      members: this.membership.size,
      ...this.counters,
      refusals: this.refusals.snapshot(),
      membershipVersion: this.membership.version,
      ...(this.logging
        ? {
            log: {
              ...this.logging.fanout.stats,
              ...this.logging.syncs.stats,
              ...this.logging.retention.stats,
            },
          }
        : {}),
      rosterVersion: this.rosterKeeper.current?.version,
      prekeys: this.prekeyKeeper.size,
    };
  }

  /** Resolves once a retention run in progress (if any) has finished (tests). */
  retentionIdle(): Promise<void> {
    return this.logging?.retention.idle ?? Promise.resolve();
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
    this.gate.stop();
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
    // Before whoever opened the store closes it: what is queued is committed, retention stopped.
    if (this.logging) {
      await this.logging.retention.stop();
      await this.logging.fanout.flush();
    }
    await this.cluster?.node.stop();
    this.log.info({ event: 'closed' }, 'relay closed');
    this.emit('closed');
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
      else this.login.onFrame(conn, payload);
    }
  }

  // ---- connection lifecycle ------------------------------------------------------------------

  /** Closes every connection (or these) with a fatal `code` (members reconnect elsewhere or later). */
  private dropAll(code: RelayErrorCode, reason: string, only?: readonly RelayConnection[]): void {
    for (const c of only ?? [...this.connections]) {
      this.guard(c, () =>
        this.drop(
          c,
          code,
          c.state === 'hello' ? undefined : this.frames.error(this.refusals.sessionOf(c), code, reason, true),
        ),
      );
    }
  }

  /** Closes a connection (optionally after a final ERROR) and removes it from the members. */
  private drop(conn: RelayConnection, reason: string, last?: Buffer, destroyNow = false): void {
    if (!conn.open) return;
    this.output.forget(conn);
    this.gate.leavePending(conn);
    this.rosterGate.forget(conn);
    conn.close(reason, last, destroyNow);
    this.membership.leave(conn);
  }

  private onClosed(conn: RelayConnection): void {
    if (conn.open) conn.closeReason ??= 'connection lost';
    conn.closed();
    this.output.forget(conn);
    this.connections.delete(conn);
    this.gate.leavePending(conn);
    this.rosterGate.forget(conn);
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
