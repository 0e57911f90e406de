/**
 * The relay benchmarks' protocol side: raw clients that log in and count fixed-size frames (or
 * STORED acks), and the windowed saturation / paced-latency drivers (relay.ts, relay-durable.ts).
 */
import { constants, sign as nodeSign, type KeyObject } from 'node:crypto';
import { once } from 'node:events';
import type { Socket } from 'node:net';
import { fingerprintOf } from '../../src-main/core/pki/fingerprint.js';
import {
  decodeBody,
  decodeLinkFrame,
  encodeFrame,
  FrameDecoder,
  isLinkFrame,
  LINK_FRAME_KINDS,
  readHeader,
  sealMessage,
} from '../../src-main/core/protocol/index.js';
import {
  ownCpuSeconds,
  ROUNDS,
  SATURATION_MS,
  sleep,
  tlsLink,
  WINDOW,
  type BenchMember,
  type Child,
} from './relay-kit.js';
// ---- protocol clients --------------------------------------------------------------------------

/** Counts fixed-size units arriving on a socket (frames of a known size, RESP messages). */
export class Counter {
  bytes = 0;
  count = 0;
  /** Arrival time of unit i (for i >= recordFrom) is reported here. */
  onUnits: ((from: number, to: number, t: number) => void) | undefined;
  private waiters: (() => void)[] = [];

  constructor(readonly unit: number) {}

  push(chunk: Buffer): void {
    this.bytes += chunk.length;
    const count = Math.floor(this.bytes / this.unit);
    if (count !== this.count) this.add(count - this.count);
  }

  /** `n` more units arrived (counters that are told rather than measure bytes). */
  add(n: number): void {
    const from = this.count;
    this.count += n;
    this.onUnits?.(from, this.count, performance.now());
    const w = this.waiters;
    this.waiters = [];
    for (const f of w) f();
  }

  progress(): Promise<void> {
    return new Promise((resolve) => this.waiters.push(resolve));
  }
}

/** Counts the acknowledgements in the STORED link frames arriving on a sender's socket. */
export class AckCounter extends Counter {
  private readonly decoder = new FrameDecoder(64 * 1024 * 1024);

  constructor() {
    super(1);
  }

  override push(chunk: Buffer): void {
    let acks = 0;
    for (const frame of this.decoder.push(chunk)) {
      if (frame[0] === 0 && frame[1] === LINK_FRAME_KINDS.STORED) acks += frame.readUInt16BE(2);
    }
    if (acks > 0) this.add(acks);
  }
}

export function pssSign(key: KeyObject, data: Buffer): Buffer {
  return nodeSign('sha256', data, { key, padding: constants.RSA_PKCS1_PSS_PADDING, saltLength: 32 });
}

/**
 * A logged-in member. Until `count()` is called it decodes frames (HELLO, PRESENCE …); after it,
 * it only counts fixed-size frames, which is all the fan-out benchmark needs.
 */
export class BenchConn {
  presenceSize = 0;
  /** LIVE arrived (after sync()): the replay is over. */
  live = false;
  /** A CERT_RESPONSE arrived: proof of login that does not need a PRESENCE. */
  answered = false;
  /** Send a CERT_REQUEST right after CONNECTION (the idle-memory bench). */
  probeLogin = false;
  private readonly decoder = new FrameDecoder(64 * 1024 * 1024);
  private counter: Counter | undefined;
  private discard = false;
  private waiters: (() => void)[] = [];
  failure: Error | undefined;

  constructor(
    readonly socket: Socket,
    private readonly member: BenchMember,
  ) {
    socket.on('data', (chunk: Buffer) => this.onData(chunk));
    socket.on('close', () => {
      this.failure ??= new Error(`${member.name}: connection closed`);
      this.wake();
    });
    socket.on('error', () => undefined);
  }

  private wake(): void {
    const w = this.waiters;
    this.waiters = [];
    for (const f of w) f();
  }

  private onData(chunk: Buffer): void {
    if (this.counter) return this.counter.push(chunk);
    if (this.discard) return;
    try {
      for (const frame of this.decoder.push(chunk)) {
        if (isLinkFrame(frame)) {
          if (decodeLinkFrame(frame).kind === 'LIVE') this.live = true;
          continue;
        }
        const header = readHeader(frame);
        if (header.type === 'HELLO' && header.sender.kind === 'certificate') {
          const hello = decodeBody('HELLO', header.body);
          const m = this.member;
          const connection = sealMessage(
            'CONNECTION',
            { kind: 'certificate', der: m.der },
            '',
            {
              challenge: hello.challenge,
              relayFingerprint: fingerprintOf(header.sender.der).toString('hex'),
            },
            (data) => pssSign(m.key, data),
          );
          this.socket.write(encodeFrame(connection));
          if (this.probeLogin) {
            // Answered only once CONNECTION (before it on the wire) has logged this member in.
            const probe = sealMessage(
              'CERT_REQUEST',
              { kind: 'fingerprint', fingerprint: m.fingerprint },
              '',
              { names: [m.name] },
              (data) => pssSign(m.key, data),
            );
            this.socket.write(encodeFrame(probe));
          }
        } else if (header.type === 'CERT_RESPONSE') {
          this.answered = true;
        } else if (header.type === 'PRESENCE') {
          // Only the member count is needed; the frame is not verified (a benchmark, not a client).
          this.presenceSize = Math.max(1, countMembers(header.body));
        } else if (header.type === 'ERROR') {
          this.failure ??= new Error(
            `${this.member.name}: ${JSON.stringify(decodeBody('ERROR', header.body))}`,
          );
        }
      }
    } catch (err) {
      this.failure ??= err as Error;
    }
    this.wake();
  }

  async until(ok: () => boolean, what: string): Promise<void> {
    const deadline = Date.now() + 60_000;
    while (!ok()) {
      if (this.failure) throw this.failure;
      if (Date.now() > deadline) throw new Error(`${this.member.name}: timed out waiting for ${what}`);
      await new Promise<void>((resolve) => {
        const t = setTimeout(resolve, 200);
        this.waiters.push(() => {
          clearTimeout(t);
          resolve();
        });
      });
    }
  }

  /** From now on only count frames of `unit` bytes (prefix included). */
  count(unit: number): Counter {
    this.counter = new Counter(unit);
    return this.counter;
  }

  /** From now on only count the acknowledgements in STORED frames. */
  countAcks(): Counter {
    this.counter = new AckCounter();
    return this.counter;
  }

  /** Sends SYNC {streamId: '', afterOffset: 0} and waits for LIVE (protocol v2). */
  async sync(): Promise<void> {
    const m = this.member;
    const sync = sealMessage(
      'SYNC',
      { kind: 'fingerprint', fingerprint: m.fingerprint },
      '',
      { streamId: '', afterOffset: 0 },
      (data) => pssSign(m.key, data),
    );
    this.socket.write(encodeFrame(sync));
    await this.until(() => this.live, 'LIVE');
  }

  /** From now on ignore everything received. */
  ignore(): void {
    this.discard = true;
  }
}

/** Members in a PRESENCE body, counted without a full schema decode. */
export function countMembers(body: Buffer): number {
  let n = 0;
  for (let i = body.indexOf('"fingerprint"'); i !== -1; i = body.indexOf('"fingerprint"', i + 1)) n++;
  return n;
}

/** Logs in: HELLO -> CONNECTION -> the first PRESENCE (only members receive it). */
export async function login(port: number, m: BenchMember): Promise<BenchConn> {
  const conn = new BenchConn(await tlsLink(port, m), m);
  await conn.until(() => conn.presenceSize > 0, 'PRESENCE');
  return conn;
}

export interface Link {
  /** Sends `n` units (n <= BATCH) in one write; false if the sender should wait for drain(). */
  send(n: number): boolean;
  drain(): Promise<void>;
  /** Delivered = the minimum over these (receivers, and the sender's acks where there are any). */
  receivers: Counter[];
}

export const BATCH = 128;

export function linkOf(sender: Socket, unit: Buffer, receivers: Counter[]): Link {
  const batch = Buffer.concat(Array.from({ length: BATCH }, () => unit));
  return {
    receivers,
    send: (n) => sender.write(n === BATCH ? batch : batch.subarray(0, n * unit.length)),
    drain: async () => {
      await once(sender, 'drain');
    },
  };
}

export function delivered(link: Link): number {
  let min = Number.POSITIVE_INFINITY;
  for (const r of link.receivers) min = Math.min(min, r.count);
  return min;
}

export async function progress(link: Link): Promise<void> {
  let timer: NodeJS.Timeout | undefined;
  const timeout = new Promise<never>((_, reject) => {
    timer = setTimeout(() => reject(new Error('no progress for 20 s: messages lost?')), 20_000);
  });
  try {
    await Promise.race([Promise.race(link.receivers.map((r) => r.progress())), timeout]);
  } finally {
    clearTimeout(timer);
  }
}

/** Sends as fast as the window allows for `ms`; returns units delivered to every receiver per second. */
export async function saturate(link: Link, state: { sent: number }, ms: number): Promise<number> {
  const start = performance.now();
  const base = state.sent;
  while (performance.now() - start < ms) {
    const room = WINDOW - (state.sent - delivered(link));
    if (room <= 0) {
      await progress(link);
      continue;
    }
    const n = Math.min(BATCH, room);
    const ok = link.send(n);
    state.sent += n;
    if (!ok) await link.drain();
  }
  while (delivered(link) < state.sent) await progress(link);
  return ((state.sent - base) * 1000) / (performance.now() - start);
}

/** Sends at `rate` units/s for `ms`; returns each unit's latency at each receiver (ms). */
export async function paced(
  link: Link,
  state: { sent: number },
  rate: number,
  ms: number,
): Promise<number[]> {
  const base = state.sent;
  const total = Math.round((rate * ms) / 1000);
  const sentAt = new Float64Array(total);
  const latencies: number[] = [];
  for (const r of link.receivers) {
    r.onUnits = (from, to, t) => {
      for (let i = Math.max(from, base); i < to && i - base < total; i++)
        latencies.push(t - (sentAt[i - base] ?? t));
    };
  }
  const start = performance.now();
  let i = 0;
  while (i < total) {
    const due = Math.min(total, Math.floor(((performance.now() - start) * rate) / 1000) + 1);
    while (i < due) {
      const n = Math.min(BATCH, due - i);
      link.send(n);
      const t = performance.now();
      for (let k = 0; k < n; k++) sentAt[i + k] = t;
      i += n;
      state.sent += n;
    }
    await sleep(1);
  }
  while (delivered(link) < state.sent) await progress(link);
  for (const r of link.receivers) r.onUnits = undefined;
  return latencies;
}

// ---- the suite ---------------------------------------------------------------------------------

/**
 * A pre-signed ENCRYPTED_TEXT frame whose payload is as close to `bytes` as base64 allows (within
 * 3 bytes, never over).
 */
export function chatFrame(sender: BenchMember, bytes: number): Buffer {
  const build = (size: number): Buffer =>
    sealMessage(
      'ENCRYPTED_TEXT',
      { kind: 'fingerprint', fingerprint: sender.fingerprint },
      '',
      { epoch: 1, seq: 1, iv: Buffer.alloc(12, 1), ciphertext: Buffer.alloc(size, 0x5a) },
      (data) => pssSign(sender.key, data),
    );
  const overhead = build(16).length - 24; // 16 bytes of ciphertext are 24 base64 characters
  let size = Math.floor(((bytes - overhead) * 3) / 4);
  while (build(size + 1).length <= bytes) size++;
  while (build(size).length > bytes) size--;
  return encodeFrame(build(size));
}

/** What the drivers read of the server side: one process, or several (a cluster's nodes and NATS). */
export type Measured = Pick<Child, 'cpu' | 'rssMiB'>;

/** A fan-out set-up: a server, one sender and the receivers, ready to measure. */
export interface FanOut {
  name: string;
  server: Measured;
  link: Link;
  state: { sent: number };
  close(): Promise<void>;
}

/**
 * Saturation throughput of each set-up, measured in alternating rounds (relay, Redis, relay, …)
 * so that both see the same machine load; the best round of each counts.
 */
export async function saturationRounds(setups: FanOut[]): Promise<number[]> {
  for (const f of setups) await saturate(f.link, f.state, 500);
  const best = setups.map(() => 0);
  const cpu = setups.map(() => ({ server: 0, client: 0, wall: 0 }));
  for (let round = 0; round < ROUNDS; round++) {
    for (const [i, f] of setups.entries()) {
      const s0 = f.server.cpu();
      const c0 = ownCpuSeconds();
      const t0 = performance.now();
      const rate = await saturate(f.link, f.state, SATURATION_MS / ROUNDS);
      const c = cpu[i] as { server: number; client: number; wall: number };
      c.server += f.server.cpu() - s0;
      c.client += ownCpuSeconds() - c0;
      c.wall += (performance.now() - t0) / 1000;
      best[i] = Math.max(best[i] ?? 0, rate);
    }
  }
  setups.forEach((f, i) => {
    const c = cpu[i] as { server: number; client: number; wall: number };
    console.log(
      `  (${f.name}: best of ${ROUNDS} rounds ${Math.round(best[i] ?? 0)} msg/s; ` +
        `CPU ${Math.round((c.server / c.wall) * 100)}% server, ${Math.round((c.client / c.wall) * 100)}% clients)`,
    );
  });
  return best;
}
