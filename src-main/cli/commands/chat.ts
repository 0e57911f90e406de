/**
 * `securechat-x chat --bundle alice.p12 --relay HOST:PORT[,HOST:PORT...] [--json] [--password-file F]`
 *
 * Each line on stdin is a message (empty lines are ignored). At the end of stdin the queued
 * messages are sent (waiting up to --drain-timeout-ms for a key if one is being established),
 * then DISCONNECT, exit 0. SIGINT / SIGTERM leave the same way. A Failed session exits 1;
 * leaving with messages that were never sent exits 3; removed from the group (Removed) exits 4.
 */
import { createInterface } from 'node:readline';
import { parseArgs } from 'node:util';
import { ChatEngine } from '../../client/engine.js';
import type { EngineEvent, RelayAddress } from '../../client/engine-types.js';
import { humanLine, jsonLine, UnreachableNotice } from '../chat-output.js';
import { CliError } from '../cli-error.js';
import { openMemberBundle } from '../member-bundle.js';
import { openStateStore } from '../state-store.js';

export const CHAT_USAGE = `usage: securechat-x chat --bundle FILE --relay HOST:PORT[,HOST:PORT...] [options]

Terminal chat client. Each line typed is a message; end of input (Ctrl-D) sends
what is queued and leaves. The bundle password comes from SECURECHAT_PASSWORD or
--password-file FILE.

options:
  --bundle FILE              your member bundle (.p12)
  --relay HOST:PORT          the relay to connect to; several, comma-separated (a cluster's
                             nodes): stays on the one that works, on loss tries the next
  --json                     one JSON object per line on stdout (see docs/client.md)
  --password-file FILE       read the bundle password from the first line of FILE
  --expect-ca SHA256HEX      refuse the bundle unless its group CA has this SHA-256 fingerprint
                             (from your organiser; any case, ':' or spaces between digits allowed)
  --key-timeout-ms N         key-establishment attempt timeout (default 5000)
  --reconnect-min-ms N       first reconnect delay (default 250)
  --reconnect-max-ms N       longest reconnect delay (default 10000)
  --drain-timeout-ms N       at end of input, how long to wait for queued messages (default 10000)
  --prekey-rotation DURATION publish a new signed X25519 prekey this often (default 7d); a
                             number with ms, s, m, h or d, e.g. 30s (tests, operators)
  --prekey-retention DURATION how long the relay keeps stored frames (its --retention-days; default 30d):
                             a retired private prekey or epoch key is erased this long after
                             its successor was published or established
  --state-dir DIR            this member's encrypted local state (epochs, roster, history, log position);
                             default $XDG_DATA_HOME/securechat-x/<group id>/<name>
                             (~/.local/share/... when XDG_DATA_HOME is unset)
  -h, --help                 this text

exit codes:
  0  left normally, everything typed was sent
  1  failed (relay refused this member, wrong relay, unusable bundle or state store)
  2  usage error (a missing or bad flag, no password)
  3  left with messages that were never sent (their number is printed on stderr)
  4  removed from the group: the relay's roster removed this certificate (Removed)
`;

/** Exit code when the session ended with messages never sent. */
export const EXIT_UNSENT = 3;
/** Exit code when the group's roster removed this member (ERROR Removed): terminal. */
export const EXIT_REMOVED = 4;

export function parseRelayAddress(text: string): RelayAddress {
  const m = /^(\[[^\]]+\]|[^:]+):(\d{1,5})$/.exec(text);
  const port = m ? Number(m[2]) : NaN;
  if (!m || !(port >= 1 && port <= 65535)) throw new CliError(`--relay must be HOST:PORT, got "${text}"`, 2);
  return { host: (m[1] as string).replace(/^\[|\]$/g, ''), port };
}

/** `HOST:PORT[,HOST:PORT...]`: the addresses in the order they are tried; no address twice. */
export function parseRelayAddresses(text: string): RelayAddress[] {
  const parts = text.split(',').map((p) => p.trim());
  const relays = parts.map((p) => parseRelayAddress(p));
  const seen = new Set<string>();
  for (const [i, r] of relays.entries()) {
    const key = `${r.host.toLowerCase()}:${r.port}`;
    if (seen.has(key)) throw new CliError(`--relay lists ${parts[i] ?? key} twice`, 2);
    seen.add(key);
  }
  return relays;
}

const DURATION_UNITS: Record<string, number> = { ms: 1, s: 1000, m: 60_000, h: 3_600_000, d: 86_400_000 };

/** "30s", "7d", "500ms": a whole number with a unit, as milliseconds (at least 1). */
export function parseDuration(value: string | undefined, flag: string): number | undefined {
  if (value === undefined) return undefined;
  const m = /^(\d{1,12})(ms|s|m|h|d)$/.exec(value);
  const ms = m ? Number(m[1]) * (DURATION_UNITS[m[2] as string] as number) : NaN;
  if (!m || !Number.isSafeInteger(ms) || ms < 1) {
    throw new CliError(`--${flag} must be a duration such as 500ms, 30s, 10m, 2h or 7d`, 2);
  }
  return ms;
}

function positiveInt(value: string | undefined, flag: string): number | undefined {
  if (value === undefined) return undefined;
  const n = Number(value);
  if (!/^\d+$/.test(value) || n < 1) throw new CliError(`--${flag} must be a positive integer`, 2);
  return n;
}

export async function run(argv: string[]): Promise<number> {
  const { values } = parseArgs({
    args: argv,
    options: {
      bundle: { type: 'string' },
      relay: { type: 'string' },
      json: { type: 'boolean', default: false },
      'password-file': { type: 'string' },
      'expect-ca': { type: 'string' },
      'key-timeout-ms': { type: 'string' },
      'reconnect-min-ms': { type: 'string' },
      'reconnect-max-ms': { type: 'string' },
      'drain-timeout-ms': { type: 'string' },
      'state-dir': { type: 'string' },
      'prekey-rotation': { type: 'string' },
      'prekey-retention': { type: 'string' },
      help: { type: 'boolean', short: 'h' },
    },
    allowPositionals: false,
    strict: true,
  });
  if (values.help) {
    process.stdout.write(CHAT_USAGE);
    return 0;
  }
  if (!values.bundle) throw new CliError(`--bundle is required\n\n${CHAT_USAGE}`, 2);
  if (!values.relay) throw new CliError(`--relay is required\n\n${CHAT_USAGE}`, 2);
  const relays = parseRelayAddresses(values.relay);
  const keyTimeout = positiveInt(values['key-timeout-ms'], 'key-timeout-ms');
  const minMs = positiveInt(values['reconnect-min-ms'], 'reconnect-min-ms') ?? 250;
  const maxMs = positiveInt(values['reconnect-max-ms'], 'reconnect-max-ms') ?? Math.max(10_000, minMs);
  if (maxMs < minMs) throw new CliError('--reconnect-max-ms must not be below --reconnect-min-ms', 2);
  const drainMs = positiveInt(values['drain-timeout-ms'], 'drain-timeout-ms') ?? 10_000;
  const prekeyRotationMs = parseDuration(values['prekey-rotation'], 'prekey-rotation');
  const prekeyRetentionMs = parseDuration(values['prekey-retention'], 'prekey-retention');

  const { identity, password, owner, stateDir } = await openMemberBundle('chat', {
    bundle: values.bundle,
    'password-file': values['password-file'],
    'expect-ca': values['expect-ca'],
    'state-dir': values['state-dir'],
  });
  const store = await openStateStore(stateDir, password, owner);

  const engine = new ChatEngine({
    identity,
    relay: relays.length === 1 ? (relays[0] as RelayAddress) : relays,
    ...(keyTimeout !== undefined ? { keyEstablishmentTimeoutMs: keyTimeout } : {}),
    backoff: { initialMs: minMs, maxMs },
    epochStore: store,
    history: store.history,
    rosterStore: store,
    prekeyStore: store,
    ...(prekeyRotationMs !== undefined ? { prekeyRotationMs } : {}),
    ...(prekeyRetentionMs !== undefined ? { prekeyRetentionMs } : {}),
    // The prekey schedule is checked with rotation: often enough for a short period.
    ...(prekeyRotationMs !== undefined || prekeyRetentionMs !== undefined
      ? { rotationCheckMs: checkEvery(prekeyRotationMs, prekeyRetentionMs) }
      : {}),
  });
  const json = values.json === true;
  const print = (line: string) => process.stdout.write(`${line}\n`);
  if (!json) {
    print(`* you are ${identity.name}  ${identity.certificate.fingerprintDisplay}`);
    print(`* connecting to ${values.relay}`);
  }
  const notice = new UnreachableNotice(values.relay);
  const render = (e: EngineEvent) => {
    const { hint, quiet } = notice.observe(e);
    if (hint !== undefined) process.stderr.write(`securechat-x: ${hint}\n`);
    // --json keeps every line: scripts parse the state events.
    const line = json ? jsonLine(e) : quiet ? undefined : humanLine(e, identity.name);
    if (line !== undefined) print(line);
  };
  try {
    return await session(engine, render, drainMs);
  } finally {
    store.close();
  }
}

/** A quarter of the shortest prekey period, between 50 ms and the default 60 s. */
function checkEvery(...periods: (number | undefined)[]): number {
  const shortest = Math.min(...periods.filter((p): p is number => p !== undefined));
  return Math.max(50, Math.min(60_000, Math.floor(shortest / 4)));
}

/** Runs one chat session to its end; resolves with the exit code. */
function session(engine: ChatEngine, render: (e: EngineEvent) => void, drainMs: number): Promise<number> {
  return new Promise<number>((resolve) => {
    let leaving = false;
    let failed = false;
    let removed = false;
    const waiters = new Set<() => void>();
    engine.on((e) => {
      render(e);
      if (e.event === 'error' && e.code === 'Removed') removed = true;
      if (e.event === 'state' && e.state === 'Failed') {
        failed = true;
        void leave('failed');
      }
      for (const w of waiters) w();
    });

    const stdin = createInterface({ input: process.stdin, crlfDelay: Infinity, terminal: false });
    stdin.on('line', (line) => {
      if (leaving || line.trim().length === 0) return;
      try {
        engine.send(line);
      } catch (err) {
        render({
          event: 'error',
          code: (err as { code?: string }).code ?? 'Error',
          message: (err as Error).message,
        });
      }
    });
    stdin.on('close', () => void leave('end of input'));

    /** Waits (bounded) until every queued message is written, or the session failed. */
    const drain = () =>
      new Promise<void>((done) => {
        const check = () => {
          if (engine.pending === 0 || failed) finish();
        };
        const timer = setTimeout(() => finish(), drainMs);
        const finish = () => {
          clearTimeout(timer);
          waiters.delete(check);
          done();
        };
        waiters.add(check);
        check();
      });

    const onSignal = () => void leave('interrupted');
    process.once('SIGINT', onSignal);
    process.once('SIGTERM', onSignal);

    async function leave(why: string): Promise<void> {
      if (leaving) return;
      leaving = true;
      if (why === 'end of input') await drain();
      const unsent = engine.pending;
      if (unsent > 0) {
        render({
          event: 'error',
          code: 'Unsent',
          message: `${unsent} message(s) could not be sent before leaving`,
        });
        process.stderr.write(`securechat-x: ${unsent} message(s) were not sent\n`);
      }
      await engine.stop(why === 'failed' ? 'failed' : 'leaving');
      stdin.close();
      process.stdin.destroy();
      process.off('SIGINT', onSignal);
      process.off('SIGTERM', onSignal);
      resolve(removed ? EXIT_REMOVED : failed ? 1 : unsent > 0 ? EXIT_UNSENT : 0);
    }

    engine.start();
  });
}
