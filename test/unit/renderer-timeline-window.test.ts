/**
 * The renderer's bounded window over the chat (src-renderer/src/lib/timeline-window.ts): it starts
 * with the newest lines, takes live lines at the end, pages older history in at the top, never
 * holds more than MAX_RENDERED_LINES, and holds each message once however it is named.
 */
import fc from 'fast-check';
import { describe, expect, it } from 'vitest';
import {
  applyLine,
  oldestHistoryId,
  prependOlder,
  startWindow,
  type TimelineWindow,
} from '../../src-renderer/src/lib/timeline-window.js';
import { MAX_RENDERED_LINES, TIMELINE_START_LINES } from '../../src-shared/limits.js';
import type { ChatLine } from '../../src-shared/model.js';

const stored = (id: number, from = 'bob'): ChatLine => ({
  kind: 'message',
  id: `h-${id}`,
  historyId: id,
  from,
  text: `message ${id}`,
  epoch: 1,
  seq: id,
  sentAt: id,
  receivedAt: id,
});
const system = (id: string): ChatLine => ({
  kind: 'system',
  id,
  event: 'connected',
  text: 'Connected.',
  at: 1,
});
const range = (from: number, to: number): ChatLine[] =>
  Array.from({ length: to - from + 1 }, (_, i) => stored(from + i));
const ids = (w: TimelineWindow): string[] => w.lines.map((l) => l.id);

describe('timeline window', () => {
  it('offers older history only when the start held a full page of stored messages', () => {
    expect(startWindow(range(1, 10)).older).toBe(false);
    expect(startWindow([system('s-1'), ...range(1, TIMELINE_START_LINES - 1)]).older).toBe(false);
    expect(startWindow(range(1, TIMELINE_START_LINES)).older).toBe(true);
    expect(startWindow([]).generation).toBe(1);
    expect(startWindow([], startWindow([])).generation).toBe(2);
  });

  it('updates a held line in place, by id or by sender/epoch/seq, and keeps its history id', () => {
    const w = startWindow(range(1, 3));
    const own: ChatLine = {
      kind: 'own',
      id: 'own-x',
      from: 'bob',
      text: 'message 2',
      status: 'sent',
      epoch: 1,
      seq: 2,
      sentAt: 2,
    };
    const { window, added } = applyLine(w, own);
    expect(added).toBe(false);
    expect(window.lines).toHaveLength(3);
    expect(window.lines[1]).toMatchObject({ id: 'own-x', status: 'sent', historyId: 2 });
    expect(applyLine(w, stored(4)).added).toBe(true);
  });

  it('pages older history in above, lets go of the newest past the bound, and is then detached', () => {
    let w = startWindow(range(1001, 1000 + TIMELINE_START_LINES));
    expect(oldestHistoryId(w)).toBe(1001);
    w = prependOlder(w, range(901, 1000), true);
    expect(w.lines[0]?.id).toBe('h-901');
    expect(w.detached).toBe(false);
    for (let first = 801; first > 0; first -= 100) w = prependOlder(w, range(first, first + 99), first > 1);
    expect(w.lines).toHaveLength(MAX_RENDERED_LINES);
    expect(w.lines[0]?.id).toBe('h-1');
    expect(w.older).toBe(false);
    expect(w.detached).toBe(true);
    // Detached, live lines wait for "Jump to latest" (a new start) instead of going in.
    expect(applyLine(w, stored(5000)).added).toBe(false);
  });

  it('never holds more than the bound nor a message twice, whatever arrives (property)', () => {
    const step = fc.oneof(
      fc.record({ live: fc.integer({ min: 1, max: 3000 }) }),
      fc.record({ page: fc.integer({ min: 1, max: 3000 }), size: fc.integer({ min: 1, max: 200 }) }),
    );
    fc.assert(
      fc.property(fc.integer({ min: 0, max: 700 }), fc.array(step, { maxLength: 40 }), (start, steps) => {
        let w = startWindow(range(3001, 3000 + start));
        for (const s of steps) {
          if ('live' in s) w = applyLine(w, stored(s.live)).window;
          else w = prependOlder(w, range(s.page, s.page + s.size - 1), true);
          expect(w.lines.length).toBeLessThanOrEqual(MAX_RENDERED_LINES);
          expect(new Set(ids(w)).size).toBe(w.lines.length);
        }
      }),
      { numRuns: 200 },
    );
  });
});
