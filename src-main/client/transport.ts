/**
 * One TCP connection to the relay, speaking length-prefixed frames. It knows nothing of the
 * protocol above framing; a framing error is fatal for the stream (it cannot be resynchronised).
 */
import { connect, type Socket } from 'node:net';
import { DEFAULT_MAX_FRAME_BYTES, encodeFrame, FrameDecoder } from '../core/protocol/framing.js';

export interface TransportHandlers {
  onConnect(): void;
  onFrame(frame: Buffer): void;
  /** Exactly once, whatever ended the connection. */
  onClose(reason: string): void;
  onDrain(): void;
}

export class FramedConnection {
  private readonly socket: Socket;
  private readonly decoder: FrameDecoder;
  private closed = false;
  /** Frames we send are bounded by what the relay announced in HELLO. */
  peerMaxFrameBytes = DEFAULT_MAX_FRAME_BYTES;

  constructor(
    host: string,
    port: number,
    private readonly handlers: TransportHandlers,
    options: { maxFrameBytes?: number; connectTimeoutMs?: number } = {},
  ) {
    this.decoder = new FrameDecoder(options.maxFrameBytes ?? DEFAULT_MAX_FRAME_BYTES);
    this.socket = connect({ host, port });
    // Chat frames are small and latency matters more than packet count.
    this.socket.setNoDelay(true);
    const connectTimer = setTimeout(
      () => this.destroy(`no connection to ${host}:${port} within ${options.connectTimeoutMs ?? 10_000} ms`),
      options.connectTimeoutMs ?? 10_000,
    );
    this.socket.once('connect', () => {
      clearTimeout(connectTimer);
      if (!this.closed) handlers.onConnect();
    });
    this.socket.on('data', (chunk: Buffer) => {
      if (this.closed) return;
      let frames: Buffer[];
      try {
        frames = this.decoder.push(chunk);
      } catch (err) {
        this.destroy(`relay stream broken: ${(err as Error).message}`);
        return;
      }
      for (const f of frames) {
        if (this.closed) return;
        handlers.onFrame(f);
      }
    });
    this.socket.on('drain', () => {
      if (!this.closed) handlers.onDrain();
    });
    this.socket.on('error', (err: NodeJS.ErrnoException) => {
      clearTimeout(connectTimer);
      this.finish(err.code ? `${err.code}: ${err.message}` : err.message);
    });
    this.socket.on('close', () => {
      clearTimeout(connectTimer);
      this.finish('connection closed by the relay');
    });
  }

  get isOpen(): boolean {
    return !this.closed;
  }

  /** Bytes handed to the socket but not yet taken by the kernel. */
  get writableLength(): number {
    return this.socket.writableLength;
  }

  /** Writes one envelope as a frame. Returns false once the socket's buffer is above its mark. */
  write(envelope: Buffer): boolean {
    if (this.closed) return false;
    return this.socket.write(encodeFrame(envelope, this.peerMaxFrameBytes));
  }

  /** Flushes what was written, then closes; resolves once closed (or after `timeoutMs`). */
  end(timeoutMs = 2000): Promise<void> {
    if (this.closed) return Promise.resolve();
    return new Promise((resolve) => {
      const timer = setTimeout(() => {
        this.destroy('closing');
        resolve();
      }, timeoutMs);
      timer.unref();
      this.socket.once('close', () => {
        clearTimeout(timer);
        resolve();
      });
      this.socket.end();
    });
  }

  destroy(reason: string): void {
    if (this.closed) return;
    this.socket.destroy();
    this.finish(reason);
  }

  private finish(reason: string): void {
    if (this.closed) return;
    this.closed = true;
    this.handlers.onClose(reason);
  }
}
