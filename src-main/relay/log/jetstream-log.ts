/**
 * The relay's log on NATS JetStream (DESIGN §10.7), for several relay nodes sharing one group's
 * log: one stream per group (jetstream-names.ts), a subject per audience (everyone / one member,
 * the name hex-encoded), the sender in a header, offset = stream sequence, storedAt = the stream's
 * timestamp. Meta and the stream id live in a KV bucket of the group. SqliteRelayLog stays the
 * default for one node; both pass the same contract tests (test/helpers/relay-log-contract.ts).
 *
 * Durability: append resolves once JetStream acknowledged every publish, i.e. the stream leader
 * stored it and, with R3, a quorum of the replicas did (the servers' own fsync policy applies).
 *
 * What differs from the embedded log (each allowed by types.ts or reported as such):
 * - a batch is one publish per entry, pipelined in order on one connection; other nodes' frames may
 *   interleave, so offsets need not be contiguous. A rejected call may have stored ANY subset of its
 *   entries, not only a prefix: an ack that timed out may still have been stored, and later
 *   publishes of the batch may have been stored after an earlier one failed. None of them was
 *   acknowledged to its sender, who resends; receivers drop duplicates by (sender, epoch, seq).
 * - bounds().bytes is the stream's stored bytes (frames plus subject, headers and per-message
 *   overhead), the figure the stream's max_bytes limit counts, not the frame bytes alone.
 * - retention is the stream's own limits (max_age, max_bytes, discard old): enforceRetention sets
 *   them from the policy (policy.now is ignored: the servers' clock runs max_age) and reports what
 *   the stream state shows moved; `more` is always false (the server drops in one go).
 */
import {
  StorageType,
  jetstream,
  jetstreamManager,
  type JetStreamClient,
  type JetStreamManager,
  type SeqMsgRequest,
  type StreamInfo,
} from '@nats-io/jetstream';
import { Kvm, KvWatchInclude, type KV } from '@nats-io/kv';
import { headers, nanos, type NatsConnection } from '@nats-io/transport-node';
import { RelayLogError } from './errors.js';
import { wrapNatsError } from './jetstream-errors.js';
import {
  SENDER_HEADER,
  encodeSender,
  groupNames,
  memberSubject,
  metaKey,
  type GroupNames,
} from './jetstream-names.js';
import { RecentAppends, readRange, readView } from './jetstream-read.js';
import { MIN_MAX_AGE_MS, bindStreamId, ensureStream } from './jetstream-setup.js';
import {
  DEFAULT_RETENTION,
  READ_DEFAULT_LIMIT,
  READ_DEFAULT_MAX_BYTES,
  READ_MAX_LIMIT,
  RETENTION_DEFAULT_MAX_FRAMES,
  invalidLogEntry,
  type LogAppend,
  type LogBounds,
  type LogEntry,
  type LogPage,
  type LogReadRequest,
  type RelayLog,
  type RetentionPolicy,
  type RetentionResult,
} from './types.js';

export interface JetStreamRelayLogOptions {
  /** A connection to the NATS cluster; shared by every group's log of a node. */
  nc: NatsConnection;
  groupId: string;
  /** Stream and KV replicas; default 3 when the cluster has at least 3 servers, else 1. */
  replicas?: number;
  /** The stream's limits when this call creates it (default DEFAULT_RETENTION). */
  retention?: { maxAgeMs: number; maxBytes: number };
  /** JetStream API and publish-ack timeout (default 10 s). */
  timeoutMs?: number;
  /** close() also closes `nc` (JetStreamRelayLog.connect sets it). */
  closeConnection?: boolean;
}

const DEFAULT_TIMEOUT_MS = 10_000;

/** 3 replicas when the connected server knows at least 2 others (its INFO lists their URLs). */
export function defaultReplicas(nc: NatsConnection): number {
  const urls = new Set(nc.info?.connect_urls ?? []);
  return nc.info?.cluster !== undefined && urls.size >= 3 ? 3 : 1;
}

export class JetStreamRelayLog implements RelayLog {
  private closed = false;
  /** This node's appends, for its follower (readRange) to take instead of fetching them back. */
  private readonly recent = new RecentAppends();

  private constructor(
    readonly streamId: string,
    readonly names: GroupNames,
    readonly replicas: number,
    private readonly nc: NatsConnection,
    private readonly js: JetStreamClient,
    private readonly jsm: JetStreamManager,
    private readonly kv: KV,
    private readonly timeoutMs: number,
    private readonly closeConnection: boolean,
  ) {}

  /** Connects to `servers` and opens the group's log; close() closes that connection. */
  static async connect(
    servers: string[],
    options: Omit<JetStreamRelayLogOptions, 'nc' | 'closeConnection'>,
  ): Promise<JetStreamRelayLog> {
    const { connect } = await import('@nats-io/transport-node');
    let nc: NatsConnection;
    try {
      // noAsyncTraces: otherwise every request (a follower makes one per stored frame) builds two
      // Error objects with stack traces up front, in case it fails; that was a quarter of a node's
      // CPU in the cluster benchmark. Failures still say what failed (wrapNatsError).
      nc = await connect({ servers, maxReconnectAttempts: -1, noAsyncTraces: true });
    } catch (err) {
      throw wrapNatsError(err, `cannot connect to ${servers.join(',')}`);
    }
    try {
      return await JetStreamRelayLog.open({ ...options, nc, closeConnection: true });
    } catch (err) {
      await nc.close().catch(() => undefined);
      throw err;
    }
  }

  /** Opens the group's stream and meta bucket, creating them if missing. Throws RelayLogError. */
  static async open(options: JetStreamRelayLogOptions): Promise<JetStreamRelayLog> {
    const names = groupNames(options.groupId);
    const timeout = options.timeoutMs ?? DEFAULT_TIMEOUT_MS;
    const replicas = options.replicas ?? defaultReplicas(options.nc);
    if (!Number.isInteger(replicas) || replicas < 1 || replicas > 5) {
      throw new RangeError(`replicas must be an integer from 1 to 5, not ${replicas}`);
    }
    try {
      const jsm = await jetstreamManager(options.nc, { timeout });
      const js = jetstream(options.nc, { timeout });
      const info = await ensureStream(jsm, names, replicas, options.retention ?? DEFAULT_RETENTION);
      const kv = await new Kvm(js).create(names.metaBucket, {
        history: 1,
        replicas,
        storage: StorageType.File,
      });
      const streamId = await bindStreamId(kv, info.created);
      return new JetStreamRelayLog(
        streamId,
        names,
        info.config.num_replicas,
        options.nc,
        js,
        jsm,
        kv,
        timeout,
        options.closeConnection ?? false,
      );
    } catch (err) {
      throw wrapNatsError(err, `cannot open the JetStream log ${names.stream}`);
    }
  }

  async append(batch: readonly LogAppend[]): Promise<number[]> {
    const invalid = batch.map(invalidLogEntry).find((reason) => reason !== undefined);
    if (invalid !== undefined) throw new TypeError(`not a log entry: ${invalid}`);
    this.checkOpen();
    if (batch.length === 0) return [];
    // Every publish is issued before the first await, so they leave on the connection in batch
    // order, and a later call's after this one's: the stream gives them increasing sequences.
    const acks = batch.map((e) => {
      const h = headers();
      h.set(SENDER_HEADER, encodeSender(e.sender));
      const subject = e.audience.kind === 'all' ? this.names.all : memberSubject(this.names, e.audience.name);
      return this.js.publish(subject, e.frame, {
        headers: h,
        timeout: this.timeoutMs,
        // Refused unless it lands in this group's stream (another stream overlapping the subjects).
        expect: { streamName: this.names.stream },
      });
    });
    const settled = await Promise.allSettled(acks);
    const offsets: number[] = [];
    for (const r of settled) {
      if (r.status === 'rejected') {
        throw wrapNatsError(
          r.reason,
          `cannot append to ${this.names.stream} (${offsets.length} of ${batch.length} acknowledged before the first failure; any of the rest may be stored, none was acknowledged)`,
        );
      }
      offsets.push(r.value.seq);
    }
    const now = Date.now();
    batch.forEach((e, i) => {
      const offset = offsets[i] as number;
      // A copy: the relay hands frames over as views into its read buffers.
      this.recent.add({
        offset,
        storedAt: now,
        audience: e.audience,
        sender: e.sender,
        frame: Buffer.from(e.frame),
      });
    });
    return offsets;
  }

  async read(request: LogReadRequest): Promise<LogPage> {
    const { afterOffset, member } = request;
    const limit = request.limit ?? READ_DEFAULT_LIMIT;
    const maxBytes = request.maxBytes ?? READ_DEFAULT_MAX_BYTES;
    if (!Number.isSafeInteger(afterOffset) || afterOffset < 0) {
      throw new RangeError(`afterOffset must be a non-negative integer, not ${afterOffset}`);
    }
    if (!Number.isInteger(limit) || limit < 1 || limit > READ_MAX_LIMIT) {
      throw new RangeError(`limit must be an integer from 1 to ${READ_MAX_LIMIT}`);
    }
    if (!Number.isSafeInteger(maxBytes) || maxBytes < 1)
      throw new RangeError('maxBytes must be a positive integer');
    if (typeof member !== 'string' || member.length === 0)
      throw new TypeError('member must be a non-empty string');
    this.checkOpen();
    try {
      return await readView(this.jsm, this.names, {
        afterOffset,
        member,
        ownBroadcasts: request.ownBroadcasts === true,
        limit,
        maxBytes,
      });
    } catch (err) {
      throw wrapNatsError(err, `cannot read ${this.names.stream}`);
    }
  }

  /** The NATS connection the log uses (a cluster node shares it for presence and its subjects). */
  get connection(): NatsConnection {
    return this.nc;
  }

  /**
   * Every frame, whatever its audience, after `afterOffset` up to `upTo` (at most `max` sequences
   * looked at): what a node following the stream reads (cluster/follower.ts).
   */
  async readRange(
    afterOffset: number,
    upTo: number,
    max: number,
  ): Promise<{ entries: LogEntry[]; next: number }> {
    this.checkOpen();
    try {
      return await readRange(this.jsm, this.names, afterOffset, upTo, max, this.recent);
    } catch (err) {
      throw wrapNatsError(err, `cannot read ${this.names.stream}`);
    }
  }

  /**
   * Calls `onValue` with every value later put under meta `key` by any node (not the current one):
   * how a roster stored on one node reaches the others. Deletes are not reported.
   */
  async watchMeta(key: string, onValue: (value: Buffer) => void): Promise<{ stop(): void }> {
    if (!validKey(key)) throw new TypeError('a meta key is a string of 1 to 256 characters');
    this.checkOpen();
    try {
      const updates = await this.kv.watch({ key: metaKey(key), include: KvWatchInclude.UpdatesOnly });
      void (async () => {
        for await (const e of updates) if (e.operation === 'PUT') onValue(Buffer.from(e.value));
      })();
      return { stop: () => updates.stop() };
    } catch (err) {
      throw wrapNatsError(err, `cannot watch ${this.names.metaBucket}`);
    }
  }

  async bounds(): Promise<LogBounds> {
    this.checkOpen();
    try {
      return boundsOf(await this.jsm.streams.info(this.names.stream));
    } catch (err) {
      throw wrapNatsError(err, `cannot read ${this.names.stream}`);
    }
  }

  async firstOffsetFor(member: string): Promise<number | undefined> {
    if (typeof member !== 'string' || member.length === 0)
      throw new TypeError('member must be a non-empty string');
    this.checkOpen();
    try {
      // The first message at or after sequence 1 on the member's subject (null when there is none).
      // The server (2.9+) takes next_by_subj in STREAM.MSG.GET; the client's type only lists it for
      // direct gets, which a follower may answer from behind the leader.
      const query: SeqMsgRequest & { next_by_subj: string } = {
        seq: 1,
        next_by_subj: memberSubject(this.names, member),
      };
      const m = await this.jsm.streams.getMessage(this.names.stream, query);
      return m?.seq;
    } catch (err) {
      throw wrapNatsError(err, `cannot read ${this.names.stream}`);
    }
  }

  async enforceRetention(policy: RetentionPolicy): Promise<RetentionResult> {
    const { maxAgeMs, maxBytes, now } = policy;
    const maxFrames = policy.maxFrames ?? RETENTION_DEFAULT_MAX_FRAMES;
    for (const [name, value] of Object.entries({ maxAgeMs, maxBytes, now, maxFrames })) {
      if (!Number.isSafeInteger(value) || value < (name === 'maxFrames' ? 1 : 0)) {
        throw new RangeError(`retention ${name} must be a non-negative integer, not ${value}`);
      }
    }
    this.checkOpen();
    try {
      const before = await this.jsm.streams.info(this.names.stream);
      // 0 means "no limit" to JetStream but "keep nothing now" to the policy: a purge (which keeps
      // the sequence, so the next offset still follows the last one ever given). The stream's
      // limits stay as they were: as a limit, 0 would drop every later frame the moment it lands.
      if (maxBytes === 0 || maxAgeMs === 0) await this.jsm.streams.purge(this.names.stream);
      else {
        const maxAge = nanos(Math.max(maxAgeMs, MIN_MAX_AGE_MS));
        if (before.config.max_age !== maxAge || before.config.max_bytes !== maxBytes) {
          await this.jsm.streams.update(this.names.stream, { max_age: maxAge, max_bytes: maxBytes });
        }
      }
      const after = await this.jsm.streams.info(this.names.stream);
      const was = boundsOf(before);
      const is = boundsOf(after);
      return {
        droppedFrames: Math.max(0, is.firstOffset - was.firstOffset),
        droppedBytes: Math.max(0, was.bytes - is.bytes),
        firstOffset: is.firstOffset,
        more: false,
      };
    } catch (err) {
      throw wrapNatsError(err, `cannot apply retention to ${this.names.stream}`);
    }
  }

  async getMeta(key: string): Promise<Buffer | undefined> {
    if (!validKey(key)) throw new TypeError('a meta key is a string of 1 to 256 characters');
    this.checkOpen();
    try {
      const entry = await this.kv.get(metaKey(key));
      return entry === null || entry.operation !== 'PUT' ? undefined : Buffer.from(entry.value);
    } catch (err) {
      throw wrapNatsError(err, `cannot read ${this.names.metaBucket}`);
    }
  }

  async setMeta(key: string, value: Buffer): Promise<void> {
    if (!validKey(key)) throw new TypeError('a meta key is a string of 1 to 256 characters');
    if (!Buffer.isBuffer(value)) throw new TypeError('a meta value is a Buffer');
    this.checkOpen();
    try {
      await this.kv.put(metaKey(key), value);
    } catch (err) {
      throw wrapNatsError(err, `cannot write ${this.names.metaBucket}`);
    }
  }

  async close(): Promise<void> {
    if (this.closed) return;
    this.closed = true;
    if (this.closeConnection) {
      try {
        await this.nc.close();
      } catch (err) {
        throw wrapNatsError(err, 'cannot close the NATS connection');
      }
    }
  }

  private checkOpen(): void {
    if (this.closed) throw new RelayLogError('LogClosed', `${this.names.stream} is closed`);
  }
}

function boundsOf(info: StreamInfo): LogBounds {
  const { messages, bytes, first_seq, last_seq } = info.state;
  // A stream that never held a message reports first_seq 0; the interface's empty log is last + 1.
  const firstOffset = messages === 0 ? last_seq + 1 : first_seq;
  return { firstOffset, lastOffset: last_seq, frames: messages, bytes };
}

function validKey(key: unknown): key is string {
  return typeof key === 'string' && key.length >= 1 && key.length <= 256;
}
