/**
 * Limits the renderer and the main process must agree on, with no runtime imports (the renderer
 * and the main-side contract both import this module).
 *
 * Shared code: no Node built-ins, no DOM, no electron.
 */

/**
 * The most text one chat message holds, counted as the chat engine counts it: UTF-16 code units
 * (JavaScript's `text.length`), not UTF-8 bytes. The protocol's `LIMITS.textChars`
 * (src-main/core/protocol/schemas.ts) and the engine's `MAX_TEXT_CHARS` are the same number; a
 * unit test (renderer-linkify.test.ts) keeps them equal.
 */
export const MAX_MESSAGE_CHARS = 16 * 1024;

/**
 * The most relay addresses one connect takes: the first and the group's other relay nodes, tried
 * in order when the link is lost (a cluster's nodes; the CLI's `--relay h1:p1,h2:p2`).
 */
export const MAX_RELAY_ADDRESSES = 8;

/** How many characters `text` is over the message limit (0 when it fits). */
export function charactersOverLimit(text: string): number {
  return Math.max(0, text.length - MAX_MESSAGE_CHARS);
}

/** The reason shown (and returned by the main process) for a message over the limit. */
export function tooLongReason(over: number): string {
  return `This message is ${over} character${over === 1 ? '' : 's'} too long (limit ${MAX_MESSAGE_CHARS}).`;
}

/** The longest URL the app hands to the system browser. */
export const MAX_EXTERNAL_URL_CHARS = 2048;

/**
 * Whether `url` may be opened in the system browser: an absolute http: or https: URL with a host,
 * at most MAX_EXTERNAL_URL_CHARS long. The contract's schema and the main process's link opener
 * (src-main/app/external-links.ts) both use it.
 */
export function isOpenableUrl(url: string): boolean {
  if (url.length === 0 || url.length > MAX_EXTERNAL_URL_CHARS) return false;
  let parsed: URL;
  try {
    parsed = new URL(url);
  } catch {
    return false;
  }
  return (parsed.protocol === 'http:' || parsed.protocol === 'https:') && parsed.hostname.length > 0;
}

/**
 * The timeline's bounds. The window starts with the newest `TIMELINE_START_LINES` lines (the
 * snapshot), asks the local history for `HISTORY_PAGE_LINES` older ones at a time as the user
 * scrolls up, and never holds more than `MAX_RENDERED_LINES`: past it, the lines furthest from
 * what the user is reading are let go (the history serves them again).
 */
export const TIMELINE_START_LINES = 200;
export const HISTORY_PAGE_LINES = 100;
export const MAX_RENDERED_LINES = 600;
/** A history search returns at most this many messages (the newest matches), and its text at most this long. */
export const SEARCH_RESULTS_MAX = 100;
export const MAX_SEARCH_CHARS = 200;

/** A removal's reason, as the roster keeps it (LIMITS.reasonChars of the protocol; a test keeps them equal). */
export const MAX_REMOVAL_REASON_CHARS = 200;

/** The shortest password for a bundle the organiser issues (the CLI's MIN_NEW_PASSWORD_CHARS). */
export const MIN_BUNDLE_PASSWORD_CHARS = 8;
