/**
 * Per-sender sequence numbers of one epoch. A message must carry a number above the last one
 * accepted from that sender (else Replay) and not absurdly far above it (else SequenceOutOfWindow,
 * which stops a single forged-looking jump from making every later genuine message a "replay").
 */
import type { RejectCode } from './errors.js';

export const DEFAULT_SEQUENCE_WINDOW = 10_000;

export class SequenceWindow {
  private readonly highest = new Map<string, number>();

  constructor(readonly window = DEFAULT_SEQUENCE_WINDOW) {}

  /** A window that continues above what was received before (a key restored after a restart). */
  static resuming(
    window: number | undefined,
    received: ReadonlyMap<string, number> | undefined,
  ): SequenceWindow {
    const w = new SequenceWindow(window);
    for (const [sender, seq] of received ?? []) w.commit(sender, seq);
    return w;
  }

  /** Checks without accepting: the caller commits only once the message decrypted. */
  check(sender: string, seq: number): RejectCode | undefined {
    const last = this.highest.get(sender) ?? 0;
    if (seq <= last) return 'Replay';
    if (seq - last > this.window) return 'SequenceOutOfWindow';
    return undefined;
  }

  commit(sender: string, seq: number): void {
    const last = this.highest.get(sender) ?? 0;
    if (seq > last) this.highest.set(sender, seq);
  }

  last(sender: string): number {
    return this.highest.get(sender) ?? 0;
  }
}
