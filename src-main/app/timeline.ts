/**
 * The chat timeline the window shows: incoming and own messages and system lines, in memory only
 * (the newest 5,000). Each change is a `line` event.
 */
import type { ChatLine } from '../../src-shared/model.js';
import type { EventHub } from './event-hub.js';

const MAX_TIMELINE = 5_000;

export type SystemEvent = Extract<ChatLine, { kind: 'system' }>['event'];

export class Timeline {
  #lines: ChatLine[] = [];
  #lineSeq = 0;

  constructor(private readonly hub: EventHub) {}

  /** A copy of the lines, oldest first. */
  lines(): ChatLine[] {
    return [...this.#lines];
  }

  /** Whether any message (incoming or own) is shown: the stored history is put in only before. */
  hasMessages(): boolean {
    return this.#lines.some((l) => l.kind !== 'system');
  }

  find(id: string): ChatLine | undefined {
    return this.#lines.find((l) => l.id === id);
  }

  nextId(prefix: string): string {
    this.#lineSeq += 1;
    return `${prefix}-${this.#lineSeq}`;
  }

  push(line: ChatLine): void {
    this.#lines.push(line);
    if (this.#lines.length > MAX_TIMELINE) this.#lines.splice(0, this.#lines.length - MAX_TIMELINE);
    this.hub.emit({ type: 'line', line });
  }

  /** Replaces the line with the same id (an own message: queued → sent), or adds it. */
  upsert(line: ChatLine): void {
    const index = this.#lines.findIndex((l) => l.id === line.id);
    if (index < 0) return this.push(line);
    this.#lines[index] = line;
    this.hub.emit({ type: 'line', line });
  }

  addSystem(event: SystemEvent, text: string, extra: { name?: string; epoch?: number } = {}): void {
    this.push({ kind: 'system', id: this.nextId('s'), event, text, ...extra, at: Date.now() });
  }
}
