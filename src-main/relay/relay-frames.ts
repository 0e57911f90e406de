/**
 * Frames the relay originates (HELLO, PRESENCE, CERT_RESPONSE, ERROR, GAP, HEARTBEAT), signed with the
 * relay key. Every one but HELLO carries the session (the HELLO challenge of the connection it is
 * for), so a member refuses any of them recorded from another session. They are returned as
 * complete frames (length prefix included), ready to queue on a connection.
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
  /** Identical ERRORs for one session (a flood of one bad frame) are signed once (bounded LRU). */
  private readonly errorCache = new Map<string, Buffer>();
  private refusalHello: { challenge: Buffer; frame: Buffer } | undefined;

  constructor(
    private readonly identity: LocalIdentity,
    private readonly maxFrameBytes: number,
    /** The log's stream id, announced in HELLO (protocol v2); undefined on a relay without a log. */
    private readonly streamId?: string,
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
    const frame = await this.sealAsync('HELLO', this.byCertificate, this.helloBody(challenge));
    return { challenge, frame };
  }

  /**
   * A HELLO for links that are refused at once (server full, rate limited, certificate refused): its
   * challenge is never accepted, so one signature serves them all and, with the ERRORs bound to it
   * cached, a connection flood costs the relay almost no RSA work.
   */
  refusalHelloFrame(): Buffer {
    return this.refusal().frame;
  }

  /** The session of refusal frames (those that follow refusalHelloFrame). */
  get refusalSession(): Buffer {
    return this.refusal().challenge;
  }

  private refusal(): { challenge: Buffer; frame: Buffer } {
    if (!this.refusalHello) {
      const challenge = randomBytes(CHALLENGE_BYTES);
      const frame = this.seal('HELLO', this.byCertificate, this.helloBody(challenge));
      this.refusalHello = { challenge, frame };
    }
    return this.refusalHello;
  }

  private helloBody(challenge: Buffer): BodyOf<'HELLO'> {
    return {
      challenge,
      relay: this.identity.name,
      maxFrameBytes: this.maxFrameBytes,
      ...(this.streamId !== undefined ? { streamId: this.streamId } : {}),
    };
  }

  /**
   * GAP (protocol v2): the member's SYNC cannot be served as asked; what the log holds instead.
   * Session-bound like ERROR, so a GAP recorded from one session means nothing in another.
   */
  gap(session: Buffer, body: Omit<BodyOf<'GAP'>, 'session'>): Promise<Buffer> {
    return this.sealAsync('GAP', this.byFingerprint, { session, ...body });
  }

  /** One signature for every receiver: `sessions` lists each one's session tag. */
  presence(sessions: Buffer[], version: number, members: PresenceMember[]): Buffer {
    return this.seal('PRESENCE', this.byFingerprint, { sessions, version, members });
  }

  certResponse(
    session: Buffer,
    certificates: { name: string; certificate: Buffer }[],
    unknown: string[],
  ): Promise<Buffer> {
    return this.sealAsync('CERT_RESPONSE', this.byFingerprint, { session, certificates, unknown });
  }

  /**
   * The held prekeys, at login (before PRESENCE, signed at once so it cannot come after it): a
   * member can seal to anyone's prekey from the first round on. Each prekey carries its member's
   * own signature; the relay's binds the list to the session.
   */
  prekeys(session: Buffer, prekeys: BodyOf<'PREKEYS'>['prekeys']): Buffer {
    return this.seal('PREKEYS', this.byFingerprint, { session, prekeys });
  }

  /** Signed once per session, at login: the relay's heartbeats cost no RSA work after that. */
  heartbeat(session: Buffer): Buffer {
    return this.seal('HEARTBEAT', this.byFingerprint, { session });
  }

  /** `retryAfterMs`: when the client may try again (RateLimited); whole seconds keep it cacheable. */
  error(
    session: Buffer,
    code: RelayErrorCode,
    message: string,
    fatal: boolean,
    retryAfterMs?: number,
  ): Buffer {
    const text = message.length > 500 ? `${message.slice(0, 497)}...` : message;
    const key = `${session.toString('hex')}\0${code}\0${fatal ? 1 : 0}\0${retryAfterMs ?? ''}\0${text}`;
    const hit = this.errorCache.get(key);
    if (hit) {
      // Refresh its LRU position.
      this.errorCache.delete(key);
      this.errorCache.set(key, hit);
      return hit;
    }
    const frame = this.seal('ERROR', this.byFingerprint, {
      session,
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
