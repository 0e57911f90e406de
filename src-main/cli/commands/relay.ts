/**
 * `securechat-x relay`: the relay server, headless. Prints exactly one line to stdout when ready,
 * `listening on HOST:PORT`, and nothing else ever; logs are JSON lines (pino) on stderr.
 * SIGINT / SIGTERM: members are told (ERROR ShuttingDown), the relay closes and exits 0.
 */
import { readFile } from 'node:fs/promises';
import { parseArgs } from 'node:util';
import { pino, type Logger } from 'pino';
import { LocalIdentity } from '../../core/pki/local-identity.js';
import { DEFAULT_RELAY_LIMITS } from '../../relay/limits.js';
import { LIMIT_FLAGS, limitsFromFlags } from '../../relay/limit-flags.js';
import { prepareRelayDataDir } from '../../relay/data-dir.js';
import { RelayLogError } from '../../relay/log/errors.js';
import { ClusterNode } from '../../relay/cluster/node.js';
import { JetStreamRelayLog } from '../../relay/log/jetstream-log.js';
import { SqliteRelayLog } from '../../relay/log/sqlite-log.js';
import type { RelayLog } from '../../relay/log/types.js';
import { RelayServer } from '../../relay/server.js';
import { MAX_ROSTER_BYTES, verifyRoster } from '../../core/roster/index.js';
import { readInputFile } from '../bundle-file.js';
import { CliError } from '../cli-error.js';
import { checkExpectedCa, parseExpectedCa } from '../expect-ca.js';
import { fileProblem } from '../fs-errors.js';
import { readPassword } from '../password.js';
import { withRosterPath } from '../roster-file.js';

const LOG_LEVELS = ['fatal', 'error', 'warn', 'info', 'debug', 'trace', 'silent'];

export const RELAY_USAGE = `usage: securechat-x relay --bundle relay.p12 [options]

Runs the relay server S. Prints "listening on HOST:PORT" on stdout when ready;
logs JSON lines on stderr. The bundle password comes from SECURECHAT_PASSWORD or
--password-file FILE.

options:
  --bundle FILE          the relay's certificate bundle (.p12, a relay bundle)
  --host HOST            address to listen on (default 127.0.0.1)
  --port PORT            TCP port (default 7443; 0 picks a free one)
  --password-file FILE   read the bundle password from the first line of FILE
  --expect-ca SHA256HEX  refuse the bundle unless its group CA has this SHA-256 fingerprint
                         (any case, ':' or spaces between digits allowed)
  --data-dir DIR         durable state: the message log and the highest roster
                         (default $XDG_DATA_HOME/securechat-x/relay, ~/.local/share/... when unset)
  --cluster URLS         nats://HOST:PORT[,nats://HOST:PORT...]: keep the group's log in NATS
                         JetStream (one stream per group), shared with the other relay nodes,
                         instead of the SQLite file in --data-dir (docs/relay.md, "Cluster")
  --replicas N           JetStream replicas of the group's stream and meta (1-5; default 3 when
                         the NATS cluster has 3 or more servers, else 1); only with --cluster
  --presence-ttl-ms N    how long a cluster node's members stay listed after it stopped
                         refreshing them, e.g. because it died (1000-3600000, default 30000);
                         only with --cluster
  --roster FILE          the group's roster.scx: verified with the bundle's CA and kept if newer
                         than the stored one (an older one is logged and ignored); without any
                         roster members are refused (NoRoster) until one is published
  --log-level LEVEL      ${LOG_LEVELS.join(', ')} (default info)
  -h, --help             this text

limits (integers; rate limits: 0 = unlimited):
${Object.entries(LIMIT_FLAGS)
  .map(([flag, name]) => `  --${flag.padEnd(26)} default ${DEFAULT_RELAY_LIMITS[name]}`)
  .join('\n')}
`;

function formatHost(host: string): string {
  return host.includes(':') ? `[${host}]` : host;
}

export async function run(argv: string[]): Promise<number> {
  const limitOptions = Object.fromEntries(
    Object.keys(LIMIT_FLAGS).map((f) => [f, { type: 'string' as const }]),
  );
  const { values } = parseArgs({
    args: argv,
    options: {
      bundle: { type: 'string' },
      host: { type: 'string', default: '127.0.0.1' },
      port: { type: 'string', default: '7443' },
      'password-file': { type: 'string' },
      'expect-ca': { type: 'string' },
      'data-dir': { type: 'string' },
      roster: { type: 'string' },
      cluster: { type: 'string' },
      replicas: { type: 'string' },
      'presence-ttl-ms': { type: 'string' },
      'log-level': { type: 'string', default: 'info' },
      help: { type: 'boolean', short: 'h' },
      ...limitOptions,
    },
    allowPositionals: false,
    strict: true,
  });
  if (values.help) {
    process.stdout.write(RELAY_USAGE);
    return 0;
  }
  if (!values.bundle) throw new CliError(`--bundle is required\n\n${RELAY_USAGE}`, 2);
  const port = Number(values.port);
  if (!/^\d+$/.test(String(values.port)) || port > 65535) throw new CliError('--port must be 0-65535', 2);
  const level = String(values['log-level']);
  if (!LOG_LEVELS.includes(level))
    throw new CliError(`--log-level must be one of ${LOG_LEVELS.join(', ')}`, 2);
  const cluster = parseCluster(values.cluster, values.replicas, values['presence-ttl-ms']);
  let limits;
  try {
    limits = limitsFromFlags(values);
  } catch (err) {
    throw new CliError((err as Error).message, 2);
  }

  const expectedCa = parseExpectedCa('relay', values['expect-ca']);
  const password = await readPassword(values['password-file'], 'relay bundle');
  let data: Buffer;
  try {
    data = await readFile(values.bundle);
  } catch (err) {
    throw new CliError(fileProblem(values.bundle, err));
  }
  const identity = LocalIdentity.fromBundleFile(data, password, 'relay');
  checkExpectedCa(identity.ca, expectedCa);
  const roster = values.roster === undefined ? undefined : await readRoster(values.roster, identity);

  const logger = pino(
    { level, base: { service: 'relay', pid: process.pid } },
    pino.destination({ fd: 2, sync: true }),
  );
  const store: RelayLog = cluster
    ? await openClusterStore(cluster, identity.groupId)
    : openStore(values['data-dir']);
  const node =
    cluster && store instanceof JetStreamRelayLog
      ? await openClusterNode(store, identity, logger, cluster.presenceTtlMs)
      : undefined;
  let relay: RelayServer;
  try {
    relay = new RelayServer({
      identity,
      limits,
      logger,
      store,
      ...(roster ? { roster } : {}),
      ...(node ? { cluster: node } : {}),
    });
  } catch (err) {
    await node?.stop();
    await store.close();
    throw new CliError((err as Error).message, 2);
  }
  // The signal handlers come before listening: once `listening on` is printed, whoever started the
  // relay may stop it at once, and a signal that arrives before a handler exists kills the process
  // with the default action (no ShuttingDown for members, no exit 0).
  const stopSignal = stopOnSignal();
  let address;
  try {
    address = await relay.listen({ host: values.host, port });
  } catch (err) {
    stopSignal.dispose();
    await node?.stop();
    await store.close();
    if (err instanceof RelayLogError) throw new CliError(`the store's roster: ${err.message} (${err.code})`);
    throw new CliError(`cannot listen on ${values.host}:${port}: ${(err as Error).message}`);
  }
  process.stdout.write(`listening on ${formatHost(address.host)}:${address.port}\n`);

  const signal = await stopSignal.received;
  logger.info({ event: 'signal', signal }, 'stopping');
  try {
    await relay.close(`the relay is shutting down (${signal})`);
    return 0;
  } catch (err) {
    logger.error({ event: 'internal-error', err: String(err) }, 'shutdown failed');
    return 1;
  } finally {
    await node?.stop();
    await store.close();
  }
}

/** The --roster file, verified with the relay's CA (the relay checks it again; this names the file). */
async function readRoster(path: string, identity: LocalIdentity): Promise<Buffer> {
  let bytes: Buffer;
  try {
    bytes = await readInputFile(path, MAX_ROSTER_BYTES);
  } catch (err) {
    if (err instanceof CliError) throw new CliError(`--roster: ${err.message}`);
    throw err;
  }
  withRosterPath(path, () => verifyRoster(bytes, identity.ca));
  return bytes;
}

/** The data directory's log, or a one-line reason why not (another relay holds it, a foreign file, …). */
function openStore(flag: string | undefined): SqliteRelayLog {
  let dir: string;
  try {
    dir = prepareRelayDataDir(flag);
  } catch (err) {
    throw new CliError(fileProblem(flag ?? 'the default data directory', err));
  }
  try {
    return SqliteRelayLog.open(dir);
  } catch (err) {
    if (err instanceof RelayLogError)
      throw new CliError(`data directory ${dir}: ${err.message} (${err.code})`);
    throw err;
  }
}

interface ClusterFlags {
  servers: string[];
  replicas: number | undefined;
  presenceTtlMs: number | undefined;
}

/** --cluster, --replicas and --presence-ttl-ms, checked before anything is opened (usage errors exit 2). */
function parseCluster(
  cluster: string | undefined,
  replicas: string | undefined,
  ttl: string | undefined,
): ClusterFlags | undefined {
  if (cluster === undefined) {
    if (replicas !== undefined) throw new CliError('--replicas needs --cluster', 2);
    if (ttl !== undefined) throw new CliError('--presence-ttl-ms needs --cluster', 2);
    return undefined;
  }
  if (ttl !== undefined && (!/^\d{4,7}$/.test(ttl) || Number(ttl) < 1000 || Number(ttl) > 3_600_000)) {
    throw new CliError('--presence-ttl-ms must be 1000-3600000', 2);
  }
  const servers = cluster.split(',').map((s) => s.trim());
  for (const url of servers) {
    if (
      !/^nats:\/\/[^\s/:,]+(?::\d{1,5})?$/.test(url) &&
      !/^nats:\/\/\[[0-9a-fA-F:]+\](?::\d{1,5})?$/.test(url)
    ) {
      throw new CliError(`--cluster: "${url}" is not nats://HOST:PORT`, 2);
    }
  }
  if (replicas !== undefined && !/^[1-5]$/.test(replicas)) throw new CliError('--replicas must be 1-5', 2);
  return {
    servers,
    replicas: replicas === undefined ? undefined : Number(replicas),
    presenceTtlMs: ttl === undefined ? undefined : Number(ttl),
  };
}

/** The node's presence and shared subjects on the log's connection (closes the log if that fails). */
async function openClusterNode(
  log: JetStreamRelayLog,
  identity: LocalIdentity,
  logger: Logger,
  presenceTtlMs: number | undefined,
): Promise<ClusterNode> {
  try {
    return await ClusterNode.open({
      log,
      identity,
      logger,
      ...(presenceTtlMs === undefined ? {} : { presenceTtlMs }),
    });
  } catch (err) {
    await log.close();
    if (err instanceof RelayLogError) throw new CliError(`--cluster presence: ${err.message} (${err.code})`);
    throw err;
  }
}

/** The group's log in JetStream, or a one-line reason why not (no server reachable, no quorum, …). */
async function openClusterStore(flags: ClusterFlags, groupId: string): Promise<JetStreamRelayLog> {
  try {
    return await JetStreamRelayLog.connect(flags.servers, {
      groupId,
      ...(flags.replicas === undefined ? {} : { replicas: flags.replicas }),
    });
  } catch (err) {
    if (err instanceof RelayLogError)
      throw new CliError(`--cluster ${flags.servers.join(',')}: ${err.message} (${err.code})`);
    throw err;
  }
}

/**
 * Resolves with the first SIGINT or SIGTERM from the moment it is called. The handlers go with it:
 * a second signal while the relay is closing ends the process at once, the usual way out of a stuck
 * shutdown.
 */
function stopOnSignal(): { received: Promise<NodeJS.Signals>; dispose(): void } {
  const signals: NodeJS.Signals[] = ['SIGINT', 'SIGTERM'];
  let onSignal: (signal: NodeJS.Signals) => void = () => undefined;
  const dispose = (): void => {
    for (const s of signals) process.off(s, onSignal);
  };
  const received = new Promise<NodeJS.Signals>((resolve) => {
    onSignal = (signal) => {
      dispose();
      resolve(signal);
    };
  });
  for (const s of signals) process.on(s, onSignal);
  return { received, dispose };
}
