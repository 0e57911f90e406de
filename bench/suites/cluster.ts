/**
 * The relay cluster (issue 10, DESIGN §10.7) end to end: a 3-server NATS JetStream cluster
 * (test/helpers/nats-servers.ts) and three `securechat-x relay --cluster` nodes, node i on NATS
 * server i, R3, all on 127.0.0.1 of this one machine, driven by raw protocol members (relay-clients.ts):
 *
 * - cluster.msgs_per_s: 1 -> 3 fan-out of 1 KB ENCRYPTED_TEXT frames, the sender on node 1, the
 *   receivers m1, m2, m3 on nodes 1, 2, 3, every member SYNCed: a message counts once the sender
 *   has its STORED ack and all three receivers its DELIVERED; at most 4,096 in flight.
 * - cluster.jetstream_raw_msgs_per_s: in the same run, in alternating rounds with the above, bare
 *   JetStream on the same NATS servers: R3 publishes of 1 KB from one connection (to server 1),
 *   each counted at its ack, three ordered-consumer readers (one per server); the same window; a
 *   message counts once acknowledged and read by all three. cluster.ratio_to_jetstream: the first
 *   over the second, best round of each.
 * - cluster.e2e.p50_ms / p99_ms: the sender on node 1 paced at E2E_RATE msg/s (low: latency, not
 *   queueing), from its write to the read of m2 on node 2; cluster.e2e_same_node.p50_ms: to m1 on
 *   node 1, through the same path (JetStream ack, then the node's follower), for comparison.
 * - cluster.failover_ms: cluster-failover.ts.
 *
 * Everything (3 NATS servers, 3 nodes, the members) shares this machine's cores.
 */
import { randomBytes } from 'node:crypto';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { jetstream, jetstreamManager, StorageType } from '@nats-io/jetstream';
import { connect, type NatsConnection } from '@nats-io/transport-node';
import { startNats, type NatsCluster } from '../../test/helpers/nats-servers.js';
import { percentile, type BenchResult, type BenchSuite } from '../harness.js';
import { makeClusterGroup, natsCpuSeconds, NODES, startNode, type ClusterGroup } from './cluster-kit.js';
import { clusterFailover } from './cluster-failover.js';
import {
  chatFrame,
  Counter,
  delivered,
  login,
  paced,
  progress,
  saturate,
  saturationRounds,
  type BenchConn,
  type FanOut,
  type Link,
} from './relay-clients.js';
import { cpuSeconds, ownCpuSeconds, PAYLOAD_BYTES, RECEIVERS, type Child } from './relay-kit.js';

const NO_RATE = ['--rate-frames', '0', '--rate-bytes', '0'];
const E2E_RATE = 200;
const E2E_MS = 3000;
/** Acks outstanding on the bare JetStream publisher before send() asks the driver to wait. */
const RAW_PUBLISH_BATCHES = 8;

interface ClusterFanOut extends FanOut {
  nodes: Child[];
  /** The same sender, its frames timed at the receiver on node 2 (cross) and node 1 (same). */
  cross: Link;
  same: Link;
}

/** Three nodes, sender + m1 on node 1, m2 on node 2, m3 on node 3, all SYNCed. */
async function clusterFanOut(group: ClusterGroup, nats: NatsCluster, dir: string): Promise<ClusterFanOut> {
  const nodes: Child[] = [];
  const conns: BenchConn[] = [];
  const close = async (): Promise<void> => {
    for (const c of conns) c.socket.destroy();
    await Promise.all(nodes.map((n) => n.stop()));
  };
  try {
    for (let i = 0; i < NODES; i++) nodes.push(await startNode(group, nats, i, dir, NO_RATE));
    const [sender, ...receivers] = group.raw;
    if (!sender || receivers.length !== RECEIVERS)
      throw new Error('the group needs a sender and 3 receivers');
    for (const [i, r] of receivers.entries()) conns.push(await login((nodes[i] as Child).port, r));
    const txConn = await login((nodes[0] as Child).port, sender);
    conns.push(txConn);
    // Presence crosses nodes through the KV bucket: everyone sees all four before counting starts.
    for (const c of conns) await c.until(() => c.presenceSize === receivers.length + 1, 'full PRESENCE');
    for (const c of conns) await c.sync();
    const frame = chatFrame(sender, PAYLOAD_BYTES);
    // DELIVERED = the frame with a 10-byte header inside its length prefix.
    const rx = conns.slice(0, receivers.length).map((c) => c.count(frame.length + 10));
    const acks = txConn.countAcks();
    const batch = Buffer.concat(Array.from({ length: 128 }, () => frame));
    const socket = txConn.socket;
    const linkTo = (counters: Counter[]): Link => ({
      receivers: counters,
      send: (n) => socket.write(n === 128 ? batch : batch.subarray(0, n * frame.length)),
      drain: async () => {
        await new Promise<void>((resolve) => socket.once('drain', resolve));
      },
    });
    const relayCpu = (): number => nodes.reduce((sum, n) => sum + n.cpu(), 0);
    return {
      name: 'relay cluster (3 nodes, R3, SYNCed)',
      server: {
        cpu: () => relayCpu() + natsCpuSeconds(nats),
        rssMiB: () => nodes.reduce((sum, n) => sum + n.rssMiB(), 0),
      },
      link: linkTo([...rx, acks]),
      cross: linkTo([rx[1] as Counter]),
      same: linkTo([rx[0] as Counter]),
      state: { sent: 0 },
      nodes,
      close,
    };
  } catch (err) {
    await close();
    throw err;
  }
}

/** Bare JetStream: an R3 stream, one publisher counting acks, three ordered-consumer readers. */
async function jetStreamFanOut(nats: NatsCluster): Promise<FanOut> {
  const conns: NatsConnection[] = [];
  const close = async (): Promise<void> => {
    await Promise.all(conns.splice(0).map((nc) => nc.close().catch(() => undefined)));
  };
  try {
    const nc = await connect({ servers: nats.urls[0] });
    conns.push(nc);
    const jsm = await jetstreamManager(nc);
    await jsm.streams.add({
      name: 'BENCH_CLUSTER_RAW',
      subjects: ['bench.cluster.raw.>'],
      storage: StorageType.File,
      num_replicas: NODES,
    });
    const rx: Counter[] = [];
    for (let i = 0; i < RECEIVERS; i++) {
      // Each reader on its own server, as the receivers are on their own nodes.
      const reader = await connect({ servers: nats.urls[i % nats.urls.length] });
      conns.push(reader);
      const consumer = await jetstream(reader).consumers.get('BENCH_CLUSTER_RAW');
      const messages = await consumer.consume({ max_messages: 1024 });
      const counter = new Counter(1);
      rx.push(counter);
      void (async () => {
        try {
          for await (const m of messages) if (m.data.length > 0) counter.add(1);
        } catch {
          // closed at the end: the driver's own progress timeout reports a reader that stalls
        }
      })();
    }
    const js = jetstream(nc);
    const payload = randomBytes(PAYLOAD_BYTES);
    const acks = new Counter(1);
    let batches = 0;
    let drained: (() => void) | undefined;
    return {
      name: 'bare JetStream (R3, acks, 3 readers)',
      server: { cpu: () => natsCpuSeconds(nats), rssMiB: () => 0 },
      link: {
        receivers: [...rx, acks],
        send: (n) => {
          const acked = Array.from({ length: n }, () => js.publish('bench.cluster.raw.all', payload));
          batches++;
          void Promise.all(acked).then(() => {
            batches--;
            acks.add(n);
            if (batches < RAW_PUBLISH_BATCHES) drained?.();
          });
          return batches < RAW_PUBLISH_BATCHES;
        },
        drain: () =>
          new Promise<void>((resolve) => {
            drained = () => {
              drained = undefined;
              resolve();
            };
          }),
      },
      state: { sent: 0 },
      close,
    };
  } catch (err) {
    await close();
    throw err;
  }
}

/** Until every receiver of the whole fan-out has every frame sent so far. */
async function settle(f: ClusterFanOut): Promise<void> {
  while (delivered(f.link) < f.state.sent) await progress(f.link);
}

/** One more saturation round of the cluster, with its CPU split: nodes, NATS servers, this process. */
async function cpuSplit(f: ClusterFanOut, nats: NatsCluster): Promise<void> {
  const relays = (): number => f.nodes.reduce((sum, n) => sum + cpuSeconds(n.proc.pid), 0);
  const [r0, n0, c0, t0] = [relays(), natsCpuSeconds(nats), ownCpuSeconds(), performance.now()];
  const rate = await saturate(f.link, f.state, 2000);
  const wall = (performance.now() - t0) / 1000;
  const pct = (s: number): number => Math.round((s / wall) * 100);
  console.log(
    `  (cluster round of ${Math.round(rate)} msg/s: CPU ${pct(relays() - r0)}% relay nodes, ` +
      `${pct(natsCpuSeconds(nats) - n0)}% NATS servers, ${pct(ownCpuSeconds() - c0)}% members (this process), of 200%)`,
  );
}

async function fanOutAndLatency(group: ClusterGroup, nats: NatsCluster, dir: string): Promise<BenchResult[]> {
  const cluster = await clusterFanOut(group, nats, dir);
  const raw = await jetStreamFanOut(nats);
  try {
    const [clusterRate = 0, rawRate = 0] = await saturationRounds([cluster, raw]);
    await raw.close();
    await cpuSplit(cluster, nats);
    await paced(cluster.cross, cluster.state, E2E_RATE, 500);
    await settle(cluster);
    const cross = await paced(cluster.cross, cluster.state, E2E_RATE, E2E_MS);
    await settle(cluster);
    const same = await paced(cluster.same, cluster.state, E2E_RATE, E2E_MS);
    await settle(cluster);
    console.log(
      `  (e2e at ${E2E_RATE} msg/s: node 1 -> node 2 p50 ${percentile(cross, 50).toFixed(2)} ms over ` +
        `${cross.length} frames, node 1 -> node 1 p50 ${percentile(same, 50).toFixed(2)} ms)`,
    );
    return [
      { name: 'cluster.msgs_per_s', value: Math.round(clusterRate), unit: 'msg/s' },
      { name: 'cluster.jetstream_raw_msgs_per_s', value: Math.round(rawRate), unit: 'msg/s' },
      { name: 'cluster.ratio_to_jetstream', value: clusterRate / rawRate, unit: 'x' },
      { name: 'cluster.e2e.p50_ms', value: percentile(cross, 50), unit: 'ms' },
      { name: 'cluster.e2e.p99_ms', value: percentile(cross, 99), unit: 'ms' },
      { name: 'cluster.e2e_same_node.p50_ms', value: percentile(same, 50), unit: 'ms' },
    ];
  } finally {
    await raw.close();
    await cluster.close();
  }
}

export const clusterSuite: BenchSuite = {
  name: 'cluster',
  description:
    '3 relay nodes on a 3-server NATS cluster (R3) on this machine: fan-out vs bare JetStream, e2e across nodes, failover',
  async run(): Promise<BenchResult[]> {
    const dir = mkdtempSync(join(tmpdir(), 'scx-cluster-bench-'));
    const nats = await startNats(3);
    try {
      const results = await fanOutAndLatency(makeClusterGroup(dir), nats, dir);
      // Another group (its own stream): the engines must not replay the raw members' frames.
      results.push(...(await clusterFailover(makeClusterGroup(dir), nats, dir)));
      return results;
    } finally {
      await nats.stop();
      rmSync(dir, { recursive: true, force: true });
    }
  },
};
