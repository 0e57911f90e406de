/**
 * The part of the timeline the window holds: a bounded slice of the chat, as pure functions
 * (app-state.svelte.ts keeps one TimelineWindow, Timeline.svelte scrolls it).
 *
 * - It starts with the newest lines (the snapshot, or a `timeline` event that starts over).
 * - Live lines are added at the end; past MAX_RENDERED_LINES the oldest are let go (scrolling
 *   up asks the history for them again).
 * - An older page from the history goes in at the top; past the bound the newest lines are let
 *   go and the window is `detached` from the live end: new lines are not added (the user reads
 *   older history) until "Jump to latest" starts it over with the newest lines.
 * - One message is one line: a line is matched by id, or by (sender, epoch, seq) when the
 *   history and the live timeline name it differently (an own message just written).
 */
import type { ChatLine } from '../../../src-shared/model.js';
import { MAX_RENDERED_LINES, TIMELINE_START_LINES } from '../../../src-shared/limits.js';

export interface TimelineWindow {
  readonly lines: readonly ChatLine[];
  /** Older stored messages may exist above lines[0] (true until the history says there are none). */
  readonly older: boolean;
  /** Newer lines than the last one held exist: the window shows older history, not the live end. */
  readonly detached: boolean;
  /** Counts the starts over: the view's scroll and divider state start over with it. */
  readonly generation: number;
}

/** The message a line shows, whatever the line is named: undefined for system lines. */
export function messageKey(line: ChatLine): string | undefined {
  if (line.kind === 'system' || line.epoch === undefined || line.seq === undefined) return undefined;
  return `${line.from}\u0000${line.epoch}\u0000${line.seq}`;
}

function indexOfLine(lines: readonly ChatLine[], line: ChatLine): number {
  const byId = lines.findIndex((l) => l.id === line.id);
  if (byId >= 0) return byId;
  const key = messageKey(line);
  return key === undefined ? -1 : lines.findIndex((l) => messageKey(l) === key);
}

/**
 * A window over `lines` (the newest of the chat, oldest first). The main process starts with the
 * newest TIMELINE_START_LINES stored messages: fewer than that means the history holds nothing
 * older, and the window says so at once instead of offering "Show earlier messages".
 */
export function startWindow(lines: readonly ChatLine[], previous?: TimelineWindow): TimelineWindow {
  const messages = lines.filter((l) => l.kind !== 'system').length;
  return {
    lines: lines.slice(-MAX_RENDERED_LINES),
    older: messages >= TIMELINE_START_LINES,
    detached: false,
    generation: (previous?.generation ?? 0) + 1,
  };
}

/**
 * A line from the main process: an update of one held (in place), or a new one at the end, unless
 * the window is detached. The result says whether it was new (for announcements).
 */
export function applyLine(w: TimelineWindow, line: ChatLine): { window: TimelineWindow; added: boolean } {
  const index = indexOfLine(w.lines, line);
  if (index >= 0) {
    const lines = [...w.lines];
    const held = lines[index] as ChatLine;
    // A stored line keeps its history id when the live one has none yet.
    lines[index] =
      held.kind !== 'system' &&
      line.kind !== 'system' &&
      line.historyId === undefined &&
      held.historyId !== undefined
        ? { ...line, historyId: held.historyId }
        : line;
    return { window: { ...w, lines }, added: false };
  }
  if (w.detached) return { window: w, added: false };
  const lines = [...w.lines, line];
  const over = lines.length - MAX_RENDERED_LINES;
  return {
    window: { ...w, lines: over > 0 ? lines.slice(over) : lines, older: w.older || over > 0 },
    added: true,
  };
}

/** The history id to ask older pages before: the oldest one held (undefined: from the newest). */
export function oldestHistoryId(w: TimelineWindow): number | undefined {
  let oldest: number | undefined;
  for (const l of w.lines) {
    if (l.kind !== 'system' && l.historyId !== undefined && (oldest === undefined || l.historyId < oldest))
      oldest = l.historyId;
  }
  return oldest;
}

/** An older page (oldest first) goes in at the top; `more`: the history holds older still. */
export function prependOlder(w: TimelineWindow, page: readonly ChatLine[], more: boolean): TimelineWindow {
  const fresh = page.filter((l) => indexOfLine(w.lines, l) < 0);
  const lines = [...fresh, ...w.lines];
  const over = lines.length - MAX_RENDERED_LINES;
  if (over <= 0) return { ...w, lines, older: more };
  return { ...w, lines: lines.slice(0, lines.length - over), older: more, detached: true };
}
