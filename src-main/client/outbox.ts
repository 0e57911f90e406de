/**
 * Messages typed but not yet written to the socket, in the order they were typed. A message leaves
 * the outbox only when its frame has been handed to the socket; anything taken out to be signed is
 * put back at the front (in order) if the key or the connection changes before it is written.
 */
import { ClientError } from './errors.js';

export interface OutgoingMessage {
  localId: string;
  text: string;
  /** When send() was called (ms since the Unix epoch); travels as the message's sentAt. */
  sentAt: number;
}

export class Outbox {
  private items: OutgoingMessage[] = [];
  private head = 0;

  constructor(readonly capacity = 100_000) {}

  get size(): number {
    return this.items.length - this.head;
  }

  push(message: OutgoingMessage): void {
    if (this.size >= this.capacity) {
      throw new ClientError('OutboxFull', `${this.size} messages are already waiting to be sent`);
    }
    this.items.push(message);
  }

  /** The oldest message, removed from the queue. */
  shift(): OutgoingMessage | undefined {
    if (this.head >= this.items.length) return undefined;
    const item = this.items[this.head] as OutgoingMessage;
    this.head++;
    // Compact now and then so a long session does not keep every sent message alive.
    if (this.head > 1024 && this.head * 2 > this.items.length) {
      this.items = this.items.slice(this.head);
      this.head = 0;
    }
    return item;
  }

  /** Puts messages back in front of everything queued, keeping their relative order. */
  unshiftAll(messages: readonly OutgoingMessage[]): void {
    if (messages.length === 0) return;
    this.items = [...messages, ...this.items.slice(this.head)];
    this.head = 0;
  }

  peekAll(): readonly OutgoingMessage[] {
    return this.items.slice(this.head);
  }
}
