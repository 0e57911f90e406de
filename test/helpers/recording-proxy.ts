/**
 * A TCP proxy between members and the relay that records every byte in both directions, so tests
 * can check what an observer of the wire (or the relay's host) sees. Frames from the relay to the
 * member are forwarded whole, which lets a test inject a frame between two genuine ones.
 */
import { createServer, connect, type AddressInfo, type Server, type Socket } from 'node:net';
import { encodeFrame, FrameDecoder } from '../../src-main/core/protocol/framing.js';

export interface ProxiedConnection {
  client: Socket;
  upstream: Socket;
  /** Frame payloads member -> relay and relay -> member, in order. */
  toRelay: Buffer[];
  toClient: Buffer[];
}

export class RecordingProxy {
  /** Every chunk seen, either direction, in arrival order. */
  readonly chunks: Buffer[] = [];
  readonly connections: ProxiedConnection[] = [];
  private readonly sockets = new Set<Socket>();

  private constructor(
    private readonly server: Server,
    readonly port: number,
  ) {}

  static async start(target: { host: string; port: number }): Promise<RecordingProxy> {
    const server = createServer();
    await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
    const proxy = new RecordingProxy(server, (server.address() as AddressInfo).port);
    server.on('connection', (client) => proxy.accept(client, target));
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
    const c = this.latest;
    if (!c) throw new Error('no proxied connection');
    c.client.write(encodeFrame(payload));
  }

  async close(): Promise<void> {
    for (const s of this.sockets) s.destroy();
    await new Promise<void>((resolve) => this.server.close(() => resolve()));
  }

  private accept(client: Socket, target: { host: string; port: number }): void {
    const upstream = connect(target);
    const conn: ProxiedConnection = { client, upstream, toRelay: [], toClient: [] };
    this.connections.push(conn);
    this.sockets.add(client);
    this.sockets.add(upstream);
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
    const closeBoth = () => {
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
