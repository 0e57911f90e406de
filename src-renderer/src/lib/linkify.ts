/**
 * Splits a message's text into plain text and http(s) links, for the timeline to render as Svelte
 * text nodes and anchors (never as HTML). Pure: no DOM, no state.
 *
 * - Only `http://` and `https://` URLs (any letter case) become links, and only where they do not
 *   continue a word (`xhttp://…` stays text).
 * - A link ends at white space or at one of `<>"'` and the backtick. Trailing punctuation
 *   (`. , ; : ! ?` and closing quotes or brackets) is not part of it; a `)` is kept when the link
 *   opened one (`https://en.wikipedia.org/wiki/Rust_(language)`).
 * - A candidate that is not an openable URL (isOpenableUrl: parses, has a host, ≤ 2048
 *   characters) stays text, so every link the window shows is one the main process accepts.
 * - Joining the segments' text gives back the input exactly.
 */
import { isOpenableUrl } from '../../../src-shared/limits.js';

export type Segment = { kind: 'text'; text: string } | { kind: 'link'; text: string; url: string };

const CANDIDATE = /(?<![\p{L}\p{N}_])https?:\/\/[^\s<>"'`]+/giu;
const TRAILING = new Set(['.', ',', ';', ':', '!', '?', ')', ']', '}', '*', '…', '»', '”', '’']);

function count(text: string, char: string): number {
  let n = 0;
  for (const c of text) if (c === char) n++;
  return n;
}

/** The candidate without trailing punctuation (a `)` stays when it closes a `(` in the link). */
export function trimTrailing(candidate: string): string {
  let end = candidate.length;
  while (end > 0) {
    const last = candidate[end - 1] as string;
    if (!TRAILING.has(last)) break;
    if (last === ')') {
      const head = candidate.slice(0, end);
      if (count(head, '(') >= count(head, ')')) break;
    }
    end--;
  }
  return candidate.slice(0, end);
}

export function linkify(text: string): Segment[] {
  const segments: Segment[] = [];
  const pushText = (t: string): void => {
    if (t.length === 0) return;
    const prev = segments[segments.length - 1];
    if (prev?.kind === 'text') prev.text += t;
    else segments.push({ kind: 'text', text: t });
  };
  let at = 0;
  for (const match of text.matchAll(CANDIDATE)) {
    const start = match.index;
    const url = trimTrailing(match[0]);
    if (!isOpenableUrl(url)) continue;
    pushText(text.slice(at, start));
    segments.push({ kind: 'link', text: url, url });
    at = start + url.length;
  }
  pushText(text.slice(at));
  return segments;
}
