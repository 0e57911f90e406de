/**
 * The relay log's engine for several nodes (DESIGN §10.7), on a 3-server NATS JetStream cluster
 * started here on 127.0.0.1 (test/helpers/nats-servers.ts), R3 streams, 1 KB frames:
 *
 * - cluster.raw_publish_msgs_per_s: bare JetStream publishes with acks (a window of publishes in
 *   flight on one connection) while three readers (ordered consumers, one connection each) take
 *   every message; the rate is messages / time until every reader had all of them.
 * - cluster.log_append_msgs_per_s: the same through JetStreamRelayLog, fed by the relay's LogWriter
 *   (one append per event-loop turn, several in flight), with the same three readers.
 *
 * (cluster.ts has the cluster.jetstream_raw_msgs_per_s, measured against the relay nodes.)
 *
 * All of it (three servers, publisher, readers) shares this machine's cores: a floor, not a
 * cluster's capacity.
 */
import { randomBytes } from 'node:crypto';
import { jetstream, jetstreamManager, StorageType } from '@nats-io/jetstream';
import { connect, type NatsConnection } from '@nats-io/transport-node';
import { JetStreamRelayLog } from '../../src-main/relay/log/jetstream-log.js';
import { LogWriter } from '../../src-main/relay/log/writer.js';
import { startNats } from '../../test/helpers/nats-servers.js';
import type { BenchResult, BenchSuite } from '../harness.js';

const FRAME_BYTES = 1024;
const MESSAGES = 20_000;
const WINDOW = 512;
const READERS = 3;

/** Three readers of every message of `stream`; resolves when each has `count`. */
async function readers(
  urls: string[],
  stream: string,
  count: number,
): Promise<{ done: Promise<void>; close(): Promise<void> }> {
  const conns: NatsConnection[] = [];
  const finished: Promise<void>[] = [];
  for (let i = 0; i < READERS; i++) {
    // Each reader on its own server, as members on different nodes would be.
    const nc = await connect({ servers: urls[i % urls.length] });
    conns.push(nc);
    const consumer = await jetstream(nc).consumers.get(stream);
    const messages = await consumer.consume({ max_messages: 1024 });
    finished.push(
      (async () => {
        let got = 0;
        for await (const m of messages) {
          if (m.data.length > 0) got++;
          if (got === count) break;
        }
        messages.stop();
      })(),
    );
  }
  return {
    done: Promise.all(finished).then(() => undefined),
    close: async () => {
      await Promise.all(conns.map((nc) => nc.close()));
    },
  };
}

async function rawRate(urls: string[]): Promise<number> {
  const nc = await connect({ servers: urls[0] });
  try {
    const jsm = await jetstreamManager(nc);
    await jsm.streams.add({
      name: 'BENCH_RAW',
      subjects: ['bench.raw.>'],
      storage: StorageType.File,
      num_replicas: 3,
    });
    const js = jetstream(nc);
    const payload = randomBytes(FRAME_BYTES);
    const reading = await readers(urls, 'BENCH_RAW', MESSAGES);
    const start = performance.now();
    const inFlight = new Set<Promise<unknown>>();
    for (let i = 0; i < MESSAGES; i++) {
      const p = js.publish('bench.raw.all', payload).finally(() => inFlight.delete(p));
      inFlight.add(p);
      if (inFlight.size >= WINDOW) await Promise.race(inFlight);
    }
    await Promise.all(inFlight);
    await reading.done;
    const elapsed = performance.now() - start;
    await reading.close();
    return (MESSAGES * 1000) / elapsed;
  } finally {
    await nc.close();
  }
}

async function logRate(urls: string[]): Promise<number> {
  const nc = await connect({ servers: urls[0] });
  try {
    const log = await JetStreamRelayLog.open({ nc, groupId: 'bench-cluster' });
    const writer = new LogWriter(log, { maxBatchEntries: 256 });
    const payload = randomBytes(FRAME_BYTES);
    const reading = await readers(urls, log.names.stream, MESSAGES);
    const start = performance.now();
    const inFlight = new Set<Promise<unknown>>();
    for (let i = 0; i < MESSAGES; i++) {
      const p = writer
        .append({ audience: { kind: 'all' }, sender: `m${i % 3}`, frame: payload })
        .finally(() => inFlight.delete(p));
      inFlight.add(p);
      if (inFlight.size >= WINDOW) await Promise.race(inFlight);
    }
    await Promise.all(inFlight);
    await reading.done;
    const elapsed = performance.now() - start;
    await reading.close();
    await writer.close();
    await log.close();
    return (MESSAGES * 1000) / elapsed;
  } finally {
    await nc.close();
  }
}

export const clusterRawSuite: BenchSuite = {
  name: 'cluster-raw',
  description:
    '3-server NATS JetStream cluster on this machine, R3, 1 KB: bare publishes vs JetStreamRelayLog appends',
  async run(): Promise<BenchResult[]> {
    const cluster = await startNats(3);
    try {
      const raw = await rawRate(cluster.urls);
      const log = await logRate(cluster.urls);
      return [
        { name: 'cluster.raw_publish_msgs_per_s', value: Math.round(raw), unit: 'msg/s' },
        { name: 'cluster.log_append_msgs_per_s', value: Math.round(log), unit: 'msg/s' },
        { name: 'cluster.log_to_raw_ratio', value: Number((log / raw).toFixed(2)), unit: 'x' },
      ];
    } finally {
      await cluster.stop();
    }
  },
};
