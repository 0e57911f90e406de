/** Unread counts (app/unread.ts) and how the shell shows them (electron/electron-ports.ts). */
import type { BrowserWindow } from 'electron';
import { describe, expect, it } from 'vitest';
import { UnreadCounter, windowTitle } from '../../src-main/app/unread.js';
import { attentionPort } from '../../src-main/electron/electron-ports.js';

describe('unread counts', () => {
  it('counts only while the window is not in front and resets on focus', () => {
    const shown: number[] = [];
    const unread = new UnreadCounter({ setUnread: (n) => shown.push(n) });
    unread.arrived(); // in front: read as it arrives
    unread.focus(false);
    unread.arrived();
    unread.arrived();
    expect(unread.count).toBe(2);
    unread.focus(false); // a second blur changes nothing
    unread.focus(true);
    unread.focus(true); // nothing to reset: not reported again
    expect(shown).toEqual([1, 2, 0]);
  });

  it('a port that throws does not stop the counting', () => {
    const unread = new UnreadCounter({
      setUnread: () => {
        throw new Error('no badge here');
      },
    });
    unread.focus(false);
    unread.arrived();
    expect(unread.count).toBe(1);
  });

  it('puts the count in front of the title, capped at 999+', () => {
    expect(windowTitle(0)).toBe('SecureChat-X');
    expect(windowTitle(3)).toBe('(3) SecureChat-X');
    expect(windowTitle(1000)).toBe('(999+) SecureChat-X');
  });

  it('the Electron port sets the window title and the badge', () => {
    const titles: string[] = [];
    const badges: number[] = [];
    const window = { setTitle: (t: string) => titles.push(t) } as unknown as BrowserWindow;
    const port = attentionPort({ setBadgeCount: (n?: number) => (badges.push(n ?? -1), true) }, () => window);
    port.setUnread(4);
    port.setUnread(0);
    expect(titles).toEqual(['(4) SecureChat-X', 'SecureChat-X']);
    expect(badges).toEqual([4, 0]);
    // No window (closed to the tray): the badge still shows.
    attentionPort({ setBadgeCount: (n?: number) => (badges.push(n ?? -1), true) }, () => undefined).setUnread(
      2,
    );
    expect(badges).toEqual([4, 0, 2]);
  });
});
