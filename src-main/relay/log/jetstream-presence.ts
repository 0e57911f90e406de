/**
 * Who is on which relay node (DESIGN §10.7: presence in a key-value bucket with a TTL), for relay
 * nodes sharing a group through NATS JetStream. One entry per (member, node): a node puts it when a
 * member logs in, refreshes every entry it holds on a heartbeat, and deletes it when the member
 * leaves. A node that dies stops refreshing, and the bucket's TTL (its stream's max_age) forgets
 * its entries without anyone telling: list() no longer shows them once the TTL has passed.
 *
 * nats-server 2.9 expires such entries silently (per-key TTLs and delete markers on expiry came in
 * 2.11), so watch() reports puts and deletes, not expiries; a node that must notice a dead peer's
 * members reads list() (e.g. on its own heartbeat).
 */
import { StorageType } from '@nats-io/jetstream';
import { Kvm, KvWatchInclude, type KV } from '@nats-io/kv';
import type { NatsConnection } from '@nats-io/transport-node';
import { z } from 'zod';
import { RelayLogError } from './errors.js';
import { wrapNatsError } from './jetstream-errors.js';
import { groupNames, memberFromToken, memberToken } from './jetstream-names.js';
import { defaultReplicas } from './jetstream-log.js';

export interface PresenceOptions {
  nc: NatsConnection;
  groupId: string;
  /** This relay node's name (e.g. its relay certificate's name). */
  node: string;
  /** How long an entry lives without a refresh (default 30 s; the bucket's TTL). */
  ttlMs?: number;
  /** Bucket replicas; default as the log's (3 on a 3-server cluster, else 1). */
  replicas?: number;
}

/** What a node says about a member it holds, beyond the name (another node answers CERT_REQUEST with it). */
export interface PresenceDetail {
  /** SHA-256 of the certificate's DER, hex. */
  fingerprint: string;
  /** The member certificate's DER. */
  certificate: Buffer;
}

export interface PresenceEntry {
  member: string;
  node: string;
  /** When the node last put or refreshed it (its clock, ms since the Unix epoch). */
  at: number;
  /** Absent in entries put without one (join(member) alone). */
  detail?: PresenceDetail;
}

export type PresenceChange =
  ({ kind: 'here' } & PresenceEntry) | { kind: 'gone'; member: string; node: string };

const DEFAULT_TTL_MS = 30_000;

function keyOf(member: string, node: string): string {
  return `${memberToken(member)}.${memberToken(node)}`;
}

function parseKey(key: string): { member: string; node: string } {
  const [member, node, ...rest] = key.split('.');
  if (member === undefined || node === undefined || rest.length > 0) {
    throw new RelayLogError('LogCorrupt', `"${key}" is not a presence key`);
  }
  return { member: memberFromToken(member), node: memberFromToken(node) };
}

/** A presence value as written by put(); another node's bytes, so checked. */
const PresenceValue = z.object({
  at: z.number().finite(),
  fingerprint: z
    .string()
    .regex(/^[0-9a-f]{64}$/)
    .optional(),
  certificate: z.string().max(16_384).base64().optional(),
});

/** The entry's time and detail; a value that does not parse counts as no detail, time 0. */
function parseValue(value: Uint8Array): { at: number; detail?: PresenceDetail } {
  let parsed: z.infer<typeof PresenceValue>;
  try {
    parsed = PresenceValue.parse(JSON.parse(Buffer.from(value).toString('utf8')));
  } catch {
    return { at: 0 };
  }
  const { at, fingerprint, certificate } = parsed;
  if (fingerprint === undefined || certificate === undefined) return { at };
  return { at, detail: { fingerprint, certificate: Buffer.from(certificate, 'base64') } };
}

export class JetStreamPresence {
  /** Members this node holds (and refreshes), with what it says about them. */
  private readonly here = new Map<string, PresenceDetail | undefined>();
  private heartbeat: NodeJS.Timeout | undefined;
  private closed = false;

  private constructor(
    private kv: KV,
    private readonly reopenKv: () => Promise<KV>,
    readonly node: string,
    readonly ttlMs: number,
    private readonly now: () => number,
  ) {}

  static async open(options: PresenceOptions, now: () => number = Date.now): Promise<JetStreamPresence> {
    const ttlMs = options.ttlMs ?? DEFAULT_TTL_MS;
    if (!Number.isSafeInteger(ttlMs) || ttlMs < 1000) throw new RangeError('ttlMs must be at least 1000');
    if (typeof options.node !== 'string' || options.node.length === 0) {
      throw new TypeError('node must be a non-empty string');
    }
    const bucket = groupNames(options.groupId).presenceBucket;
    const replicas = options.replicas ?? defaultReplicas(options.nc);
    const create = async (): Promise<KV> => {
      try {
        return await new Kvm(options.nc).create(bucket, {
          history: 1,
          ttl: ttlMs,
          replicas,
          // Presence is rebuilt by the heartbeats: memory is enough and spares the disks.
          storage: StorageType.Memory,
        });
      } catch (err) {
        throw wrapNatsError(err, `cannot open the presence bucket ${bucket}`);
      }
    };
    return new JetStreamPresence(await create(), create, options.node, ttlMs, now);
  }

  /**
   * Opens the bucket again, creating it if it is gone: it lives in memory, so NATS servers that all
   * restarted have lost it. Then puts this node's members again. A watch must be started again too.
   */
  async reopen(): Promise<void> {
    this.checkOpen();
    this.kv = await this.reopenKv();
    await this.refresh();
  }

  /** `member` logged in on this node (with its certificate, for the other nodes). */
  async join(member: string, detail?: PresenceDetail): Promise<void> {
    this.checkOpen();
    this.here.set(member, detail);
    await this.put(member, detail);
  }

  /** `member` left this node (logout, dropped link). */
  async leave(member: string): Promise<void> {
    this.checkOpen();
    this.here.delete(member);
    try {
      await this.kv.delete(keyOf(member, this.node));
    } catch (err) {
      throw wrapNatsError(err, `cannot remove ${member} from presence`);
    }
  }

  /** Re-puts every member this node holds, so none expires while it is here. */
  async refresh(): Promise<void> {
    this.checkOpen();
    await Promise.all([...this.here].map(([member, detail]) => this.put(member, detail)));
  }

  /**
   * Refreshes every `intervalMs` (default a third of the TTL: two missed beats are survived).
   * Errors go to `onError`; the timer does not keep the process alive.
   */
  startHeartbeat(onError: (err: unknown) => void, intervalMs = Math.floor(this.ttlMs / 3)): void {
    this.stopHeartbeat();
    this.heartbeat = setInterval(() => this.refresh().catch(onError), intervalMs);
    this.heartbeat.unref();
  }

  stopHeartbeat(): void {
    if (this.heartbeat !== undefined) clearInterval(this.heartbeat);
    this.heartbeat = undefined;
  }

  /** Every live entry of the group, on every node. */
  async list(): Promise<PresenceEntry[]> {
    this.checkOpen();
    try {
      const keys: string[] = [];
      for await (const key of await this.kv.keys()) keys.push(key);
      const entries = await Promise.all(keys.map((key) => this.kv.get(key)));
      return entries.flatMap((e) =>
        e === null || e.operation !== 'PUT' ? [] : [{ ...parseKey(e.key), ...parseValue(e.value) }],
      );
    } catch (err) {
      throw wrapNatsError(err, 'cannot list presence');
    }
  }

  /** Calls `onChange` for every put and delete from now on (any node). */
  async watch(onChange: (change: PresenceChange) => void): Promise<{ stop(): void }> {
    this.checkOpen();
    try {
      const updates = await this.kv.watch({ include: KvWatchInclude.UpdatesOnly });
      void (async () => {
        for await (const e of updates) {
          let change: PresenceChange;
          try {
            const who = parseKey(e.key);
            change =
              e.operation === 'PUT'
                ? { kind: 'here', ...who, ...parseValue(e.value) }
                : { kind: 'gone', ...who };
          } catch {
            continue; // Not a key this code writes: nothing to report.
          }
          onChange(change);
        }
      })();
      return { stop: () => updates.stop() };
    } catch (err) {
      throw wrapNatsError(err, 'cannot watch presence');
    }
  }

  /** Stops the heartbeat; with `leave`, deletes this node's entries first (a clean shutdown). */
  async close(options: { leave?: boolean } = {}): Promise<void> {
    if (this.closed) return;
    this.stopHeartbeat();
    if (options.leave === true) await Promise.all([...this.here.keys()].map((m) => this.leave(m)));
    this.closed = true;
  }

  private async put(member: string, detail: PresenceDetail | undefined): Promise<void> {
    const value = detail
      ? {
          at: this.now(),
          fingerprint: detail.fingerprint,
          certificate: detail.certificate.toString('base64'),
        }
      : { at: this.now() };
    try {
      await this.kv.put(keyOf(member, this.node), JSON.stringify(value));
    } catch (err) {
      throw wrapNatsError(err, `cannot put ${member} in presence`);
    }
  }

  private checkOpen(): void {
    if (this.closed) throw new RelayLogError('LogClosed', `presence of ${this.node} is closed`);
  }
}
