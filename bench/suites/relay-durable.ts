/**
 * Durable fan-out (issue 9): the same 1 -> 3 fan-out of 1 KB frames as relay.msgs_per_s, but what
 * counts is a message stored *and* delivered: the relay with its log, every member SYNCed (the
 * receivers get DELIVERED, the sender counts its STORED acks), against Redis Streams with an
 * append-only file (appendonly yes, appendfsync everysec: like the log's synchronous=NORMAL, a
 * reply means written to the OS, which a kill -9 of the server does not undo), XADD from one
 * client and three XREAD readers, through ioredis. In both, a message is done once the sender has
 * its acknowledgement and all three readers have it; the window is the same.
 */
import { spawn } from 'node:child_process';
import { mkdtempSync } from 'node:fs';
import { join } from 'node:path';
import { Redis } from 'ioredis';
import {
  freePort,
  PAYLOAD_BYTES,
  RECEIVERS,
  rssMiB,
  cpuSeconds,
  sleep,
  startRelay,
  stopper,
  type BenchMember,
  type Child,
} from './relay-kit.js';
import { chatFrame, Counter, login, type BenchConn, type FanOut } from './relay-clients.js';

/** The relay with its log, every member SYNCed: DELIVERED to the receivers, STORED to the sender. */
export async function durableFanOut(
  bundle: string,
  dir: string,
  sender: BenchMember,
  receivers: BenchMember[],
): Promise<FanOut> {
  const relay = await startRelay(bundle, mkdtempSync(join(dir, 'durable-data-')), [
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
    for (const c of conns) await c.until(() => c.presenceSize === receivers.length + 1, 'full PRESENCE');
    for (const c of conns) await c.sync();
    const frame = chatFrame(sender, PAYLOAD_BYTES);
    // DELIVERED = the frame with a 10-byte header inside its length prefix.
    const rx = conns.slice(0, receivers.length).map((c) => c.count(frame.length + 10));
    const acks = txConn.countAcks();
    const batch = Buffer.concat(Array.from({ length: 128 }, () => frame));
    const socket = txConn.socket;
    return {
      name: 'relay (log, SYNCed)',
      server: relay,
      link: {
        receivers: [...rx, acks],
        send: (n) => socket.write(n === 128 ? batch : batch.subarray(0, n * frame.length)),
        drain: async () => {
          await new Promise<void>((resolve) => socket.once('drain', resolve));
        },
      },
      state: { sent: 0 },
      close,
    };
  } catch (err) {
    await close();
    throw err;
  }
}

/** redis-server with an append-only file in `dir` (appendonly yes, appendfsync everysec). */
async function startDurableRedis(dir: string): Promise<Child> {
  const port = await freePort();
  const proc = spawn(
    'redis-server',
    [
      '--port',
      String(port),
      '--bind',
      '127.0.0.1',
      '--dir',
      mkdtempSync(join(dir, 'redis-')),
      '--save',
      '',
      '--appendonly',
      'yes',
      '--appendfsync',
      'everysec',
      '--protected-mode',
      'no',
      '--daemonize',
      'no',
    ],
    { stdio: 'ignore' },
  );
  const probe = new Redis({
    port,
    host: '127.0.0.1',
    lazyConnect: true,
    maxRetriesPerRequest: 0,
    retryStrategy: () => null,
  });
  const deadline = Date.now() + 10_000;
  for (;;) {
    try {
      await probe.connect();
      await probe.ping();
      probe.disconnect();
      break;
    } catch {
      probe.disconnect();
      if (Date.now() > deadline) throw new Error('redis-server did not start');
      await sleep(50);
    }
  }
  return { proc, port, rssMiB: () => rssMiB(proc.pid), cpu: () => cpuSeconds(proc.pid), stop: stopper(proc) };
}

/** Redis Streams: XADD (pipelined, acknowledged by its reply) and three blocking XREAD readers. */
export async function redisStreamsFanOut(dir: string): Promise<FanOut> {
  const redis = await startDurableRedis(dir);
  const clients: Redis[] = [];
  const connect = (): Redis => {
    const c = new Redis({ port: redis.port, host: '127.0.0.1', maxRetriesPerRequest: 0 });
    // Failures show up as rejected commands (and a stalled bench); the event would only be noise.
    c.on('error', () => undefined);
    clients.push(c);
    return c;
  };
  let closing = false;
  const close = async (): Promise<void> => {
    closing = true;
    for (const c of clients) c.disconnect();
    await redis.stop();
  };
  try {
    const key = 'bench';
    const payload = Buffer.alloc(PAYLOAD_BYTES, 0x5a);
    const producer = connect();
    await producer.ping();
    const rx: Counter[] = [];
    for (let i = 0; i < RECEIVERS; i++) {
      const reader = connect();
      await reader.ping();
      const counter = new Counter(1);
      rx.push(counter);
      void (async () => {
        let last = '0';
        while (!closing) {
          let reply: [Buffer, [Buffer, Buffer[]][]][] | null;
          try {
            reply = (await reader.xreadBuffer('COUNT', 1024, 'BLOCK', 0, 'STREAMS', key, last)) as
              [Buffer, [Buffer, Buffer[]][]][] | null;
          } catch {
            return; // disconnected at close
          }
          const entries = reply?.[0]?.[1] ?? [];
          const lastEntry = entries.at(-1);
          if (lastEntry) {
            last = lastEntry[0].toString();
            counter.add(entries.length);
          }
        }
      })();
    }
    const acks = new Counter(1);
    let inFlight = 0;
    let drained: (() => void) | undefined;
    return {
      name: 'redis-server (streams, AOF everysec)',
      server: redis,
      link: {
        receivers: [...rx, acks],
        send: (n) => {
          const p = producer.pipeline();
          // Trimmed far behind the readers (the window is 4,096): memory stays bounded, nothing unread is lost.
          for (let i = 0; i < n; i++) p.xadd(key, 'MAXLEN', '~', '200000', '*', 'p', payload);
          inFlight++;
          void p.exec().then(() => {
            inFlight--;
            acks.add(n);
            if (inFlight < 8) drained?.();
          });
          return inFlight < 8;
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
