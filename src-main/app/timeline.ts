/**
 * The chat timeline the window shows: incoming and own messages and system lines, in memory only.
 * It holds the newest MAX_TIMELINE lines of this run; older messages are read from the identity's
 * history (history-reader.ts) as the window scrolls up. Each change is a `line` event; a new
 * start (another identity, the stored history put in) is a `timeline` event with the newest lines.
 */
import type { ChatLine } from '../../src-shared/model.js';
import { TIMELINE_START_LINES } from '../../src-shared/limits.js';
import type { EventHub } from './event-hub.js';

export const MAX_TIMELINE = 1_000;

export type SystemEvent = Extract<ChatLine, { kind: 'system' }>['event'];

export class Timeline {
  #lines: ChatLine[] = [];
  #lineSeq = 0;
  /** Whose lines these are (`<group id>/<name>`); another identity starts a new timeline. */
  #owner: string | undefined;

  constructor(private readonly hub: EventHub) {}

  get owner(): string | undefined {
    return this.#owner;
  }

  /** The newest lines, oldest first: what a window that opens now starts with. */
  recent(limit = TIMELINE_START_LINES): ChatLine[] {
    return this.#lines.slice(-limit);
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

  /** Starts over for `owner` with `lines` (oldest first), and tells the window. */
  reset(owner: string, lines: readonly ChatLine[]): void {
    this.#owner = owner;
    this.#lines = lines.slice(-MAX_TIMELINE);
    this.hub.emit({ type: 'timeline', lines: this.recent() });
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
