/**
 * The two holding queues: frames from a member whose certificate is still on its way (raw,
 * verified once it arrives), and verified chat messages for the epoch being established right
 * now. Both are bounded; what is dropped or expires is reported, never lost silently. The sweep
 * timer belongs to the state machine (`held-for-key` events arm and cancel it).
 */
import { ProtocolError } from '../core/protocol/errors.js';
import type { BodyOf } from '../core/protocol/schemas.js';
import type { EngineParts, Session } from './engine-core.js';
import { ClientError } from './errors.js';

interface HeldChat {
  sender: string;
  body: BodyOf<'ENCRYPTED_TEXT'>;
  heldAt: number;
  /** Its log offset, when it came in DELIVERED: the saved position stays before it while held. */
  offset: number | undefined;
}

export interface HeldHandlers {
  envelope(session: Session, frame: Buffer): void;
  chat(sender: string, body: BodyOf<'ENCRYPTED_TEXT'>): void;
}

export class HeldFrames {
  private forCertificate: { fingerprint: string; frame: Buffer; offset: number | undefined }[] = [];
  private forKey: HeldChat[] = [];

  constructor(
    private readonly p: EngineParts,
    private readonly handle: HeldHandlers,
  ) {}

  holdForCertificate(fingerprint: string, frame: Buffer): void {
    const { o, follower, host } = this.p;
    this.forCertificate.push({ fingerprint, frame: Buffer.from(frame), offset: follower?.hold() });
    if (this.forCertificate.length > o.maxHeldFrames) {
      follower?.release(this.forCertificate.shift()?.offset);
      host.emitError(
        'HeldFramesDropped',
        'too many frames waiting for a certificate; the oldest was dropped',
      );
    }
  }

  releaseForCertificate(session: Session): void {
    const held = this.forCertificate;
    if (held.length === 0) return;
    this.forCertificate = [];
    const { directory, follower } = this.p;
    for (const h of held) {
      if (directory.isPending(h.fingerprint)) this.forCertificate.push(h);
      else if (follower) follower.release(h.offset, () => this.handle.envelope(session, h.frame));
      else this.handle.envelope(session, h.frame);
    }
  }

  holdForKey(sender: string, body: BodyOf<'ENCRYPTED_TEXT'>): void {
    const { o, follower, host, clock } = this.p;
    this.forKey.push({ sender, body, heldAt: clock.monotonic(), offset: follower?.hold() });
    if (this.forKey.length > o.maxHeldFrames) {
      const dropped = this.forKey.shift() as HeldChat;
      follower?.release(dropped.offset);
      host.emitError(
        'UnknownEpoch',
        `message from ${dropped.sender} for epoch ${dropped.body.epoch} dropped: too many waiting`,
      );
    }
    host.dispatch({ type: 'held-for-key', count: this.forKey.length });
  }

  /** Messages whose key did not come within the key-establishment timeout: UnknownEpoch after all. */
  sweep(): void {
    const { o, follower, host, clock, handshake } = this.p;
    const limit = clock.monotonic() - o.keyEstablishmentTimeoutMs;
    const expired = this.forKey.filter((h) => h.heldAt <= limit);
    this.forKey = this.forKey.filter((h) => h.heldAt > limit);
    for (const h of expired) {
      follower?.release(h.offset);
      host.emitError(
        'UnknownEpoch',
        `message from ${h.sender} refused: epoch ${h.body.epoch} was never established with this member`,
      );
      handshake.onUnknownEpoch(h.body.epoch);
    }
    host.dispatch({ type: 'held-for-key', count: this.forKey.length });
  }

  /** After a key arrived (or the session ended): process held messages again, in arrival order. */
  releaseForKey(sessionEnded: boolean): void {
    const held = this.forKey;
    this.forKey = [];
    const { follower, host } = this.p;
    host.dispatch({ type: 'held-for-key', count: 0 });
    for (const h of held) {
      if (sessionEnded) {
        follower?.release(h.offset);
        host.emitError(
          'UnknownEpoch',
          `message from ${h.sender} for epoch ${h.body.epoch} lost with the connection`,
        );
        continue;
      }
      try {
        if (follower) follower.release(h.offset, () => this.handle.chat(h.sender, h.body));
        else this.handle.chat(h.sender, h.body);
      } catch (err) {
        // The code of what failed (a plaintext schema, a ClientError …), not a guess.
        const code = err instanceof ProtocolError || err instanceof ClientError ? err.code : 'BadFrame';
        host.emitError(code, `held message from ${h.sender} refused: ${(err as Error).message}`);
      }
    }
  }

  /** The connection is gone: frames held for its certificates go with it. */
  dropSession(): void {
    this.forCertificate = [];
    this.releaseForKey(true);
  }
}
