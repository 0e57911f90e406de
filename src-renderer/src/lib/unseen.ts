/**
 * The timeline's "New messages" divider and "Jump to latest" count, as pure functions over line
 * ids (Timeline.svelte feeds them the lines and whether the view is at the bottom).
 *
 * The rule, applied line by line to each batch of lines that arrives:
 * - A message from someone else that arrives while the view is scrolled up, with no divider or
 *   with a divider the user has already seen, puts the divider right above it.
 * - Further messages from others that arrive before the user has seen the divider go below it
 *   and add to its count.
 * - Reaching the bottom (scrolling, End or "Jump to latest") marks the divider as seen: the
 *   jump button goes, the divider stays where it is.
 * - A seen divider goes when the user sends a message, or when a newer message from someone
 *   else arrives while the view is at the bottom.
 * System lines (joined, rekey, connection...) never place, move or clear the divider and are
 * not counted. Lines that were already there when the timeline opened are never "new", nor are
 * older pages put in above (the history as the user scrolls up) or lines let go at either end.
 */

/** What the rule needs to know about a line: its id and whose it is. */
export interface UnseenLine {
  readonly id: string;
  readonly sort: 'other' | 'own' | 'system';
}

export interface UnseenState {
  /** The newest line already taken into account (undefined: none yet); the lines after it are new. */
  readonly known: string | undefined;
  /** The line the divider sits above, or undefined for no divider. */
  readonly dividerId: string | undefined;
  /** Whether the user has been at the bottom since the divider appeared (true when there is none). */
  readonly seen: boolean;
}

/** The state for a timeline that opens with `lines`: all of them old, no divider. */
export function startUnseen(lines: readonly UnseenLine[]): UnseenState {
  return { known: lines.at(-1)?.id, dividerId: undefined, seen: true };
}

/**
 * The state after `lines` (the whole timeline, oldest first) with the view at the bottom or not.
 * The lines after `prev.known` are the new batch; a timeline without that line (a reset, or the
 * window let it go) starts over.
 */
export function stepUnseen(prev: UnseenState, lines: readonly UnseenLine[], atBottom: boolean): UnseenState {
  const from = prev.known === undefined ? 0 : lines.findIndex((l) => l.id === prev.known) + 1;
  if (from === 0 && prev.known !== undefined) return startUnseen(lines);
  let dividerId = prev.dividerId;
  let seen = prev.seen || atBottom;
  for (let i = from; i < lines.length; i++) {
    const line = lines[i] as UnseenLine;
    if (line.sort === 'own') {
      if (seen) dividerId = undefined;
    } else if (line.sort === 'other' && seen) {
      dividerId = atBottom ? undefined : line.id;
      seen = atBottom;
    }
  }
  if (dividerId !== undefined && !lines.some((l) => l.id === dividerId)) dividerId = undefined;
  if (dividerId === undefined) seen = true;
  return { known: lines.at(-1)?.id, dividerId, seen };
}

export interface UnseenView {
  /** Index in `lines` of the line the divider sits above, or -1 for no divider. */
  readonly index: number;
  /** Messages from others from the divider on (what the divider says). */
  readonly count: number;
  /** What the jump button shows: the count while the divider is unseen, else 0 (no button). */
  readonly unseen: number;
}

export function unseenView(state: UnseenState, lines: readonly UnseenLine[]): UnseenView {
  const index = state.dividerId === undefined ? -1 : lines.findIndex((l) => l.id === state.dividerId);
  if (index < 0) return { index: -1, count: 0, unseen: 0 };
  let count = 0;
  for (let i = index; i < lines.length; i++) if (lines[i]?.sort === 'other') count++;
  return { index, count, unseen: state.seen ? 0 : count };
}

/** "1 new message", "3 new messages". */
export function newMessagesText(count: number): string {
  return `${count} new ${count === 1 ? 'message' : 'messages'}`;
}
