/**
 * The relay as a child process of the desktop app (the "bundled relay"): the same RelayServer as
 * `securechat-x relay`, driven by messages instead of a terminal. A relay crash never takes the
 * app down, because it runs in its own process.
 *
 * Start: Node `child_process.fork(entry, [configJson])` or Electron
 * `utilityProcess.fork(entry, [configJson])`; the configuration (RelayChildConfig, JSON) is the
 * first argument, or the SECURECHAT_RELAY_CONFIG environment variable. The bundle password is
 * read from the environment variable it names (`passwordEnv`, default SECURECHAT_PASSWORD), never
 * from arguments.
 *
 * Messages to the parent (RelayChildMessage): `listening`, `members` (on every PRESENCE),
 * `error` (startup failed or the relay failed), `stopped`. Under Electron's utilityProcess they go
 * through `process.parentPort.postMessage`, under Node's fork through `process.send`.
 * Messages from the parent: `{type: 'stop'}`. SIGTERM / SIGINT, or the parent going away, stop the
 * relay too: members receive ERROR ShuttingDown and the process exits 0.
 */
import { existsSync } from 'node:fs';
import { readFile } from 'node:fs/promises';
import { dirname, join } from 'node:path';
import { pino } from 'pino';
import { LocalIdentity } from '../core/pki/local-identity.js';
import { PkiError } from '../core/pki/errors.js';
import { ROSTER_FILE } from '../core/roster/index.js';
import { prepareRelayDataDir } from './data-dir.js';
import type { RelayLimits } from './limits.js';
import { SqliteRelayLog } from './log/sqlite-log.js';
import { RelayRosterError } from './roster-keeper.js';
import type { PresenceMember } from './relay-frames.js';
import { RelayServer } from './server.js';

export interface RelayChildConfig {
  bundlePath: string;
  host?: string;
  port?: number;
  /** Name of the environment variable holding the bundle password (default SECURECHAT_PASSWORD). */
  passwordEnv?: string;
  limits?: Partial<RelayLimits>;
  logLevel?: string;
  /** The relay's durable state (the log, the highest roster); default as `securechat-x relay`. */
  dataDir?: string;
  /**
   * The group's roster.scx (as `securechat-x relay --roster`); default the roster.scx beside the
   * bundle when there is one (group create writes both into one folder).
   */
  rosterPath?: string;
}

export type RelayChildMessage =
  | { type: 'listening'; host: string; port: number }
  | { type: 'members'; count: number; members: PresenceMember[]; version: number }
  | { type: 'error'; message: string }
  | { type: 'stopped' };

export type RelayParentMessage = { type: 'stop' };

interface ParentPort {
  postMessage(message: unknown): void;
  on(event: 'message', listener: (event: { data: unknown }) => void): void;
}

const parentPort = (process as unknown as { parentPort?: ParentPort }).parentPort;

function post(message: RelayChildMessage): void {
  try {
    if (parentPort) parentPort.postMessage(message);
    else if (process.send) process.send(message);
  } catch {
    // The parent has gone; nothing to tell.
  }
}

function readConfig(): RelayChildConfig {
  const raw = process.argv[2] ?? process.env.SECURECHAT_RELAY_CONFIG;
  if (!raw) throw new Error('no relay configuration (pass JSON as the first argument)');
  const config = JSON.parse(raw) as Partial<RelayChildConfig>;
  if (typeof config.bundlePath !== 'string' || config.bundlePath.length === 0) {
    throw new Error('the relay configuration needs a bundlePath');
  }
  return config as RelayChildConfig;
}

async function main(): Promise<void> {
  const config = readConfig();
  const logger = pino(
    { level: config.logLevel ?? 'info', base: { service: 'relay', pid: process.pid } },
    pino.destination({ fd: 2, sync: true }),
  );
  const password = process.env[config.passwordEnv ?? 'SECURECHAT_PASSWORD'];
  if (!password) throw new Error('no relay bundle password in the environment');
  const identity = LocalIdentity.fromBundleFile(await readFile(config.bundlePath), password, 'relay');
  const besideBundle = join(dirname(config.bundlePath), ROSTER_FILE);
  const rosterPath = config.rosterPath ?? (existsSync(besideBundle) ? besideBundle : undefined);
  const roster = rosterPath !== undefined ? await readFile(rosterPath) : undefined;
  const store = SqliteRelayLog.open(prepareRelayDataDir(config.dataDir));
  let relay: RelayServer;
  try {
    relay = new RelayServer({
      identity,
      limits: config.limits,
      logger,
      store,
      ...(roster ? { roster } : {}),
    });
  } catch (err) {
    await store.close();
    throw err;
  }
  relay.on('members', (members, version) =>
    post({ type: 'members', count: members.length, members, version }),
  );
  const address = await relay.listen({ host: config.host ?? '127.0.0.1', port: config.port ?? 7443 });
  post({ type: 'listening', ...address });

  let stopping = false;
  const stop = (why: string): void => {
    if (stopping) return;
    stopping = true;
    logger.info({ event: 'stop', why }, 'stopping');
    relay
      .close(`the relay is shutting down (${why})`)
      .finally(() => store.close())
      .then(
        () => {
          post({ type: 'stopped' });
          process.exit(0);
        },
        (err: unknown) => {
          post({ type: 'error', message: String(err) });
          process.exit(1);
        },
      );
  };
  const onMessage = (message: unknown): void => {
    if (message && typeof message === 'object' && (message as { type?: unknown }).type === 'stop')
      stop('stop');
  };
  if (parentPort) parentPort.on('message', (event) => onMessage(event.data));
  else process.on('message', onMessage);
  process.on('disconnect', () => stop('parent gone'));
  process.once('SIGTERM', () => stop('SIGTERM'));
  process.once('SIGINT', () => stop('SIGINT'));
}

main().catch((err: unknown) => {
  const message =
    err instanceof PkiError || err instanceof RelayRosterError
      ? `${err.message} (${err.code})`
      : err instanceof Error
        ? err.message
        : String(err);
  post({ type: 'error', message });
  process.stderr.write(`securechat-x relay: ${message}\n`);
  process.exitCode = 1;
  // Let the message reach the parent, then leave.
  setTimeout(() => process.exit(1), 100).unref();
});
