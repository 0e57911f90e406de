/**
 * Stored history entries (client/state/history.ts) as the window's chat lines. A line from the
 * history is named by its local id (`h-N`), so the same message read twice (the start page, an
 * older page, a search) is one line.
 */
import type { HistoryEntry } from '../client/state/history.js';
import type { ChatLine } from '../../src-shared/model.js';

export const historyLineId = (id: number): string => `h-${id}`;

/** Own messages are shown as sent: they are stored once written, and only STORED ones are replayed. */
export function historyLine(m: HistoryEntry): ChatLine {
  const common = {
    id: historyLineId(m.id),
    from: m.from,
    text: m.text,
    epoch: m.epoch,
    seq: m.seq,
    sentAt: m.sentAt,
    historyId: m.id,
  };
  return m.own
    ? { kind: 'own', ...common, status: 'sent' }
    : { kind: 'message', ...common, receivedAt: m.receivedAt };
}
