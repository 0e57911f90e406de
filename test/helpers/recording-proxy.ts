/**
 * A proxy between members and the relay that records what crosses it, in one of two positions:
 *
 * - `observer` (default): a TCP proxy on the network path. It records every byte in both
 *   directions and forwards them untouched. Under TLS that is what a network observer sees.
 * - `relay-host`: TLS is terminated here with the relay's own certificate and key, and a second
 *   link goes on to the relay with the member's certificate and key: the position of whoever
 *   controls the relay's machine. It sees and records every frame, forwards relay frames whole,
 *   and lets a test inject a frame between two genuine ones (what a compromised relay can do).
 */
import { createServer, connect, type AddressInfo, type Server, type Socket } from 'node:net';
import type { TLSSocket } from 'node:tls';
import { acceptLink, connectLink, peerCertificate } from '../../src-main/core/link/tls.js';
import type { LocalIdentity } from '../../src-main/core/pki/local-identity.js';
import { encodeFrame, FrameDecoder } from '../../src-main/core/protocol/framing.js';

export interface ProxiedConnection {
  client: Socket;
  upstream: Socket;
  /** Frame payloads member -> relay and relay -> member, in order (relay-host position only). */
  toRelay: Buffer[];
  toClient: Buffer[];
}

export interface RelayHostKeys {
  /** The relay's identity: the proxy presents its certificate to members. */
  relay: LocalIdentity;
  /** Members by name: the proxy logs in upstream with the certificate of whoever connected. */
  members: Record<string, LocalIdentity>;
}

export class RecordingProxy {
  /** Every chunk seen, either direction, in arrival order (observer: TLS records; relay-host: frames). */
  readonly chunks: Buffer[] = [];
  readonly connections: ProxiedConnection[] = [];
  private readonly sockets = new Set<Socket>();

  private constructor(
    private readonly server: Server,
    readonly port: number,
    /** Frames can be read and injected only where TLS is terminated (the relay host's position). */
    private readonly terminates: boolean,
  ) {}

  static async start(
    target: { host: string; port: number },
    relayHost?: RelayHostKeys,
  ): Promise<RecordingProxy> {
    const server = createServer();
    await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
    const proxy = new RecordingProxy(server, (server.address() as AddressInfo).port, relayHost !== undefined);
    server.on('connection', (client) =>
      relayHost ? proxy.terminate(client, target, relayHost) : proxy.observe(client, target),
    );
    return proxy;
  }

  get address(): string {
    return `127.0.0.1:${this.port}`;
  }

  /** All bytes that crossed the proxy. */
  bytes(): Buffer {
    return Buffer.concat(this.chunks);
  }

  get latest(): ProxiedConnection | undefined {
    return this.connections[this.connections.length - 1];
  }

  /** Sends a frame payload to the member on the newest connection, as if the relay had sent it. */
  injectToClient(payload: Buffer): void {
    if (!this.terminates) throw new Error('an observer on the path cannot inject into a TLS stream');
    const c = this.latest;
    if (!c) throw new Error('no proxied connection');
    c.client.write(encodeFrame(payload));
  }

  async close(): Promise<void> {
    for (const s of this.sockets) s.destroy();
    await new Promise<void>((resolve) => this.server.close(() => resolve()));
  }

  private observe(client: Socket, target: { host: string; port: number }): void {
    const upstream = connect(target);
    this.connections.push({ client, upstream, toRelay: [], toClient: [] });
    this.track(client, upstream);
    client.on('data', (chunk: Buffer) => {
      this.chunks.push(Buffer.from(chunk));
      upstream.write(chunk);
    });
    upstream.on('data', (chunk: Buffer) => {
      this.chunks.push(Buffer.from(chunk));
      client.write(chunk);
    });
  }

  private terminate(raw: Socket, target: { host: string; port: number }, keys: RelayHostKeys): void {
    const client = acceptLink(raw, keys.relay.linkContext);
    client.on('error', () => client.destroy());
    client.once('secure', () => {
      const member = keys.members[peerCertificate(client)?.name ?? ''];
      if (!member) {
        client.destroy();
        return;
      }
      const upstream: TLSSocket = connectLink({
        ...target,
        context: member.linkContext,
        validator: member.validator,
      });
      const conn: ProxiedConnection = { client, upstream, toRelay: [], toClient: [] };
      this.connections.push(conn);
      this.track(client, upstream);
      const toClient = new FrameDecoder(64 * 1024 * 1024);
      const toRelay = new FrameDecoder(64 * 1024 * 1024);
      client.on('data', (chunk: Buffer) => {
        this.chunks.push(Buffer.from(chunk));
        try {
          for (const f of toRelay.push(chunk)) conn.toRelay.push(Buffer.from(f));
        } catch {
          // not ours to judge: the relay sees the same bytes
        }
        upstream.write(chunk);
      });
      upstream.on('data', (chunk: Buffer) => {
        this.chunks.push(Buffer.from(chunk));
        let frames: Buffer[];
        try {
          frames = toClient.push(chunk);
        } catch {
          client.destroy();
          return;
        }
        for (const f of frames) {
          conn.toClient.push(Buffer.from(f));
          client.write(encodeFrame(f, 64 * 1024 * 1024));
        }
      });
    });
  }

  private track(client: Socket, upstream: Socket): void {
    this.sockets.add(client);
    this.sockets.add(upstream);
    const closeBoth = (): void => {
      client.destroy();
      upstream.destroy();
      this.sockets.delete(client);
      this.sockets.delete(upstream);
    };
    client.on('close', closeBoth);
    upstream.on('close', closeBoth);
    client.on('error', closeBoth);
    upstream.on('error', closeBoth);
  }
}
