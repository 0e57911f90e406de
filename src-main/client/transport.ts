/**
 * One TLS connection to the relay (core/link/tls.ts), speaking length-prefixed frames. It knows
 * nothing of the protocol above framing; a framing error is fatal for the stream (it cannot be
 * resynchronised).
 */
import type { TLSSocket } from 'node:tls';
import { connectLink } from '../core/link/tls.js';
import { PkiError } from '../core/pki/errors.js';
import type { LocalIdentity } from '../core/pki/local-identity.js';
import { DEFAULT_MAX_FRAME_BYTES, encodeFrame, FrameDecoder } from '../core/protocol/framing.js';

/**
 * Why a link ended, where the socket's error code says (never read from message text): nothing
 * answered at the address, its host name is unknown, or the connection was cut.
 */
export type LinkCloseCause = 'nothing-listening' | 'no-answer' | 'host-unknown' | 'relay-reset';

const CLOSE_CAUSES: Record<string, LinkCloseCause> = {
  ECONNREFUSED: 'nothing-listening',
  ETIMEDOUT: 'no-answer',
  EHOSTUNREACH: 'no-answer',
  ENETUNREACH: 'no-answer',
  ENOTFOUND: 'host-unknown',
  EAI_AGAIN: 'host-unknown',
  ECONNRESET: 'relay-reset',
  EPIPE: 'relay-reset',
};

export interface TransportHandlers {
  onConnect(): void;
  onFrame(frame: Buffer): void;
  /**
   * Exactly once, whatever ended the connection. `relayRefused` when the relay's certificate failed
   * the group's checks: another try would meet the same certificate. `cause` where the socket's
   * error code tells why.
   */
  onClose(reason: string, relayRefused: boolean, cause?: LinkCloseCause): void;
  onDrain(): void;
}

export class FramedConnection {
  private readonly socket: TLSSocket;
  private readonly decoder: FrameDecoder;
  private closed = false;
  /** Frames we send are bounded by what the relay announced in HELLO. */
  peerMaxFrameBytes = DEFAULT_MAX_FRAME_BYTES;

  constructor(
    host: string,
    port: number,
    identity: LocalIdentity,
    private readonly handlers: TransportHandlers,
    options: { maxFrameBytes?: number; connectTimeoutMs?: number } = {},
  ) {
    this.decoder = new FrameDecoder(options.maxFrameBytes ?? DEFAULT_MAX_FRAME_BYTES);
    this.socket = connectLink({ host, port, context: identity.linkContext, validator: identity.validator });
    // Chat frames are small and latency matters more than packet count.
    this.socket.setNoDelay(true);
    const connectTimer = setTimeout(
      () =>
        this.destroy(
          `no connection to ${host}:${port} within ${options.connectTimeoutMs ?? 10_000} ms`,
          'no-answer',
        ),
      options.connectTimeoutMs ?? 10_000,
    );
    // Nothing is read before the relay's certificate passed the group's checks.
    this.socket.once('secureConnect', () => {
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
      this.finish(describeLinkError(err), isCertificateFailure(err), CLOSE_CAUSES[err.code ?? '']);
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

  destroy(reason: string, cause?: LinkCloseCause): void {
    if (this.closed) return;
    this.socket.destroy();
    this.finish(reason, false, cause);
  }

  private finish(reason: string, relayRefused = false, cause?: LinkCloseCause): void {
    if (this.closed) return;
    this.closed = true;
    this.handlers.onClose(reason, relayRefused, cause);
  }
}

/** OpenSSL's verdicts on a peer certificate (chain, validity), and the group validator's. */
const CERTIFICATE_ERRORS = new Set([
  'UNABLE_TO_VERIFY_LEAF_SIGNATURE',
  'UNABLE_TO_GET_ISSUER_CERT',
  'UNABLE_TO_GET_ISSUER_CERT_LOCALLY',
  'SELF_SIGNED_CERT_IN_CHAIN',
  'DEPTH_ZERO_SELF_SIGNED_CERT',
  'CERT_HAS_EXPIRED',
  'CERT_NOT_YET_VALID',
  'CERT_SIGNATURE_FAILURE',
  'INVALID_PURPOSE',
  'CERT_REJECTED',
  'CERT_UNTRUSTED',
]);

function isCertificateFailure(err: NodeJS.ErrnoException): boolean {
  return err instanceof PkiError || CERTIFICATE_ERRORS.has(err.code ?? '');
}

/** Link errors in words a person can act on; the OpenSSL code stays for the curious. */
function describeLinkError(err: NodeJS.ErrnoException): string {
  const code = err.code ?? '';
  if (code === 'ECONNREFUSED') return `ECONNREFUSED: nothing is listening at ${addressOf(err)}`;
  if (isCertificateFailure(err)) return `relay certificate refused: ${err.message} (${code})`;
  if (code.startsWith('ERR_SSL_') || code.startsWith('ERR_TLS_') || /alert|certificate/i.test(err.message)) {
    return `TLS link refused (${code || 'TLS'}): ${err.message}`;
  }
  return code ? `${code}: ${err.message}` : err.message;
}

function addressOf(err: NodeJS.ErrnoException & { address?: string; port?: number }): string {
  return err.address !== undefined ? `${err.address}:${err.port ?? '?'}` : 'that address';
}
