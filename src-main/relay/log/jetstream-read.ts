/**
 * One page of a member's view of a group's JetStream stream (JetStreamRelayLog.read): frames for
 * everyone plus frames for this member, in stream order.
 *
 * nats-server 2.9 gives a consumer one filter subject (several arrived in 2.10), so the view is a
 * merge of two consumers, one per subject, like the SQLite log's merge of two ordered ranges. Both
 * are ephemeral, in memory, R1, without acks, created from `afterOffset + 1`; their `num_pending` at
 * creation says how many messages to pull, so a pull never waits for messages that do not exist.
 *
 * The page is the view of the log as of its last sequence read just before the consumers were
 * created (`horizon`): everything at or below it is in the pending counts of both consumers, so
 * `nextAfter = horizon` never skips a frame; frames appended during the read are left to the next.
 */
import {
  AckPolicy,
  DeliverPolicy,
  type Consumer,
  type JetStreamClient,
  type JetStreamManager,
  type JsMsg,
} from '@nats-io/jetstream';
import { nanos } from '@nats-io/transport-node';
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

/** Most messages asked for in one pull: bounds what one pull holds in memory beyond the page. */
const PULL_MAX = 512;
/** A pull waits this long for messages num_pending promised (only retention can take them away). */
const PULL_EXPIRES_MS = 5_000;
/** An abandoned read's consumers (a crash between create and delete) are removed by the server. */
const CONSUMER_INACTIVE_MS = 60_000;

class Source {
  private readonly buffer: JsMsg[] = [];
  private lastSeq = 0;

  constructor(
    private readonly consumer: Consumer,
    private pending: number,
    private readonly horizon: number,
  ) {}

  /** The next message at or below the horizon, pulling when the buffer is empty; undefined at the end. */
  async head(want: number): Promise<JsMsg | undefined> {
    if (this.buffer.length === 0 && this.pending > 0 && this.lastSeq < this.horizon) {
      const count = Math.min(this.pending, PULL_MAX, Math.max(1, want));
      const messages = await this.consumer.fetch({ max_messages: count, expires: PULL_EXPIRES_MS });
      let got = 0;
      for await (const m of messages) {
        this.buffer.push(m);
        this.lastSeq = m.seq;
        got++;
      }
      // Fewer than promised: retention dropped the rest meanwhile. Nothing more will come.
      this.pending = got < count ? 0 : this.pending - got;
    }
    const next = this.buffer[0];
    return next !== undefined && next.seq <= this.horizon ? next : undefined;
  }

  take(): void {
    this.buffer.shift();
  }
}

export async function readView(
  jsm: JetStreamManager,
  js: JetStreamClient,
  names: GroupNames,
  request: ViewRequest,
): Promise<LogPage> {
  const { afterOffset, member, limit, maxBytes } = request;
  const horizon = (await jsm.streams.info(names.stream)).state.last_seq;
  if (horizon <= afterOffset) return { entries: [], nextAfter: afterOffset, end: true };

  const subjects = [names.all, memberSubject(names, member)];
  const created = await Promise.allSettled(
    subjects.map((filter_subject) =>
      jsm.consumers.add(names.stream, {
        filter_subject,
        deliver_policy: DeliverPolicy.StartSequence,
        opt_start_seq: afterOffset + 1,
        ack_policy: AckPolicy.None,
        mem_storage: true,
        num_replicas: 1,
        inactive_threshold: nanos(CONSUMER_INACTIVE_MS),
      }),
    ),
  );
  const infos = created.flatMap((r) => (r.status === 'fulfilled' ? [r.value] : []));
  try {
    const failed = created.find((r) => r.status === 'rejected');
    if (failed !== undefined) throw failed.reason;
    const sources = infos.map(
      (ci) => new Source(js.consumers.getConsumerFromInfo(ci), ci.num_pending, horizon),
    );

    const entries: LogEntry[] = [];
    let bytes = 0;
    let cut = false;
    for (;;) {
      // One more than the page can hold tells a full page from the end.
      const want = limit + 1 - entries.length;
      const heads = await Promise.all(sources.map((s) => s.head(want)));
      let pick = -1;
      heads.forEach((m, i) => {
        const best = pick === -1 ? undefined : heads[pick];
        if (m !== undefined && (best === undefined || m.seq < best.seq)) pick = i;
      });
      const message = heads[pick];
      if (message === undefined) break;
      sources[pick]?.take();
      const entry = toEntry(names, message);
      if (entry.audience.kind === 'all' && !request.ownBroadcasts && entry.sender === member) continue;
      if (entries.length === limit || (entries.length > 0 && bytes + entry.frame.length > maxBytes)) {
        cut = true;
        break;
      }
      bytes += entry.frame.length;
      entries.push(entry);
    }
    const last = entries.at(-1)?.offset ?? afterOffset;
    return { entries, nextAfter: cut ? last : Math.max(afterOffset, horizon), end: !cut };
  } finally {
    // Not awaited: the page does not wait for cleanup, and inactive_threshold is the backstop.
    void Promise.allSettled(infos.map((ci) => jsm.consumers.delete(names.stream, ci.name)));
  }
}

export function toEntry(names: GroupNames, m: JsMsg): LogEntry {
  let audience: LogAudience;
  if (m.subject === names.all) audience = { kind: 'all' };
  else if (m.subject.startsWith(names.memberPrefix)) {
    audience = { kind: 'member', name: memberFromToken(m.subject.slice(names.memberPrefix.length)) };
  } else throw new RelayLogError('LogCorrupt', `${names.stream}: message ${m.seq} on ${m.subject}`);
  const sender = m.headers?.get(SENDER_HEADER);
  if (sender === undefined || sender === '') {
    throw new RelayLogError('LogCorrupt', `${names.stream}: message ${m.seq} has no ${SENDER_HEADER}`);
  }
  return {
    offset: m.seq,
    // The stream's own timestamp (the stream leader's clock when it stored the message).
    storedAt: Number(m.timestampNanos / 1_000_000n),
    audience,
    sender: decodeSender(sender),
    // A copy: the message's bytes are a view into the connection's read buffer.
    frame: Buffer.from(m.data),
  };
}
