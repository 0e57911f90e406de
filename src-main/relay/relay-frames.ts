/**
 * Frames the relay originates (HELLO, PRESENCE, CERT_RESPONSE, ERROR), signed with the relay key.
 * They are returned as complete frames (length prefix included), ready to queue on a connection.
 */
import { randomBytes } from '../core/crypto/primitives.js';
import type { LocalIdentity } from '../core/pki/local-identity.js';
import {
  attachSignature,
  buildUnsigned,
  encodeFrame,
  SIGNATURE_LABEL,
  type BodyOf,
  type MessageType,
  type RelayErrorCode,
  type SenderRef,
} from '../core/protocol/index.js';

export const CHALLENGE_BYTES = 32;
const ERROR_CACHE_ENTRIES = 256;

export interface PresenceMember {
  name: string;
  fingerprint: string;
}

export class RelayFrames {
  private readonly byCertificate: SenderRef;
  private readonly byFingerprint: SenderRef;
  /** ERROR frames carry no nonce, so identical ones are signed once (bounded LRU). */
  private readonly errorCache = new Map<string, Buffer>();
  private refusalHello: Buffer | undefined;

  constructor(
    private readonly identity: LocalIdentity,
    private readonly maxFrameBytes: number,
  ) {
    this.byCertificate = { kind: 'certificate', der: identity.certificate.der };
    this.byFingerprint = { kind: 'fingerprint', fingerprint: identity.certificate.fingerprint };
  }

  private seal<T extends MessageType>(type: T, sender: SenderRef, body: BodyOf<T>): Buffer {
    const unsigned = buildUnsigned(type, sender, '', body);
    const signature = this.identity.sign(Buffer.concat([SIGNATURE_LABEL, unsigned]));
    return encodeFrame(attachSignature(unsigned, signature), Number.MAX_SAFE_INTEGER);
  }

  private async sealAsync<T extends MessageType>(
    type: T,
    sender: SenderRef,
    body: BodyOf<T>,
  ): Promise<Buffer> {
    const unsigned = buildUnsigned(type, sender, '', body);
    const signature = await this.identity.signAsync(Buffer.concat([SIGNATURE_LABEL, unsigned]));
    return encodeFrame(attachSignature(unsigned, signature), Number.MAX_SAFE_INTEGER);
  }

  /** A fresh challenge and the HELLO carrying it; signed on the thread pool. */
  async hello(): Promise<{ challenge: Buffer; frame: Buffer }> {
    const challenge = randomBytes(CHALLENGE_BYTES);
    const frame = await this.sealAsync('HELLO', this.byCertificate, {
      challenge,
      relay: this.identity.name,
      maxFrameBytes: this.maxFrameBytes,
    });
    return { challenge, frame };
  }

  /**
   * A HELLO for links that are refused at once (server full, rate limited, certificate refused): its
   * challenge is never accepted, so one signature serves them all and a connection flood costs
   * the relay no RSA work.
   */
  refusalHelloFrame(): Buffer {
    this.refusalHello ??= this.seal('HELLO', this.byCertificate, {
      challenge: randomBytes(CHALLENGE_BYTES),
      relay: this.identity.name,
      maxFrameBytes: this.maxFrameBytes,
    });
    return this.refusalHello;
  }

  presence(version: number, members: PresenceMember[]): Buffer {
    return this.seal('PRESENCE', this.byFingerprint, { version, members });
  }

  certResponse(certificates: { name: string; certificate: Buffer }[], unknown: string[]): Promise<Buffer> {
    return this.sealAsync('CERT_RESPONSE', this.byFingerprint, { certificates, unknown });
  }

  /** `retryAfterMs`: when the client may try again (RateLimited); whole seconds keep it cacheable. */
  error(code: RelayErrorCode, message: string, fatal: boolean, retryAfterMs?: number): Buffer {
    const text = message.length > 500 ? `${message.slice(0, 497)}...` : message;
    const key = `${code}\0${fatal ? 1 : 0}\0${retryAfterMs ?? ''}\0${text}`;
    const hit = this.errorCache.get(key);
    if (hit) {
      // Refresh its LRU position.
      this.errorCache.delete(key);
      this.errorCache.set(key, hit);
      return hit;
    }
    const frame = this.seal('ERROR', this.byFingerprint, {
      code,
      message: text,
      fatal,
      ...(retryAfterMs !== undefined ? { retryAfterMs } : {}),
    });
    this.errorCache.set(key, frame);
    if (this.errorCache.size > ERROR_CACHE_ENTRIES) {
      const oldest = this.errorCache.keys().next().value;
      if (oldest !== undefined) this.errorCache.delete(oldest);
    }
    return frame;
  }
}
