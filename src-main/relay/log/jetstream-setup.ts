/**
 * Opening a group's JetStream log (jetstream-log.ts): the stream, made if missing, and the stream
 * id kept in the group's meta bucket, bound to the stream it was made for.
 */
import { randomBytes } from 'node:crypto';
import {
  DiscardPolicy,
  JetStreamApiError,
  RetentionPolicy as JsRetention,
  StorageType,
  type JetStreamManager,
  type StreamInfo,
} from '@nats-io/jetstream';
import type { KV } from '@nats-io/kv';
import { nanos } from '@nats-io/transport-node';
import { RelayLogError } from './errors.js';
import { STREAM_ID_KEY, type GroupNames } from './jetstream-names.js';

/** JetStream refuses a max_age below 1 s in some versions: smaller policies are rounded up to it. */
export const MIN_MAX_AGE_MS = 1000;

/** What the KV keeps under STREAM_ID_KEY: the id, and the stream incarnation it belongs to. */
interface StreamIdRecord {
  id: string;
  /** The stream's `created` timestamp: a stream deleted and made again gets a new id. */
  created: string;
}

export async function ensureStream(
  jsm: JetStreamManager,
  names: GroupNames,
  replicas: number,
  retention: { maxAgeMs: number; maxBytes: number },
): Promise<StreamInfo> {
  try {
    return await jsm.streams.info(names.stream);
  } catch (err) {
    if (!(err instanceof JetStreamApiError && err.code === 10059)) throw err;
  }
  try {
    return await jsm.streams.add({
      name: names.stream,
      subjects: [names.subjects],
      storage: StorageType.File,
      retention: JsRetention.Limits,
      discard: DiscardPolicy.Old,
      max_age: nanos(Math.max(retention.maxAgeMs, MIN_MAX_AGE_MS)),
      max_bytes: Math.max(retention.maxBytes, 1),
      num_replicas: replicas,
    });
  } catch (err) {
    // Another node created it first (with other limits, which would make our add fail): use theirs.
    if (err instanceof JetStreamApiError && err.code === 10058) return jsm.streams.info(names.stream);
    throw err;
  }
}

/**
 * The log's stream id, shared by every node: kept in the KV with the stream's creation time, and
 * replaced (compare-and-set, so concurrent openers agree) when the stream is not the one it was
 * made for: a stream that was deleted and made again is another log, and old offsets are a GAP.
 */
export async function bindStreamId(kv: KV, created: string): Promise<string> {
  for (let attempt = 0; attempt < 5; attempt++) {
    const entry = await kv.get(STREAM_ID_KEY);
    const record = entry?.operation === 'PUT' ? parseRecord(entry.value) : undefined;
    if (record !== undefined && record.created === created) return record.id;
    const fresh: StreamIdRecord = { id: randomBytes(16).toString('hex'), created };
    const value = JSON.stringify(fresh);
    try {
      if (entry === null) await kv.create(STREAM_ID_KEY, value);
      else await kv.update(STREAM_ID_KEY, value, entry.revision);
      return fresh.id;
    } catch (err) {
      // Someone else wrote it between our read and our write: read theirs (next round).
      if (!(err instanceof JetStreamApiError && (err.code === 10071 || err.code === 10164))) throw err;
    }
  }
  throw new RelayLogError('LogIo', 'the stream id kept changing while opening the log');
}

function parseRecord(value: Uint8Array): StreamIdRecord | undefined {
  try {
    const parsed = JSON.parse(Buffer.from(value).toString('utf8')) as Partial<StreamIdRecord>;
    if (
      typeof parsed.id === 'string' &&
      /^[0-9a-f]{32}$/.test(parsed.id) &&
      typeof parsed.created === 'string'
    ) {
      return { id: parsed.id, created: parsed.created };
    }
  } catch {
    // Not ours (or damaged): replaced like a record of another stream.
  }
  return undefined;
}
