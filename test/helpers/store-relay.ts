/**
 * What the store-and-forward tests (test/integration/relay-store*.test.ts) share: their group and
 * its identities, an in-process RelayServer with a durable store (SqliteRelayLog in a temporary
 * data directory), its JSON log lines captured, and an instrumented RelayLog in front of the store:
 * it can fail appends on demand and counts what replays read.
 */
import { mkdtempSync, readFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { Writable } from 'node:stream';
import { pino } from 'pino';
import type { LocalIdentity } from '../../src-main/core/pki/local-identity.js';
import { sealMessage, type BodyOf } from '../../src-main/core/protocol/index.js';
import { RelayLogError } from '../../src-main/relay/log/errors.js';
import { SqliteRelayLog } from '../../src-main/relay/log/sqlite-log.js';
import type {
  LogAppend,
  LogBounds,
  LogEntry,
  LogPage,
  LogReadRequest,
  RelayLog,
  RetentionPolicy,
  RetentionResult,
} from '../../src-main/relay/log/types.js';
import type { RelayLimits } from '../../src-main/relay/limits.js';
import { RelayServer } from '../../src-main/relay/server.js';
import { makeTestGroup, type TestGroup } from './group.js';
import { loadIdentity, must } from './raw-member.js';
import { Waiters } from './waiters.js';

/** A test group, its members' identities (role member) and its relay's (`id('relay')`). */
export interface StoreTestGroup {
  group: TestGroup;
  id(name: string): LocalIdentity;
  /** The group's roster v1 as the relay takes it. */
  rosterBytes(): Buffer;
}

/** Makes the group (call it in beforeAll: it writes bundles and signs certificates). */
export function storeTestGroup(names: readonly string[]): StoreTestGroup {
  const group = makeTestGroup([...names]);
  const ids = new Map<string, LocalIdentity>();
  for (const n of names) ids.set(n, loadIdentity(must(group.bundles[n], n), 'member'));
  ids.set('relay', loadIdentity(group.relayBundle, 'relay'));
  return {
    group,
    id: (name) => must(ids.get(name), name),
    rosterBytes: () => readFileSync(group.rosterPath),
  };
}

/** Every entry of `member`'s view after `after`, read straight from the log. */
export async function viewOf(log: RelayLog, member: string, after = 0): Promise<LogEntry[]> {
  const out: LogEntry[] = [];
  for (let at = after; ;) {
    const page = await log.read({ afterOffset: at, member, limit: 10_000 });
    out.push(...page.entries);
    at = page.nextAfter;
    if (page.end) return out;
  }
}

/** A RelayLog in front of another: appends can be made to fail, reads are counted. */
export class InstrumentedLog implements RelayLog {
  failAppends = false;
  readCalls = 0;
  readEntries = 0;
  readBytes = 0;
  /** The largest page (frame bytes) one read returned. */
  largestPageBytes = 0;
  readonly streamId: string;

  constructor(readonly inner: RelayLog) {
    this.streamId = inner.streamId;
  }

  append(batch: readonly LogAppend[]): Promise<number[]> {
    if (this.failAppends) return Promise.reject(new RelayLogError('LogFull', 'injected: the disk is full'));
    return this.inner.append(batch);
  }

  async read(request: LogReadRequest): Promise<LogPage> {
    const page = await this.inner.read(request);
    let bytes = 0;
    for (const e of page.entries) bytes += e.frame.length;
    this.readCalls++;
    this.readEntries += page.entries.length;
    this.readBytes += bytes;
    this.largestPageBytes = Math.max(this.largestPageBytes, bytes);
    return page;
  }

  bounds(): Promise<LogBounds> {
    return this.inner.bounds();
  }

  firstOffsetFor(member: string): Promise<number | undefined> {
    return this.inner.firstOffsetFor(member);
  }

  enforceRetention(policy: RetentionPolicy): Promise<RetentionResult> {
    return this.inner.enforceRetention(policy);
  }

  getMeta(key: string): Promise<Buffer | undefined> {
    return this.inner.getMeta(key);
  }

  setMeta(key: string, value: Buffer): Promise<void> {
    return this.inner.setMeta(key, value);
  }

  close(): Promise<void> {
    return this.inner.close();
  }
}

export interface StoreRelay {
  relay: RelayServer;
  port: number;
  /** The store the relay uses (instrumented). */
  store: InstrumentedLog;
  sqlite: SqliteRelayLog;
  dataDir: string;
  logs: Record<string, unknown>[];
  waitForLog(
    predicate: (l: Record<string, unknown>) => boolean,
    what: string,
    timeoutMs?: number,
  ): Promise<void>;
  close(): Promise<void>;
}

export async function startStoreRelay(
  identity: LocalIdentity,
  options: { limits?: Partial<RelayLimits>; dataDir?: string; roster?: Buffer } = {},
): Promise<StoreRelay> {
  const dataDir = options.dataDir ?? mkdtempSync(join(tmpdir(), 'scx-relay-store-'));
  const sqlite = SqliteRelayLog.open(dataDir);
  const store = new InstrumentedLog(sqlite);
  const logs: Record<string, unknown>[] = [];
  const waiters = new Waiters();
  const sink = new Writable({
    write(chunk: Buffer, _enc, cb) {
      for (const line of chunk.toString().split('\n'))
        if (line) logs.push(JSON.parse(line) as Record<string, unknown>);
      waiters.notify();
      cb();
    },
  });
  const relay = new RelayServer({
    identity,
    ...(options.roster ? { roster: options.roster } : {}),
    limits: {
      presenceIntervalMs: 0,
      maxProtocolErrors: 1000,
      rateFramesPerSec: 0,
      rateBytesPerSec: 0,
      ...options.limits,
    },
    logger: pino({ level: 'debug' }, sink),
    store,
  });
  const { port } = await relay.listen({ host: '127.0.0.1', port: 0 });
  return {
    relay,
    port,
    store,
    sqlite,
    dataDir,
    logs,
    waitForLog: (predicate, what, timeoutMs = 20_000) =>
      waiters.until(
        () => logs.some(predicate),
        timeoutMs,
        () => `timed out waiting for the log line ${what}`,
      ),
    close: async () => {
      await relay.close();
      await sqlite.close();
    },
  };
}

/** A signed ENCRYPTED_TEXT from `identity` (for filling a log directly). */
export function chatFrameOf(identity: LocalIdentity, body: BodyOf<'ENCRYPTED_TEXT'>): Buffer {
  return sealMessage(
    'ENCRYPTED_TEXT',
    { kind: 'fingerprint', fingerprint: identity.certificate.fingerprint },
    '',
    body,
    (d) => identity.sign(d),
  );
}

/** Polls `condition` on every turn of the event loop until it holds (state the relay exposes). */
export async function eventually(condition: () => boolean, what: string, timeoutMs = 20_000): Promise<void> {
  const deadline = Date.now() + timeoutMs;
  while (!condition()) {
    if (Date.now() > deadline) throw new Error(`timed out waiting for ${what}`);
    await new Promise<void>((resolve) => setTimeout(resolve, 5));
  }
}
