/**
 * One page of a member's view of a group's JetStream stream (JetStreamRelayLog.read): frames for
 * everyone plus frames for this member, in stream order.
 *
 * Read through the stream leader, by sequence (STREAM.MSG.GET, pipelined in chunks), never through
 * a consumer: on nats-server 2.9 an ephemeral R1 consumer of an R3 stream is placed on any replica,
 * and one on a replica that is behind (a server just restarted, or the third replica that a quorum
 * ack did not wait for) silently misses acknowledged frames; the integration test's kill -9 case
 * caught exactly that. Only the leader holds every acknowledged frame. The price: the read also
 * fetches frames addressed to other members (filtered here; a few per member per epoch) and costs
 * one request per frame, pipelined. With server 2.11's batched direct get this could be one request.
 *
 * The page is the view of the log as of its last sequence when the read started (`horizon`):
 * every sequence up to it is looked at, so `nextAfter = horizon` never skips a frame.
 */
import type { JetStreamManager, StoredMsg } from '@nats-io/jetstream';
import { RelayLogError } from './errors.js';
import {
  SENDER_HEADER,
  decodeSender,
  memberFromToken,
  memberSubject,
  type GroupNames,
} from './jetstream-names.js';
import type { LogAudience, LogEntry, LogPage } from './types.js';

export interface ViewRequest {
  afterOffset: number;
  member: string;
  ownBroadcasts: boolean;
  limit: number;
  maxBytes: number;
}

/** Requests in flight per chunk: enough to fill the link, few enough not to fetch far past a page. */
const CHUNK_MIN = 16;
const CHUNK_MAX = 256;

export async function readView(
  jsm: JetStreamManager,
  names: GroupNames,
  request: ViewRequest,
): Promise<LogPage> {
  const { afterOffset, member, limit, maxBytes } = request;
  const { state } = await jsm.streams.info(names.stream);
  const horizon = state.last_seq;
  if (horizon <= afterOffset) return { entries: [], nextAfter: afterOffset, end: true };
  const mine = memberSubject(names, member);
  const entries: LogEntry[] = [];
  let bytes = 0;
  let cut = false;
  let cursor = Math.max(afterOffset + 1, state.first_seq);
  scan: while (cursor <= horizon) {
    // About twice what the page still needs: most frames are broadcasts, due to everyone.
    const want = 2 * (limit + 1 - entries.length);
    const count = Math.min(horizon - cursor + 1, Math.max(CHUNK_MIN, Math.min(want, CHUNK_MAX)));
    const seqs = Array.from({ length: count }, (_, i) => cursor + i);
    cursor += count;
    // null: dropped by retention since the read started.
    const chunk = await Promise.all(seqs.map((seq) => jsm.streams.getMessage(names.stream, { seq })));
    for (const m of chunk) {
      if (m === null || (m.subject !== names.all && m.subject !== mine)) continue;
      const entry = toEntry(names, m);
      if (entry.audience.kind === 'all' && !request.ownBroadcasts && entry.sender === member) continue;
      if (entries.length === limit || (entries.length > 0 && bytes + entry.frame.length > maxBytes)) {
        cut = true;
        break scan;
      }
      bytes += entry.frame.length;
      entries.push(entry);
    }
  }
  const last = entries.at(-1)?.offset ?? afterOffset;
  return { entries, nextAfter: cut ? last : Math.max(afterOffset, horizon), end: !cut };
}

export function toEntry(names: GroupNames, m: StoredMsg): LogEntry {
  let audience: LogAudience;
  if (m.subject === names.all) audience = { kind: 'all' };
  else if (m.subject.startsWith(names.memberPrefix)) {
    audience = { kind: 'member', name: memberFromToken(m.subject.slice(names.memberPrefix.length)) };
  } else throw new RelayLogError('LogCorrupt', `${names.stream}: message ${m.seq} on ${m.subject}`);
  const sender = m.header?.get(SENDER_HEADER);
  if (sender === undefined || sender === '') {
    throw new RelayLogError('LogCorrupt', `${names.stream}: message ${m.seq} has no ${SENDER_HEADER}`);
  }
  return {
    offset: m.seq,
    // The stream's own timestamp (the stream leader's clock when it stored the message).
    storedAt: m.time.getTime(),
    audience,
    sender: decodeSender(sender),
    // A copy: the stored message's bytes may be a view into a larger decoded buffer.
    frame: Buffer.from(m.data),
  };
}

/**
 * Frames this node appended, by the sequence JetStream acknowledged for them, so that its own
 * follower need not fetch them back from the leader (one STREAM.MSG.GET per frame saved). What
 * the stream acknowledged at a sequence is what was published, so an entry taken from here is the
 * stored one (but for `storedAt`, this node's clock at the ack: the follower does not use it).
 * Bounded: the oldest go first, and a sequence not found here is read from the stream as before.
 */
export class RecentAppends {
  private readonly entries = new Map<number, LogEntry>();
  private bytes = 0;

  constructor(
    private readonly maxEntries = 4096,
    private readonly maxBytes = 8 * 1024 * 1024,
  ) {}

  add(entry: LogEntry): void {
    this.entries.set(entry.offset, entry);
    this.bytes += entry.frame.length;
    while (this.entries.size > this.maxEntries || this.bytes > this.maxBytes) this.dropOldest();
  }

  /** The entry at `seq`, removed (the follower reads each sequence once). */
  take(seq: number): LogEntry | undefined {
    const entry = this.entries.get(seq);
    if (entry !== undefined) this.remove(entry);
    return entry;
  }

  /** The follower is past `seq`: what is left up to it (read back from the stream meanwhile) goes. */
  dropThrough(seq: number): void {
    // Insertion order is about sequence order (acks come in order on one connection); one out of
    // order stops this early and is left to the caps: it costs memory, never a frame.
    for (const entry of this.entries.values()) {
      if (entry.offset > seq) return;
      this.remove(entry);
    }
  }

  private dropOldest(): void {
    const oldest = this.entries.values().next();
    if (oldest.done !== true) this.remove(oldest.value);
  }

  private remove(entry: LogEntry): void {
    this.entries.delete(entry.offset);
    this.bytes -= entry.frame.length;
  }
}

/**
 * Every stored frame after `afterOffset` up to `upTo` (at most `max` sequences looked at), for a
 * node following the whole stream (cluster/follower.ts): every audience, in stream order, read
 * through the stream leader like readView, but for the ones `recent` holds (this node's own
 * appends). `next` is the last sequence looked at; sequences that retention dropped are skipped
 * (none below the stream's first sequence is asked for).
 */
export async function readRange(
  jsm: JetStreamManager,
  names: GroupNames,
  afterOffset: number,
  upTo: number,
  max: number,
  recent?: RecentAppends,
): Promise<{ entries: LogEntry[]; next: number }> {
  if (upTo <= afterOffset) return { entries: [], next: afterOffset };
  let from = afterOffset + 1;
  const own = recent?.take(from);
  const first = own ?? (await getEntry(jsm, names, from));
  if (first === null) {
    // Dropped by retention (or never stored past a purge): start at what the stream still holds.
    const { state } = await jsm.streams.info(names.stream);
    from = Math.max(from, state.first_seq);
    if (from > upTo) {
      recent?.dropThrough(upTo);
      return { entries: [], next: upTo };
    }
  }
  const last = Math.min(upTo, from + max - 1);
  const seqs = Array.from({ length: last - from + 1 }, (_, i) => from + i);
  const found = await Promise.all(
    seqs.map((seq) =>
      seq === afterOffset + 1 && first !== null
        ? Promise.resolve(first)
        : (recent?.take(seq) ?? getEntry(jsm, names, seq)),
    ),
  );
  const entries = found.filter((e): e is LogEntry => e !== null);
  recent?.dropThrough(last);
  return { entries, next: last };
}

/** The entry at `seq` read through the stream leader; null if the stream no longer holds it. */
async function getEntry(jsm: JetStreamManager, names: GroupNames, seq: number): Promise<LogEntry | null> {
  const m = await jsm.streams.getMessage(names.stream, { seq });
  return m === null ? null : toEntry(names, m);
}
