/**
 * Real nats-server processes with JetStream on 127.0.0.1, for the relay's JetStream log (DESIGN
 * §10.7): one server, or a 3-server cluster (routes between all, a server name each). Readiness is
 * waited for by events, never by a sleep: each server's "Server is ready" line, in a cluster each
 * server's line about the JetStream metadata leader, then a client connection whose JetStream
 * account info request succeeds (it fails while the cluster has no metadata leader).
 *
 * Processes are stopped by PID (SIGTERM, then SIGKILL after a timeout); one can be killed with -9
 * and restarted on the same store directory and ports. No vitest import: the bench uses this too.
 */
import { spawn, spawnSync, type ChildProcess } from 'node:child_process';
import { mkdtempSync, rmSync } from 'node:fs';
import { createServer } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { connect, type NatsConnection } from '@nats-io/transport-node';
import { jetstreamManager } from '@nats-io/jetstream';

export const NATS_SERVER = process.env.NATS_SERVER ?? 'nats-server';
const HOST = '127.0.0.1';

/** A missing server is a setup step, said as one (not a spawn ENOENT deep in a test). */
function requireNatsServer(): void {
  const probe = spawnSync(NATS_SERVER, ['--version'], { encoding: 'utf8' });
  if (probe.error || probe.status !== 0) {
    throw new Error(
      `${NATS_SERVER} is needed for the JetStream log tests and was not found: ` +
        'apt-get install -y nats-server (Debian), or set NATS_SERVER to its path',
    );
  }
}
const READY_TIMEOUT_MS = 30_000;
const STOP_TIMEOUT_MS = 10_000;
/** Kept per process so a failure message can show what the server said, without growing forever. */
const STDERR_KEEP = 64 * 1024;

export interface NatsServer {
  readonly name: string;
  readonly port: number;
  readonly clusterPort: number | undefined;
  readonly storeDir: string;
  /** nats://127.0.0.1:PORT */
  readonly url: string;
  /** PID of the current process, undefined while it is stopped. */
  pid(): number | undefined;
  alive(): boolean;
  /** The tail of what the current process wrote to stderr (nats-server logs there). */
  stderr(): string;
}

export interface NatsCluster {
  readonly servers: readonly NatsServer[];
  /** Client URLs of every server, for `connect({ servers })`. */
  readonly urls: string[];
  /** A client connection to every server's URL, closed by stop(); handy for checks in tests. */
  connect(): Promise<NatsConnection>;
  /** SIGKILL one server (no shutdown at all) and wait until the process is gone. */
  kill9(index: number): Promise<void>;
  /** SIGTERM one server (SIGKILL after a timeout). */
  stopServer(index: number): Promise<void>;
  /** Start a stopped server again on the same store directory and ports; waits for readiness. */
  restart(index: number): Promise<void>;
  /** Stop every server, then start them all again (same directories and ports). */
  restartAll(): Promise<void>;
  /** Stops every server and removes the store directories. Idempotent. */
  stop(): Promise<void>;
}

interface Running {
  child: ChildProcess;
  exited: Promise<void>;
  exitCode: number | null | undefined;
  err: string;
  /** Called on every stderr chunk and on exit, to re-check what someone waits for. */
  onChange: Set<() => void>;
}

/** Processes still running, killed if the test process exits without stopping them. */
const live = new Set<ChildProcess>();
process.once('exit', () => {
  for (const child of live) child.kill('SIGKILL');
});

async function freePorts(count: number): Promise<number[]> {
  // All listeners stay open until every port is known, so the same port is not handed out twice.
  const servers = await Promise.all(
    Array.from(
      { length: count },
      () =>
        new Promise<ReturnType<typeof createServer>>((resolve, reject) => {
          const s = createServer();
          s.once('error', reject);
          s.listen(0, HOST, () => resolve(s));
        }),
    ),
  );
  const ports = servers.map((s) => {
    const address = s.address();
    if (address === null || typeof address === 'string') throw new Error('no port');
    return address.port;
  });
  await Promise.all(servers.map((s) => new Promise<void>((resolve) => s.close(() => resolve()))));
  return ports;
}

class Server implements NatsServer {
  readonly url: string;
  private running: Running | undefined;

  constructor(
    readonly name: string,
    readonly port: number,
    readonly clusterPort: number | undefined,
    private readonly routes: number[],
    readonly storeDir: string,
  ) {
    this.url = `nats://${HOST}:${port}`;
  }

  pid(): number | undefined {
    return this.alive() ? this.running?.child.pid : undefined;
  }

  alive(): boolean {
    return this.running !== undefined && this.running.exitCode === undefined;
  }

  stderr(): string {
    return this.running?.err ?? '';
  }

  start(): void {
    if (this.alive()) throw new Error(`${this.name} is already running`);
    const args = [
      '-js',
      '-sd',
      this.storeDir,
      '-a',
      HOST,
      '-p',
      String(this.port),
      '--server_name',
      this.name,
    ];
    if (this.clusterPort !== undefined) {
      args.push('--cluster_name', 'scx-test', '--cluster', `nats://${HOST}:${this.clusterPort}`);
      args.push('--routes', this.routes.map((p) => `nats://${HOST}:${p}`).join(','));
    }
    const child = spawn(NATS_SERVER, args, { stdio: ['ignore', 'ignore', 'pipe'] });
    live.add(child);
    let exited!: () => void;
    const running: Running = {
      child,
      exitCode: undefined,
      err: '',
      onChange: new Set(),
      exited: new Promise<void>((resolve) => (exited = resolve)),
    };
    const done = (code: number | null): void => {
      if (running.exitCode !== undefined) return;
      running.exitCode = code;
      live.delete(child);
      for (const f of running.onChange) f();
      exited();
    };
    child.once('exit', (code) => done(code));
    // A missing binary is an 'error' without an 'exit'.
    child.once('error', (e) => {
      running.err += `\nspawn ${NATS_SERVER}: ${e.message}`;
      done(-1);
    });
    child.stderr?.setEncoding('utf8').on('data', (chunk: string) => {
      running.err = (running.err + chunk).slice(-STDERR_KEEP);
      for (const f of running.onChange) f();
    });
    this.running = running;
  }

  /** Resolves once `pattern` appears in this process's stderr; rejects if it exits or times out. */
  waitFor(pattern: RegExp, what: string, timeoutMs = READY_TIMEOUT_MS): Promise<void> {
    const running = this.running;
    if (running === undefined) return Promise.reject(new Error(`${this.name} is not started`));
    return new Promise<void>((resolve, reject) => {
      const check = (): void => {
        if (pattern.test(running.err)) finish();
        else if (running.exitCode !== undefined) {
          finish(
            new Error(
              `${this.name} exited (${running.exitCode}) before ${what}: ${running.err.slice(-2000)}`,
            ),
          );
        }
      };
      const timer = setTimeout(
        () =>
          finish(new Error(`${this.name}: no ${what} within ${timeoutMs} ms: ${running.err.slice(-2000)}`)),
        timeoutMs,
      );
      const finish = (error?: Error): void => {
        clearTimeout(timer);
        running.onChange.delete(check);
        if (error) reject(error);
        else resolve();
      };
      running.onChange.add(check);
      check();
    });
  }

  async stop(signal: NodeJS.Signals = 'SIGTERM'): Promise<void> {
    const running = this.running;
    if (running === undefined || running.exitCode !== undefined) return;
    running.child.kill(signal);
    const timer = setTimeout(() => running.child.kill('SIGKILL'), STOP_TIMEOUT_MS);
    await running.exited;
    clearTimeout(timer);
  }
}

/** Metadata leader known to this server (it logs one of these once the meta group has a leader). */
const META_LEADER = /JetStream cluster new metadata leader|Self is new JetStream cluster metadata leader/;

/**
 * Starts `count` servers (1, or 3 as one cluster) on free ports with JetStream in a fresh temporary
 * store directory each, and resolves once JetStream answers.
 */
export async function startNats(count: 1 | 3): Promise<NatsCluster> {
  requireNatsServer();
  const root = mkdtempSync(join(tmpdir(), 'scx-nats-'));
  // Another process can take a free port between our check and the server's bind: try again then.
  for (let attempt = 1; ; attempt++) {
    const ports = await freePorts(count === 1 ? 1 : 2 * count);
    const servers = Array.from({ length: count }, (_, i) => {
      const clusterPorts = ports.slice(count);
      return new Server(
        `n${i + 1}`,
        ports[i] as number,
        count === 1 ? undefined : clusterPorts[i],
        clusterPorts.filter((_, j) => j !== i),
        join(root, `n${i + 1}-a${attempt}`),
      );
    });
    const cluster = new Cluster(servers, root);
    try {
      await cluster.startAll();
      return cluster;
    } catch (err) {
      await cluster.stopProcesses();
      const inUse = servers.some((s) => /address already in use/.test(s.stderr()));
      if (!inUse || attempt === 3) {
        rmSync(root, { recursive: true, force: true });
        throw err;
      }
    }
  }
}

class Cluster implements NatsCluster {
  readonly urls: string[];
  private readonly clients: NatsConnection[] = [];
  private stopped = false;

  constructor(
    readonly servers: readonly Server[],
    private readonly root: string,
  ) {
    this.urls = servers.map((s) => s.url);
  }

  async connect(): Promise<NatsConnection> {
    const nc = await connect({ servers: this.urls, maxReconnectAttempts: -1, reconnectTimeWait: 250 });
    this.clients.push(nc);
    return nc;
  }

  async startAll(): Promise<void> {
    for (const s of this.servers) s.start();
    await Promise.all(this.servers.map((s) => this.serverReady(s)));
    await this.jetStreamReady();
  }

  private async serverReady(s: Server): Promise<void> {
    await s.waitFor(/Server is ready/, '"Server is ready"');
    if (this.servers.length > 1) await s.waitFor(META_LEADER, 'JetStream metadata leader');
  }

  /** One account info request through a fresh connection: answered only once JetStream is up. */
  private async jetStreamReady(): Promise<void> {
    const nc = await connect({ servers: this.urls, maxReconnectAttempts: -1, reconnectTimeWait: 250 });
    try {
      const jsm = await jetstreamManager(nc, { timeout: READY_TIMEOUT_MS });
      await jsm.getAccountInfo();
    } finally {
      await nc.close();
    }
  }

  private at(index: number): Server {
    const s = this.servers[index];
    if (s === undefined) throw new RangeError(`no server ${index}`);
    return s;
  }

  async kill9(index: number): Promise<void> {
    await this.at(index).stop('SIGKILL');
  }

  async stopServer(index: number): Promise<void> {
    await this.at(index).stop('SIGTERM');
  }

  async restart(index: number): Promise<void> {
    const s = this.at(index);
    s.start();
    await this.serverReady(s);
    await this.jetStreamReady();
  }

  async restartAll(): Promise<void> {
    await this.stopProcesses();
    await this.startAll();
  }

  async stopProcesses(): Promise<void> {
    await Promise.all(this.servers.map((s) => s.stop('SIGTERM')));
  }

  async stop(): Promise<void> {
    if (this.stopped) return;
    this.stopped = true;
    await Promise.all(this.clients.splice(0).map((nc) => nc.close().catch(() => undefined)));
    await this.stopProcesses();
    rmSync(this.root, { recursive: true, force: true });
  }
}

/**
 * Resolves once every stream in `streams` answers a stream info request, i.e. has a leader. After a
 * cluster restart each stream elects its own leader some time after the metadata leader; until
 * then its info request goes unanswered. Event-driven: subscribed to the leader-elected advisories
 * first, it asks each stream once, and asks again only after an advisory for that stream arrived.
 */
export async function waitForStreamLeaders(
  nc: NatsConnection,
  streams: readonly string[],
  timeoutMs = READY_TIMEOUT_MS,
): Promise<void> {
  const jsm = await jetstreamManager(nc, { timeout: 2_000 });
  const sub = nc.subscribe('$JS.EVENT.ADVISORY.STREAM.LEADER_ELECTED.>');
  const waiting = new Set(streams);
  const deadline = setTimeout(() => sub.unsubscribe(), timeoutMs);
  const ask = async (stream: string): Promise<void> => {
    try {
      await jsm.streams.info(stream);
      waiting.delete(stream);
    } catch {
      // No leader yet (the request timed out or was refused): its advisory will say when.
    }
  };
  try {
    await Promise.all([...waiting].map(ask));
    if (waiting.size === 0) return;
    for await (const m of sub) {
      const stream = m.subject.split('.').at(-1) ?? '';
      if (waiting.has(stream)) await ask(stream);
      if (waiting.size === 0) return;
    }
    throw new Error(`no leader within ${timeoutMs} ms for ${[...waiting].join(', ')}`);
  } finally {
    clearTimeout(deadline);
    sub.unsubscribe();
  }
}
