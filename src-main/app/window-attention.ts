/**
 * What the app does for a message that arrives, outside the timeline: count it as unread while
 * the window is not in front (unread.ts: title and badge) and show or update the group's one
 * notification (notification-digest.ts). The shell reports focus changes; the chat session reports
 * each live message from another member.
 */
import { NotificationDigest } from './notification-digest.js';
import type { AttentionPort, NotificationPort } from './ports.js';
import type { Settings } from './settings.js';
import { UnreadCounter } from './unread.js';

export interface WindowAttentionDeps {
  notifications: NotificationPort;
  /** Title and badge; absent: counted, shown nowhere. */
  attention?: AttentionPort;
  settings: Settings;
}

export class WindowAttention {
  readonly #unread: UnreadCounter;
  readonly #digest = new NotificationDigest();

  constructor(private readonly deps: WindowAttentionDeps) {
    this.#unread = new UnreadCounter(deps.attention ?? { setUnread: () => undefined });
  }

  get unread(): number {
    return this.#unread.count;
  }

  /** The window gained (true) or lost focus. */
  focus(focused: boolean): void {
    this.#unread.focus(focused);
    // In front: read. Just left: what comes next is what the notification sums up.
    this.#digest.reset();
  }

  /** A live message from another member was shown. */
  incoming(from: string, text: string, group: { id: string; name: string }): void {
    this.#unread.arrived();
    const settings = this.deps.settings.view();
    if (!settings.notifications) return;
    // In front, each message stands alone (the shell shows none then anyway).
    if (this.#unread.focused) this.#digest.reset();
    try {
      this.deps.notifications.notify(this.#digest.add(group, from, text, settings.notificationPreviews));
    } catch {
      // Notifications are a courtesy; a failure must not touch the chat.
    }
  }
}
