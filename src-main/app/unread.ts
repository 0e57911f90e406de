/**
 * Unread messages, per group: a live message from another member is unread unless the window is
 * in front and shows its group. Each group's count is in the sidebar; their sum goes to the
 * shell's attention port (the window title and the dock / taskbar badge). A group's count goes
 * back to zero when the window is in front and shows it. Messages restored from the local history
 * at start are not new, so they are never counted; only the chat sessions' live 'message' lines are.
 */
import type { AttentionPort } from './ports.js';

export class UnreadCounts {
  readonly #counts = new Map<string, number>();

  constructor(private readonly port: AttentionPort) {}

  of(group: string): number {
    return this.#counts.get(group) ?? 0;
  }

  get total(): number {
    let total = 0;
    for (const n of this.#counts.values()) total += n;
    return total;
  }

  /** A live message in `group`; `seen`: the window is in front and shows that group. Returns whether it counted. */
  arrived(group: string, seen: boolean): boolean {
    if (seen) return false;
    this.#counts.set(group, this.of(group) + 1);
    this.#report();
    return true;
  }

  /** The window is in front and shows `group` (or the group is gone). Returns whether anything changed. */
  read(group: string): boolean {
    if (this.of(group) === 0) return false;
    this.#counts.delete(group);
    this.#report();
    return true;
  }

  #report(): void {
    try {
      this.port.setUnread(this.total);
    } catch {
      // A title or badge that cannot be set must not break the chat.
    }
  }
}

/** The window title for a count: the product name, with the count in front while there is one. */
export function windowTitle(count: number, product = 'SecureChat-X'): string {
  return count > 0 ? `(${count > 999 ? '999+' : count}) ${product}` : product;
}
