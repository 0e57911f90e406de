/** Unread counts (app/unread.ts) and how the shell shows them (electron/electron-ports.ts). */
import type { BrowserWindow } from 'electron';
import { describe, expect, it } from 'vitest';
import { UnreadCounts, windowTitle } from '../../src-main/app/unread.js';
import { attentionPort, notificationPort } from '../../src-main/electron/electron-ports.js';

describe('unread counts', () => {
  it('counts per group unless the window is in front and shows that group; the total goes to the port', () => {
    const shown: number[] = [];
    const unread = new UnreadCounts({ setUnread: (n) => shown.push(n) });
    expect(unread.arrived('team', true)).toBe(false); // shown and in front: read as it arrives
    expect(unread.arrived('team', false)).toBe(true);
    unread.arrived('team', false);
    unread.arrived('family', false);
    expect([unread.of('team'), unread.of('family'), unread.total]).toEqual([2, 1, 3]);
    expect(unread.read('team')).toBe(true);
    expect(unread.read('team')).toBe(false); // nothing to reset: not reported again
    expect(unread.total).toBe(1);
    expect(shown).toEqual([1, 2, 3, 1]);
  });

  it('a port that throws does not stop the counting', () => {
    const unread = new UnreadCounts({
      setUnread: () => {
        throw new Error('no badge here');
      },
    });
    unread.arrived('team', false);
    expect(unread.of('team')).toBe(1);
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

  it('one notification per group; a click brings the window forward and shows that group', () => {
    const made: {
      options: { title?: string; body?: string };
      handlers: Map<string, () => void>;
      closed: boolean;
    }[] = [];
    class FakeNotification {
      static isSupported = () => true;
      readonly record;
      constructor(options: { title?: string; body?: string }) {
        this.record = { options, handlers: new Map<string, () => void>(), closed: false };
        made.push(this.record);
      }
      on(name: string, fn: () => void) {
        this.record.handlers.set(name, fn);
        return this;
      }
      show() {}
      close() {
        this.record.closed = true;
      }
    }
    let focused = 0;
    const window = {
      isFocused: () => false,
      isMinimized: () => false,
      focus: () => void focused++,
    } as unknown as BrowserWindow;
    const clicked: string[] = [];
    const port = notificationPort(
      FakeNotification as unknown as Parameters<typeof notificationPort>[0],
      () => window,
      (group) => clicked.push(group),
    );
    port.notify({ group: 'team', title: 'Team', body: 'A new message from bob' });
    port.notify({ group: 'team', title: 'Team', body: '2 new messages from bob' });
    port.notify({ group: 'family', title: 'Family', body: 'A new message from carol' });
    expect(made.map((m) => m.closed)).toEqual([true, false, false]);
    made[2]?.handlers.get('click')?.();
    expect(focused).toBe(1);
    expect(clicked).toEqual(['family']);
  });
});
