/**
 * Relay benchmarks: the relay as a child process (`securechat-x relay`), driven over its TLS 1.3
 * link on 127.0.0.1 by raw protocol clients in this process.
 *
 * - fan-out 1 sender -> 3 members, 1 KB ENCRYPTED_TEXT frames signed once (the relay forwards by
 *   header, so this measures the relay, not RSA): messages/s delivered to all 3 at saturation
 *   (windowed: at most WINDOW messages in flight, nothing lost), and p50/p99 latency paced at
 *   1,000 and 10,000 msgs/s;
 * - relay RSS with 1,000 idle authenticated connections, and per connection against a bare Node
 *   TLS server holding the same 1,000 mutually authenticated TLS 1.3 connections (the cost of the
 *   link itself vs the relay's own);
 * - if `redis-server` is on PATH: Redis pub/sub with the same load (1 publisher, 3 subscribers,
 *   1 KB payload, same window) over a minimal RESP client, and the ratio;
 * - durable (relay-durable.ts): the relay with its log and SYNCed members (DELIVERED, STORED
 *   acks) against Redis Streams with an append-only file, a message counted once stored and
 *   delivered to all 3.
 *
 * Since issue 9 the relay always has its log (the CLI opens one), so relay.msgs_per_s is v1
 * members through the log: each frame stored before it goes out as a bare envelope.
 */
import { buildRoster, signRoster } from '../../src-main/core/roster/index.js';
import { once } from 'node:events';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import type { Socket } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import {
  Certificate,
  createGroupCa,
  issueCertificate,
  MIN_KDF_ITERATIONS,
  writeBundle,
  type Credential,
} from '../../src-main/core/pki/index.js';
import { percentile, type BenchResult, type BenchSuite } from '../harness.js';
import {
  hasRedis,
  IDLE_CONNECTIONS,
  issueMany,
  memberOf,
  PACED_MS,
  PASSWORD,
  PAYLOAD_BYTES,
  RECEIVERS,
  sleep,
  startListener,
  startRedis,
  startRelay,
  tcp,
  TLS_IDLE_SERVER,
  tlsLink,
  type BenchMember,
} from './relay-kit.js';
import {
  BenchConn,
  chatFrame,
  Counter,
  linkOf,
  login,
  paced,
  saturationRounds,
  type FanOut,
} from './relay-clients.js';
import { durableFanOut, redisStreamsFanOut } from './relay-durable.js';

/** v1 members (no SYNC): frames go through the relay's log, then out as bare envelopes. */
async function relayFanOut(
  bundle: string,
  dir: string,
  sender: BenchMember,
  receivers: BenchMember[],
): Promise<FanOut> {
  const relay = await startRelay(bundle, mkdtempSync(join(dir, 'relay-data-')), [
    '--rate-frames',
    '0',
    '--rate-bytes',
    '0',
  ]);
  const conns: BenchConn[] = [];
  const close = async (): Promise<void> => {
    for (const c of conns) c.socket.destroy();
    await relay.stop();
  };
  try {
    for (const r of receivers) conns.push(await login(relay.port, r));
    const txConn = await login(relay.port, sender);
    conns.push(txConn);
    // Everyone has seen the final PRESENCE before counting starts.
    for (const c of conns) await c.until(() => c.presenceSize === receivers.length + 1, 'full PRESENCE');
    const frame = chatFrame(sender, PAYLOAD_BYTES);
    const rx = conns.slice(0, receivers.length).map((c) => c.count(frame.length));
    txConn.ignore();
    return {
      name: 'relay',
      server: relay,
      link: linkOf(txConn.socket, frame, rx),
      state: { sent: 0 },
      close,
    };
  } catch (err) {
    await close();
    throw err;
  }
}

async function redisFanOut(): Promise<FanOut> {
  const redis = await startRedis();
  const sockets: Socket[] = [];
  const close = async (): Promise<void> => {
    for (const s of sockets) s.destroy();
    await redis.stop();
  };
  try {
    const payload = Buffer.alloc(PAYLOAD_BYTES, 0x5a);
    const channel = 'ch';
    const command = Buffer.concat([
      Buffer.from(`*3\r\n$7\r\nPUBLISH\r\n$${channel.length}\r\n${channel}\r\n$${payload.length}\r\n`),
      payload,
      Buffer.from('\r\n'),
    ]);
    const messageBytes =
      Buffer.byteLength(`*3\r\n$7\r\nmessage\r\n$${channel.length}\r\n${channel}\r\n$${payload.length}\r\n`) +
      payload.length +
      2;
    const rx: Counter[] = [];
    for (let i = 0; i < RECEIVERS; i++) {
      const s = await tcp(redis.port);
      sockets.push(s);
      s.write(`*2\r\n$9\r\nSUBSCRIBE\r\n$${channel.length}\r\n${channel}\r\n`);
      const confirm = `*3\r\n$9\r\nsubscribe\r\n$${channel.length}\r\n${channel}\r\n:1\r\n`;
      let head = Buffer.alloc(0);
      while (head.length < confirm.length)
        head = Buffer.concat([head, ((await once(s, 'data')) as [Buffer])[0]]);
      if (head.toString('latin1', 0, confirm.length) !== confirm)
        throw new Error('unexpected SUBSCRIBE reply');
      const c = new Counter(messageBytes);
      s.on('data', (chunk: Buffer) => c.push(chunk));
      if (head.length > confirm.length) c.push(head.subarray(confirm.length));
      rx.push(c);
    }
    const tx = await tcp(redis.port);
    sockets.push(tx);
    tx.on('data', () => undefined); // ":3\r\n" per PUBLISH
    return { name: 'redis-server', server: redis, link: linkOf(tx, command, rx), state: { sent: 0 }, close };
  } catch (err) {
    await close();
    throw err;
  }
}

/** Opens a TLS link as each member, 100 at a time; `then` runs on each socket once it is up. */
async function openLinks(
  port: number,
  members: BenchMember[],
  then: (s: Socket, m: BenchMember) => void,
): Promise<void> {
  for (let i = 0; i < members.length; i += 100) {
    const chunk = members.slice(i, i + 100);
    const sockets = await Promise.all(chunk.map((m) => tlsLink(port, m)));
    sockets.forEach((socket, k) => then(socket, chunk[k] as BenchMember));
  }
}

const kibPerConnection = (before: number, after: number): number =>
  Math.round((((after - before) * 1024) / IDLE_CONNECTIONS) * 10) / 10;

async function idleConnections(
  bundle: string,
  ca: Credential,
  holder: Credential,
  relayCred: Credential,
  dir: string,
): Promise<BenchResult[]> {
  const members = issueMany(
    ca,
    Array.from({ length: IDLE_CONNECTIONS }, (_, i) => `idle-${String(i).padStart(4, '0')}`),
    holder,
  );
  const relay = await startRelay(bundle, mkdtempSync(join(dir, 'idle-data-')), [
    '--max-connections',
    String(IDLE_CONNECTIONS + 100),
    // 1,000 members logging in from one host, 100 links at a time: not a flood, so the pending
    // pool is opened up for them.
    '--max-pending',
    String(IDLE_CONNECTIONS + 100),
    '--max-pending-per-address',
    String(IDLE_CONNECTIONS + 100),
    // PRESENCE at most once a minute: the first member's goes out at once, the rest not during the
    // measurement, so what is measured is what an idle connection costs, not a 1,000-member list
    // sent to 1,000 members (~100 MB of TLS records whose buffers would stay in the RSS).
    '--presence-interval-ms',
    '60000',
    '--auth-timeout-ms',
    '120000',
    '--pressure-auth-timeout-ms',
    '120000',
  ]);
  const conns: BenchConn[] = [];
  const results: BenchResult[] = [];
  try {
    await sleep(300);
    const baseline = relay.rssMiB();
    const loggedIn: Promise<void>[] = [];
    await openLinks(relay.port, members, (socket, m) => {
      const c = new BenchConn(socket, m);
      c.probeLogin = true;
      conns.push(c);
      loggedIn.push(c.until(() => c.answered, 'CERT_RESPONSE').then(() => c.ignore()));
    });
    await Promise.all(loggedIn);
    // Let the relay settle.
    await sleep(3000);
    const rss = relay.rssMiB();
    console.log(
      `  (relay RSS idle ${baseline.toFixed(1)} MiB -> ${rss.toFixed(1)} MiB with ${IDLE_CONNECTIONS} members: ` +
        `~${kibPerConnection(baseline, rss)} KiB per connection)`,
    );
    results.push(
      { name: 'relay.rss_mb_1000_idle', value: Math.round(rss * 10) / 10, unit: 'MiB' },
      { name: 'relay.tls_kb_per_conn', value: kibPerConnection(baseline, rss), unit: 'KiB' },
    );
  } finally {
    for (const c of conns) c.socket.destroy();
    await relay.stop();
  }
  results.push(await bareTlsBaseline(relayCred, ca, members, dir));
  return results;
}

/** The same 1,000 links held by a bare Node TLS server: what TLS itself costs per connection. */
async function bareTlsBaseline(
  relayCred: Credential,
  ca: Credential,
  members: BenchMember[],
  dir: string,
): Promise<BenchResult> {
  const credentials = join(dir, 'tls-baseline.json');
  writeFileSync(
    credentials,
    JSON.stringify({
      keyPem: relayCred.privateKeyPem,
      certPem: relayCred.certificate.pem,
      caPem: ca.certificate.pem,
    }),
    { mode: 0o600 },
  );
  const server = await startListener(TLS_IDLE_SERVER, [credentials]);
  const sockets: Socket[] = [];
  try {
    await sleep(300);
    const baseline = server.rssMiB();
    await openLinks(server.port, members, (socket) => {
      socket.on('error', () => undefined);
      sockets.push(socket);
    });
    await sleep(3000);
    const rss = server.rssMiB();
    console.log(
      `  (bare Node TLS server RSS ${baseline.toFixed(1)} MiB -> ${rss.toFixed(1)} MiB with ${IDLE_CONNECTIONS} links: ` +
        `~${kibPerConnection(baseline, rss)} KiB per connection)`,
    );
    return { name: 'relay.tls_baseline_kb_per_conn', value: kibPerConnection(baseline, rss), unit: 'KiB' };
  } finally {
    for (const sock of sockets) sock.destroy();
    await server.stop();
  }
}

/**
 * Stored and delivered: the relay with its log and SYNCed members against Redis Streams with an
 * append-only file, in alternating rounds like the pub/sub comparison.
 */
async function durableRounds(
  bundle: string,
  dir: string,
  sender: BenchMember,
  receivers: BenchMember[],
): Promise<BenchResult[]> {
  const results: BenchResult[] = [];
  const durable = await durableFanOut(bundle, dir, sender, receivers);
  const streams = hasRedis() ? await redisStreamsFanOut(dir) : undefined;
  try {
    const [durableRate = 0, streamsRate] = await saturationRounds(streams ? [durable, streams] : [durable]);
    results.push({ name: 'relay.durable_msgs_per_s', value: Math.round(durableRate), unit: 'msg/s' });
    if (streamsRate !== undefined) {
      results.push(
        { name: 'relay.redis_streams_msgs_per_s', value: Math.round(streamsRate), unit: 'msg/s' },
        { name: 'relay.ratio_to_redis_streams', value: durableRate / streamsRate, unit: 'x' },
      );
    } else {
      console.log(
        '  (redis-server not on PATH: no Redis Streams comparison; apt-get install -y redis-server)',
      );
    }
    await streams?.close();
    const { link, state } = durable;
    const at1000 = await paced(link, state, 1000, PACED_MS);
    results.push(
      { name: 'relay.durable_p50_ms_at_1000', value: percentile(at1000, 50), unit: 'ms' },
      { name: 'relay.durable_p99_ms_at_1000', value: percentile(at1000, 99), unit: 'ms' },
    );
  } finally {
    await durable.close();
    await streams?.close();
  }
  return results;
}

export const relaySuite: BenchSuite = {
  name: 'relay',
  description:
    'relay S as a child process: 1 -> 3 fan-out of 1 KB frames, latency, idle memory, vs Redis pub/sub; stored and delivered vs Redis Streams',
  async run() {
    const dir = mkdtempSync(join(tmpdir(), 'scx-relay-bench-'));
    try {
      const ca = createGroupCa({ name: 'Relay Bench CA' });
      const relayCred = issueCertificate(ca, { name: 'relay', role: 'relay' });
      const bundle = join(dir, 'relay.p12');
      writeFileSync(
        bundle,
        writeBundle(relayCred, ca.certificate, PASSWORD, { kdfIterations: MIN_KDF_ITERATIONS }),
      );
      const creds = ['sender', 'm1', 'm2', 'm3'].map((name) =>
        issueCertificate(ca, { name, role: 'member' }),
      );
      // The relay admits only listed members: the fan-out group's roster. The idle test's 1,000
      // members are more than a roster lists (512): it cannot log in to a roster-enforcing relay.
      writeFileSync(
        join(dir, 'roster.scx'),
        signRoster(
          buildRoster({
            ca: ca.certificate,
            name: 'Relay Bench',
            members: creds.map((c) => c.certificate),
            relays: [relayCred.certificate],
          }),
          ca,
        ),
      );
      const [sender, ...receivers] = creds.map((c) => memberOf(c, ca));
      if (!sender) throw new Error('no sender');
      // The certificates are real and validate against the CA (a sanity check, not timed).
      Certificate.fromDer(sender.der);

      const results: BenchResult[] = [];
      const relay = await relayFanOut(bundle, dir, sender, receivers);
      const redis = hasRedis() ? await redisFanOut() : undefined;
      try {
        const [relayRate = 0, redisRate] = await saturationRounds(redis ? [relay, redis] : [relay]);
        results.push({ name: 'relay.msgs_per_s', value: Math.round(relayRate), unit: 'msg/s' });
        if (redisRate !== undefined) {
          results.push({ name: 'relay.redis_msgs_per_s', value: Math.round(redisRate), unit: 'msg/s' });
        } else {
          console.log('  (redis-server not on PATH: no Redis comparison; apt-get install -y redis-server)');
        }
        await redis?.close();
        const { link, state } = relay;
        await paced(link, state, 1000, 500);
        const at1000 = await paced(link, state, 1000, PACED_MS);
        const at10000 = await paced(link, state, 10_000, PACED_MS);
        console.log(
          `  (relay RSS after fan-out: ${relay.server.rssMiB().toFixed(1)} MiB; ${state.sent} frames sent, each delivered 3x)`,
        );
        results.push(
          { name: 'relay.p50_ms_at_1000', value: percentile(at1000, 50), unit: 'ms' },
          { name: 'relay.p99_ms_at_1000', value: percentile(at1000, 99), unit: 'ms' },
          { name: 'relay.p50_ms_at_10000', value: percentile(at10000, 50), unit: 'ms' },
          { name: 'relay.p99_ms_at_10000', value: percentile(at10000, 99), unit: 'ms' },
        );
        const holder = creds[1];
        if (!holder) throw new Error('no holder');
        await relay.close();
        results.push(...(await durableRounds(bundle, dir, sender, receivers)));
        results.push(...(await idleConnections(bundle, ca, holder, relayCred, dir)));
        if (redisRate !== undefined) {
          results.push({ name: 'relay.ratio_to_redis', value: relayRate / redisRate, unit: 'x' });
        }
      } finally {
        await relay.close();
        await redis?.close();
      }
      return results;
    } finally {
      rmSync(dir, { recursive: true, force: true });
    }
  },
};
