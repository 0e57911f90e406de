/**
 * A message's link, opened in the system browser. The window asked the user first and the
 * contract's schema already checked the URL; it is checked again here (defence in depth: this is
 * the last stop before the OS hands the URL to another program), so only an absolute http: or
 * https: URL of at most 2048 characters ever reaches the port. The app window itself never
 * navigates (security.ts denies navigation and window.open).
 */
import { isOpenableUrl, MAX_EXTERNAL_URL_CHARS } from '../../src-shared/limits.js';
import { AppFailure } from './errors.js';
import type { ExternalLinkPort } from './ports.js';

export async function openExternalLink(port: ExternalLinkPort, url: string): Promise<null> {
  if (!isOpenableUrl(url)) {
    throw new AppFailure(
      'LinkRefused',
      `Only http and https links of at most ${MAX_EXTERNAL_URL_CHARS} characters are opened.`,
    );
  }
  try {
    // The parsed form, not the string as typed: what the browser gets is what was checked
    // (spaces, tabs and line breaks encoded or dropped, the host lowercased).
    await port.openExternal(new URL(url).href);
  } catch (err) {
    throw new AppFailure(
      'Internal',
      `The link could not be opened in your browser: ${err instanceof Error ? err.message : String(err)}`,
    );
  }
  return null;
}
