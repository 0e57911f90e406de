/**
 * A raw protocol member for relay tests: speaks the wire protocol directly with the core codec
 * (no client engine). It validates the relay's HELLO, answers CONNECTION, records every frame it
 * receives (verifying relay-originated ones) and can send arbitrary frames or bytes.
 */
import { connect, type Socket } from 'node:net';
import { connect as tlsConnect } from 'node:tls';
import { connectLink } from '../../src-main/core/link/tls.js';
import { readFileSync } from 'node:fs';
import { Certificate } from '../../src-main/core/pki/certificate.js';
import { LocalIdentity } from '../../src-main/core/pki/local-identity.js';
import {
  FrameDecoder,
  RELAY_TYPES,
  decodeBody,
  decodeLinkFrame,
  isLinkFrame,
  type LinkFrame,
  type StoredAck,
  encodeFrame,
  readHeader,
  sealMessage,
  verifyHeader,
  type BodyOf,
  type EnvelopeHeader,
  type MessageType,
  type SenderRef,
} from '../../src-main/core/protocol/index.js';
import { TEST_PASSWORD } from './group.js';

export interface ReceivedFrame {
  /** The frame payload exactly as received (no length prefix). */
  raw: Buffer;
  header: EnvelopeHeader;
  type: MessageType;
  /** Decoded body of relay-originated frames (after their signature verified). */
  body?: unknown;
  at: number;
  /** The log offset, for an envelope that came inside DELIVERED (protocol v2). */
  offset?: number;
}

/** `value`, or a test failure naming what was missing. */
export function must<T>(value: T | undefined | null, what = 'a value'): T {
  if (value === undefined || value === null) throw new Error(`expected ${what}`);
  return value;
}

/** Well inside the relay's default heartbeat timeout (15 s), even on a loaded machine. */
const HEARTBEAT_EVERY_MS = 3_000;

const identityCache = new Map<string, LocalIdentity>();

/** Loads a bundle once per test file (the PKCS#12 KDF is slow on purpose). */
export function loadIdentity(bundlePath: string, role?: 'member' | 'relay'): LocalIdentity {
  const key = `${bundlePath}:${role ?? ''}`;
  let id = identityCache.get(key);
  if (!id) {
    id = LocalIdentity.fromBundleFile(readFileSync(bundlePath), TEST_PASSWORD, role);
    identityCache.set(key, id);
  }
  return id;
}

export interface RawMemberOptions {
  port: number;
  host?: string;
  /**
   * The link under the protocol. Default `tls`: TLS presenting the identity's certificate and
   * checking the relay's against its group CA. `plain-tcp`: no TLS at all (what a port scanner
   * sends). `tls-no-cert`: TLS without a client certificate. `tls-unchecked`: TLS presenting the
   * identity's certificate without checking the relay's (an outsider from another group).
   */
  link?: 'tls' | 'plain-tcp' | 'tls-no-cert' | 'tls-unchecked';
  /** Keep received frames (default true). Benchmarks count instead. */
  record?: boolean;
  /**
   * After login, send a HEARTBEAT this often, as real clients do when idle (default 3,000 ms, well
   * inside the relay's default 15 s timeout); false = a member whose host went silent, which the
   * relay drops at its heartbeat timeout.
   */
  heartbeatEveryMs?: number | false;
}

export class RawMember {
  readonly frames: ReceivedFrame[] = [];
  /** Link frames (protocol v2: DELIVERED, STORED, LIVE) in arrival order; DELIVERED also lands in frames. */
  readonly links: LinkFrame[] = [];
  readonly decoder = new FrameDecoder(64 * 1024 * 1024);
  relayCert: Certificate | undefined;
  hello: BodyOf<'HELLO'> | undefined;
  closed = false;
  /** Error from the socket or an unverifiable relay frame. */
  failure: Error | undefined;
  received = 0;
  private waiters: (() => void)[] = [];
  private readonly record: boolean;
  private readonly heartbeatEveryMs: number | false;
  private readonly checksRelay: boolean;
  onFrame: ((payload: Buffer) => void) | undefined;
  /** Called with each frame after it was recorded (relay frames verified, bodies decoded). */
  onAccepted: ((frame: ReceivedFrame) => void) | undefined;

  private constructor(
    readonly socket: Socket,
    /** The TCP connection under the link (the same socket for `plain-tcp`). */
    readonly tcp: Socket,
    readonly identity: LocalIdentity | undefined,
    options: RawMemberOptions,
  ) {
    this.record = options.record ?? true;
    this.heartbeatEveryMs = options.heartbeatEveryMs ?? HEARTBEAT_EVERY_MS;
    this.checksRelay = options.link === undefined || options.link === 'tls';
    socket.setNoDelay(true);
    socket.on('data', (chunk: Buffer) => this.onData(chunk));
    socket.on('error', (err) => {
      this.failure ??= err;
    });
    socket.on('close', () => {
      this.closed = true;
      this.wake();
    });
  }

  /** A link only: reads HELLO (and verifies it) but does not log in. */
  static async open(identity: LocalIdentity | undefined, options: RawMemberOptions): Promise<RawMember> {
    const host = options.host ?? '127.0.0.1';
    const link = options.link ?? (identity ? 'tls' : 'plain-tcp');
    // The TCP socket is ours, so a test can reset it (a host that vanished) under the TLS layer.
    const tcp = connect({ host, port: options.port });
    let socket: Socket = tcp;
    let ready = 'connect';
    if (link !== 'plain-tcp') {
      ready = 'secureConnect';
      if (link === 'tls-no-cert') {
        socket = tlsConnect({ socket: tcp, rejectUnauthorized: false });
      } else {
        const me = must(identity, 'an identity for a TLS link');
        socket =
          link === 'tls'
            ? connectLink({
                host,
                port: options.port,
                socket: tcp,
                context: me.linkContext,
                validator: me.validator,
              })
            : tlsConnect({ socket: tcp, secureContext: me.linkContext, rejectUnauthorized: false });
      }
    }
    await new Promise<void>((resolve, reject) => {
      socket.once(ready, resolve);
      socket.once('error', reject);
    });
    return new RawMember(socket, tcp, identity, options);
  }

  /** Connects and logs in; resolves once a PRESENCE lists this member. */
  static async join(identity: LocalIdentity, options: RawMemberOptions): Promise<RawMember> {
    const m = await RawMember.open(identity, options);
    await m.login();
    return m;
  }

  /** This member's identity (a bare TCP client has none). */
  get me(): LocalIdentity {
    return must(this.identity, 'an identity');
  }

  get name(): string {
    return this.me.name;
  }

  get fingerprint(): Buffer {
    return this.me.certificate.fingerprint;
  }

  private onData(chunk: Buffer): void {
    let payloads: Buffer[];
    try {
      payloads = this.decoder.push(chunk);
    } catch (err) {
      this.failure ??= err as Error;
      this.socket.destroy();
      return;
    }
    for (const raw of payloads) {
      this.received++;
      if (this.onFrame) {
        this.onFrame(raw);
        continue;
      }
      try {
        this.accept(raw);
      } catch (err) {
        this.failure ??= err as Error;
      }
    }
    this.wake();
  }

  private accept(raw: Buffer): void {
    let offset: number | undefined;
    if (isLinkFrame(raw)) {
      const link = decodeLinkFrame(Buffer.from(raw));
      if (this.record) this.links.push(link);
      if (link.kind !== 'DELIVERED') return;
      offset = link.offset;
      raw = link.envelope;
    }
    const header = readHeader(raw);
    const frame: ReceivedFrame = { raw: Buffer.from(raw), header, type: header.type, at: performance.now() };
    if (offset !== undefined) frame.offset = offset;
    if (header.type === 'HELLO') {
      if (header.sender.kind !== 'certificate') throw new Error('HELLO without the relay certificate');
      const cert = Certificate.fromDer(header.sender.der);
      if (this.identity && this.checksRelay) this.identity.validator.validate(cert, { role: 'relay' });
      verifyHeader(header, cert.publicKey);
      this.relayCert = cert;
      this.hello = decodeBody('HELLO', header.body);
      frame.body = this.hello;
    } else if (RELAY_TYPES.has(header.type)) {
      if (!this.relayCert) throw new Error(`${header.type} before HELLO`);
      if (
        header.sender.kind !== 'fingerprint' ||
        !header.sender.fingerprint.equals(this.relayCert.fingerprint)
      ) {
        throw new Error(`${header.type} not from the relay`);
      }
      verifyHeader(header, this.relayCert.publicKey);
      frame.body = decodeBody(header.type, header.body);
    }
    if (this.record) this.frames.push(frame);
    this.onAccepted?.(frame);
  }

  private wake(): void {
    const waiters = this.waiters;
    this.waiters = [];
    for (const w of waiters) w();
  }

  /** Waits until `predicate` holds (checked on every received frame and on close). */
  async until<T>(predicate: () => T | undefined | false, timeoutMs = 20_000, what = 'condition'): Promise<T> {
    const deadline = Date.now() + timeoutMs;
    for (;;) {
      const v = predicate();
      if (v) return v;
      const left = deadline - Date.now();
      if (left <= 0) {
        throw new Error(
          `${this.identity?.name ?? 'raw client'}: timed out waiting for ${what}; got ${this.frames
            .map((f) => (f.type === 'ERROR' ? `ERROR(${(f.body as BodyOf<'ERROR'>).code})` : f.type))
            .join(', ')}${this.closed ? ' [closed]' : ''}`,
        );
      }
      await new Promise<void>((resolve) => {
        const t = setTimeout(resolve, Math.min(left, 250));
        this.waiters.push(() => {
          clearTimeout(t);
          resolve();
        });
      });
    }
  }

  /** The first received frame of `type` matching `filter`, waiting for it. */
  waitFor<T extends MessageType>(
    type: T,
    filter: (f: ReceivedFrame & { body: BodyOf<T> }) => boolean = () => true,
    timeoutMs = 20_000,
  ): Promise<ReceivedFrame & { body: BodyOf<T> }> {
    return this.until(
      () =>
        this.frames.find(
          (f): f is ReceivedFrame & { body: BodyOf<T> } =>
            f.type === type && filter(f as ReceivedFrame & { body: BodyOf<T> }),
        ),
      timeoutMs,
      type,
    );
  }

  errors(): BodyOf<'ERROR'>[] {
    return this.frames.filter((f) => f.type === 'ERROR').map((f) => f.body as BodyOf<'ERROR'>);
  }

  waitForError(code: string, timeoutMs = 20_000): Promise<ReceivedFrame & { body: BodyOf<'ERROR'> }> {
    return this.waitFor('ERROR', (f) => f.body.code === code, timeoutMs);
  }

  waitClosed(timeoutMs = 20_000): Promise<true> {
    return this.until(() => this.closed, timeoutMs, 'close');
  }

  latestPresence(): BodyOf<'PRESENCE'> | undefined {
    const p = this.frames.filter((f) => f.type === 'PRESENCE').at(-1);
    return p?.body as BodyOf<'PRESENCE'> | undefined;
  }

  /** Waits for a PRESENCE whose member names are exactly `names` (any order). */
  waitForPresence(
    names: string[],
    timeoutMs = 20_000,
  ): Promise<ReceivedFrame & { body: BodyOf<'PRESENCE'> }> {
    const want = [...names].sort().join(',');
    return this.waitFor(
      'PRESENCE',
      (f) =>
        f.body.members
          .map((m) => m.name)
          .sort()
          .join(',') === want && f === this.frames.filter((x) => x.type === 'PRESENCE').at(-1),
      timeoutMs,
    );
  }

  /** The CONNECTION answering this connection's HELLO (or `challenge`), signed by `signer`. */
  connectionFrame(
    options: { challenge?: Buffer; relayFingerprint?: string; signer?: LocalIdentity } = {},
  ): Buffer {
    const id = this.me;
    return sealMessage(
      'CONNECTION',
      { kind: 'certificate', der: id.certificate.der },
      '',
      {
        challenge: options.challenge ?? must(this.hello, 'HELLO').challenge,
        relayFingerprint: options.relayFingerprint ?? must(this.relayCert, 'HELLO').fingerprintHex,
      },
      (data) => (options.signer ?? id).sign(data),
    );
  }

  async login(): Promise<void> {
    await this.until(() => this.hello, 20_000, 'HELLO');
    this.sendPayload(this.connectionFrame());
    await this.waitFor('PRESENCE', (f) => f.body.members.some((m) => m.name === this.name));
    if (this.heartbeatEveryMs !== false) this.startHeartbeats(this.heartbeatEveryMs);
  }

  private startHeartbeats(everyMs: number): void {
    const frame = this.seal('HEARTBEAT', '', { session: must(this.hello, 'HELLO').challenge });
    const timer = setInterval(() => {
      if (!this.closed && this.socket.writable) this.sendPayload(frame);
    }, everyMs);
    timer.unref();
    this.socket.once('close', () => clearInterval(timer));
  }

  /** A frame from this member (sender = own fingerprint unless overridden), signed with its key. */
  seal<T extends MessageType>(type: T, target: string, body: BodyOf<T>, sender?: SenderRef): Buffer {
    const id = this.me;
    return sealMessage(
      type,
      sender ?? { kind: 'fingerprint', fingerprint: id.certificate.fingerprint },
      target,
      body,
      (d) => id.sign(d),
    );
  }

  sendPayload(payload: Buffer): void {
    this.socket.write(encodeFrame(payload, Number.MAX_SAFE_INTEGER));
  }

  sendRaw(bytes: Buffer): void {
    this.socket.write(bytes);
  }

  /** Sends SYNC (protocol v2): replay after `afterOffset` of `streamId` ('' = from the start). */
  sync(streamId: string, afterOffset: number, ownBroadcasts?: boolean): void {
    this.sendPayload(
      this.seal('SYNC', '', {
        streamId,
        afterOffset,
        ...(ownBroadcasts !== undefined ? { ownBroadcasts } : {}),
      }),
    );
  }

  /** Every STORED acknowledgement received so far, in order. */
  storedAcks(): StoredAck[] {
    return this.links.flatMap((l) => (l.kind === 'STORED' ? l.acks : []));
  }

  /** Waits for LIVE; resolves with its head. */
  async waitLive(timeoutMs = 20_000): Promise<number> {
    const live = await this.until(
      () => this.links.find((l): l is Extract<LinkFrame, { kind: 'LIVE' }> => l.kind === 'LIVE'),
      timeoutMs,
      'LIVE',
    );
    return live.head;
  }

  /** Envelopes received inside DELIVERED, in order. */
  delivered(): (ReceivedFrame & { offset: number })[] {
    return this.frames.filter((f): f is ReceivedFrame & { offset: number } => f.offset !== undefined);
  }

  /** Forwarded frames of `type` received so far (raw payloads). */
  ofType(type: MessageType): ReceivedFrame[] {
    return this.frames.filter((f) => f.type === type);
  }

  close(): void {
    this.socket.end();
  }

  destroy(): void {
    this.socket.destroy();
  }
}

/** A schema-valid ENCRYPTED_TEXT body with a ciphertext of `size` random-ish bytes. */
export function chatBody(seq: number, size = 64): BodyOf<'ENCRYPTED_TEXT'> {
  const ciphertext = Buffer.alloc(Math.max(16, size), seq & 0xff);
  ciphertext.writeUInt32BE(seq >>> 0, 0);
  return { epoch: 1, seq, iv: Buffer.alloc(12, 7), ciphertext };
}
