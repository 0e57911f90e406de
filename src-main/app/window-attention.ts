/**
 * The group's one notification for messages that arrive (notification-digest.ts): shown or
 * updated for each live message from another member, per group. The shell reports focus changes
 * (in front, each message stands alone, and the shell shows none anyway); the service reports
 * each live message. Unread counts are unread.ts.
 */
import { NotificationDigest } from './notification-digest.js';
import type { NotificationPort } from './ports.js';
import type { Settings } from './settings.js';

export interface WindowAttentionDeps {
  notifications: NotificationPort;
  settings: Settings;
}

export class WindowAttention {
  readonly #digest = new NotificationDigest();
  #focused = true;

  constructor(private readonly deps: WindowAttentionDeps) {}

  /** The window gained (true) or lost focus. */
  focus(focused: boolean): void {
    this.#focused = focused;
    // In front: read. Just left: what comes next is what the notification sums up.
    this.#digest.reset();
  }

  /** A live message from another member was shown. */
  incoming(from: string, text: string, group: { id: string; name: string }): void {
    const settings = this.deps.settings.view();
    if (!settings.notifications) return;
    if (this.#focused) this.#digest.reset();
    try {
      this.deps.notifications.notify(this.#digest.add(group, from, text, settings.notificationPreviews));
    } catch {
      // Notifications are a courtesy; a failure must not touch the chat.
    }
  }
}
