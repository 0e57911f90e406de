/**
 * The send pipeline: queued messages are sealed under the current key, signed ahead in parallel
 * and written strictly in queue order; control frames go through the same writer so that order
 * holds for them too. Whether sending is allowed at all is the state machine's answer (canSend).
 */
import {
  attachSignature,
  buildUnsigned,
  sealMessageAsync,
  SIGNATURE_LABEL,
} from '../core/protocol/envelope.js';
import type { MessageType } from '../core/protocol/message-types.js';
import type { BodyOf } from '../core/protocol/schemas.js';
import { encodeChatPlaintext } from './chat-codec.js';
import { enoughOnline, type EngineParts } from './engine-core.js';
import { MESSAGE_COUNT_SAVE_EVERY, SENT_SEQ_RESERVE } from './engine-keys.js';
import { canSend } from './engine-machine.js';
import type { LoggedFrame } from './log-follower.js';
import { OrderedWriter } from './ordered-writer.js';
import type { OutgoingMessage } from './outbox.js';

/** What the ordered writer carries besides the frame. */
export type WriteMeta =
  | { kind: 'chat'; message: OutgoingMessage; epoch: number; seq: number }
  | { kind: 'control'; type: MessageType; onWritten?: () => void }
  /** A logged frame of an earlier session the relay never acknowledged, written again as it was. */
  | { kind: 'resend'; logged: LoggedFrame };

export class SendPipeline {
  private readonly writer: OrderedWriter<WriteMeta>;
  /** Our own sequence numbers of the current epoch are reserved in the store up to this. */
  private reservedSeq = { epoch: 0, seq: 0 };

  constructor(private readonly p: EngineParts) {
    this.writer = new OrderedWriter<WriteMeta>(
      (frame, meta) => this.writeFrame(frame, meta),
      (err, meta) => this.onSignFailure(err, meta),
    );
  }

  /** Chat messages handed to the writer but not yet to the socket. */
  get signing(): number {
    return this.writer.count((m) => m.kind === 'chat');
  }

  private get allowed(): boolean {
    const { host, handshake, keyring } = this.p;
    return (
      canSend(host.machine) &&
      host.session?.link.isOpen === true &&
      !handshake.needsKey &&
      enoughOnline(handshake) &&
      keyring.currentEpoch !== undefined
    );
  }

  /** Signs queued messages ahead, in parallel, bounded by the pipeline depth and the socket's buffer. */
  pump(): void {
    if (!this.allowed) return;
    const { o, identity, keyring, outbox, selfRef } = this.p;
    const link = (this.p.host.session as NonNullable<EngineParts['host']['session']>).link;
    let inFlight = this.signing;
    while (inFlight < o.signPipelineDepth && link.writableLength < o.writeHighWaterBytes) {
      const message = outbox.shift();
      if (!message) return;
      if (!this.reserveSeq()) {
        outbox.unshiftAll([message]);
        return;
      }
      const sealed = keyring.seal(
        identity.name,
        encodeChatPlaintext({ text: message.text, sentAt: message.sentAt }),
      );
      const unsigned = buildUnsigned('ENCRYPTED_TEXT', selfRef, '', sealed);
      const frame = identity
        .signAsync(Buffer.concat([SIGNATURE_LABEL, unsigned]))
        .then((sig) => attachSignature(unsigned, sig));
      this.writer.enqueue(frame, { kind: 'chat', message, epoch: sealed.epoch, seq: sealed.seq });
      this.countMessage(sealed.epoch);
      inFlight++;
    }
  }

  control<T extends MessageType>(type: T, target: string, body: BodyOf<T>, onWritten?: () => void): void {
    if (!this.p.host.session?.link.isOpen) {
      onWritten?.();
      return;
    }
    const { identity, selfRef } = this.p;
    this.writer.enqueue(
      sealMessageAsync(type, selfRef, target, body, (d) => identity.signAsync(d)),
      { kind: 'control', type, onWritten },
    );
  }

  /** A frame that is already signed (the held roster, a resend), in order with the rest. */
  raw(frame: Buffer, meta: WriteMeta): void {
    this.writer.enqueue(Promise.resolve(frame), meta);
  }

  /** A signature still on its way, written in order once it is there. */
  signed(frame: Promise<Buffer>, type: MessageType): void {
    this.writer.enqueue(frame, { kind: 'control', type });
  }

  /** Takes unwritten entries back from the writer; chat messages return to the front of the outbox. */
  requeueUnwritten(predicate: (meta: WriteMeta) => boolean = () => true): void {
    const cancelled = this.writer.cancel(predicate);
    const messages: OutgoingMessage[] = [];
    for (const m of cancelled) {
      if (m.kind === 'chat') messages.push(m.message);
      else this.putBack(m);
    }
    this.p.outbox.unshiftAll(messages);
  }

  /** One message sent or received under the current epoch; rotation by count is checked here. */
  countMessage(epoch: number): void {
    const n = this.p.keyring.countMessage(epoch);
    if (n > 0 && n % MESSAGE_COUNT_SAVE_EVERY === 0) this.saveMessageCount();
    if (n >= this.p.o.rotationMaxMessages) this.p.handshake.maybeRotate();
  }

  saveMessageCount(): void {
    const k = this.p.keyring.currentInfo;
    if (!k) return;
    try {
      this.p.o.epochStore.saveMessages?.(k.epoch, k.messages);
    } catch (err) {
      this.p.host.emitError(
        'StateStoreFailed',
        `epoch ${k.epoch}'s message count not stored: ${(err as Error).message}`,
      );
    }
  }

  /**
   * Makes sure the next sequence number is reserved in the store before it is used (a restarted
   * member continues above the reservation). False (reported) if the store refused: not sent.
   */
  private reserveSeq(): boolean {
    const { keyring, o } = this.p;
    const k = keyring.currentInfo;
    if (!k || !o.epochStore.saveSentSeq) return true;
    const next = k.lastSentSeq + 1;
    if (this.reservedSeq.epoch === k.epoch && next <= this.reservedSeq.seq) return true;
    const upTo = next + SENT_SEQ_RESERVE;
    try {
      o.epochStore.saveSentSeq(k.epoch, upTo);
    } catch (err) {
      this.p.host.emitError(
        'StateStoreFailed',
        `message not sent: storing its sequence number failed (${(err as Error).message})`,
      );
      return false;
    }
    this.reservedSeq = { epoch: k.epoch, seq: upTo };
    return true;
  }

  private writeFrame(frame: Buffer, meta: WriteMeta): void {
    const { host } = this.p;
    const link = host.session?.link;
    if (!link?.isOpen) {
      // Cannot happen (a close cancels every entry), but never report unwritten messages as sent.
      this.putBack(meta);
      return;
    }
    link.write(frame);
    host.dispatch({ type: 'wrote', at: this.p.clock.monotonic() });
    this.noteLogged(frame, meta);
    if (meta.kind === 'chat') {
      host.emit({
        event: 'outgoing',
        localId: meta.message.localId,
        status: 'sent',
        text: meta.message.text,
        epoch: meta.epoch,
        seq: meta.seq,
      });
      this.pump();
    } else if (meta.kind === 'control') {
      meta.onWritten?.();
    }
  }

  /** The relay numbers the logged frames (chat, key distribution) it reads from us: so do we. */
  private noteLogged(frame: Buffer, meta: WriteMeta): void {
    const follower = this.p.follower;
    if (!follower) return;
    if (meta.kind === 'resend') {
      follower.logged(meta.logged);
    } else if (meta.kind === 'chat') {
      follower.logged({ kind: 'chat', epoch: meta.epoch, seq: meta.seq, frame });
      follower.ownWritten({
        from: this.p.identity.name,
        text: meta.message.text,
        epoch: meta.epoch,
        seq: meta.seq,
        sentAt: meta.message.sentAt,
      });
    } else if (meta.type === 'KEY_DISTRIBUTION') {
      follower.logged({ kind: 'key', frame });
    }
  }

  private onSignFailure(err: unknown, meta: WriteMeta): void {
    this.p.host.emitError(
      'SignFailed',
      `signing ${meta.kind === 'control' ? meta.type : 'a message'} failed: ${String(err)}`,
    );
    this.putBack(meta);
  }

  /** An entry that was not written: a message back to the outbox, a resend to the next session. */
  private putBack(meta: WriteMeta): void {
    if (meta.kind === 'chat') this.p.outbox.unshiftAll([meta.message]);
    else if (meta.kind === 'resend') this.p.follower?.carry(meta.logged);
    else meta.onWritten?.();
  }
}
