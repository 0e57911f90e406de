/**
 * Notifications grouped per group: while the window is not in front, each new message updates the
 * group's one notification ("3 new messages from alice and bob") instead of adding another, and
 * the window getting focus starts over. Message text appears only with previews on (a locked
 * screen shows notifications to anyone passing by).
 */
export interface GroupNotification {
  /** Notifications with the same group replace each other (the shell keeps one per group). */
  group: string;
  title: string;
  body: string;
}

const PREVIEW_CHARS = 200;

export class NotificationDigest {
  #count = 0;
  #senders: string[] = [];

  /** A message from `from` arrived while the window was not in front: the notification to show. */
  add(group: { id: string; name: string }, from: string, text: string, previews: boolean): GroupNotification {
    this.#count++;
    if (!this.#senders.includes(from)) this.#senders.push(from);
    const many = this.#count > 1;
    if (previews) {
      const preview = text.length > PREVIEW_CHARS ? `${text.slice(0, PREVIEW_CHARS - 1)}…` : text;
      return {
        group: group.id,
        title: many ? `${group.name}: ${this.#count} new messages` : `${from} in ${group.name}`,
        body: many ? `${from}: ${preview}` : preview,
      };
    }
    return {
      group: group.id,
      title: group.name,
      body: `${many ? `${this.#count} new messages` : 'A new message'} from ${listNames(this.#senders)}`,
    };
  }

  /** The window is in front: what it showed is read. */
  reset(): void {
    this.#count = 0;
    this.#senders = [];
  }
}

/** "alice", "alice and bob", "alice, bob and 2 others". */
function listNames(names: readonly string[]): string {
  if (names.length <= 1) return names[0] ?? '';
  if (names.length === 2) return `${names[0]} and ${names[1]}`;
  if (names.length === 3) return `${names[0]}, ${names[1]} and ${names[2]}`;
  return `${names[0]}, ${names[1]} and ${names.length - 2} others`;
}
