/**
 * Unread messages: those that arrived while the window was not in front. The count goes to the
 * shell's attention port (the window title and the dock / taskbar badge) and back to zero when the
 * window gets focus. Messages restored from the local history at start are not new, so they are
 * never counted; only the chat session's live 'message' lines are.
 */
import type { AttentionPort } from './ports.js';

export class UnreadCounter {
  #count = 0;
  #focused = true;

  constructor(private readonly port: AttentionPort) {}

  get count(): number {
    return this.#count;
  }

  get focused(): boolean {
    return this.#focused;
  }

  /** An incoming message was shown. */
  arrived(): void {
    if (this.#focused) return;
    this.#count++;
    this.#report();
  }

  /** The window gained (true) or lost (false) focus. */
  focus(focused: boolean): void {
    this.#focused = focused;
    if (focused && this.#count > 0) {
      this.#count = 0;
      this.#report();
    }
  }

  #report(): void {
    try {
      this.port.setUnread(this.#count);
    } catch {
      // A title or badge that cannot be set must not break the chat.
    }
  }
}

/** The window title for a count: the product name, with the count in front while there is one. */
export function windowTitle(count: number, product = 'SecureChat-X'): string {
  return count > 0 ? `(${count > 999 ? '999+' : count}) ${product}` : product;
}
