/**
 * Screen-reader announcements for incoming messages without flooding: messages are collected for
 * a moment, then one polite announcement says either the single message or how many arrived.
 */
const SETTLE_MS = 900;

export class Announcer {
  /** Text of the polite live region. */
  polite = $state('');
  /** Text of the assertive region (security warnings only). */
  assertive = $state('');
  #pending: { from: string; text: string }[] = [];
  #timer: ReturnType<typeof setTimeout> | undefined;

  message(from: string, text: string): void {
    this.#pending.push({ from, text });
    if (this.#timer) clearTimeout(this.#timer);
    this.#timer = setTimeout(() => this.#flush(), SETTLE_MS);
  }

  alert(text: string): void {
    this.assertive = '';
    queueMicrotask(() => (this.assertive = text));
  }

  #flush(): void {
    const pending = this.#pending;
    this.#pending = [];
    this.#timer = undefined;
    if (pending.length === 0) return;
    const last = pending[pending.length - 1];
    if (!last) return;
    const preview = last.text.length > 140 ? `${last.text.slice(0, 139)}…` : last.text;
    if (pending.length === 1) this.polite = `${last.from}: ${preview}`;
    else {
      const senders = pending.map((p) => p.from).filter((from, i, all) => all.indexOf(from) === i);
      this.polite = `${pending.length} new messages from ${senders.join(', ')}. Latest from ${last.from}: ${preview}`;
    }
  }
}
