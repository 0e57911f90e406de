/**
 * The timeline's "New messages" divider and "Jump to latest" count
 * (src-renderer/src/lib/unseen.ts): examples of the rule, and fast-check properties over random
 * sequences of arriving batches and scrolls.
 */
import fc from 'fast-check';
import { describe, expect, it } from 'vitest';
import {
  newMessagesText,
  startUnseen,
  stepUnseen,
  unseenView,
  type UnseenLine,
  type UnseenState,
} from '../../src-renderer/src/lib/unseen.js';

type Sort = UnseenLine['sort'];
let nextId = 0;
const make = (sort: Sort): UnseenLine => ({ id: `l${nextId++}`, sort });
const many = (sort: Sort, n: number): UnseenLine[] => Array.from({ length: n }, () => make(sort));

describe('unseen divider', () => {
  it('lines already there when the timeline opens are never new', () => {
    const lines = many('other', 5);
    const state = startUnseen(lines);
    expect(unseenView(state, lines)).toEqual({ index: -1, count: 0, unseen: 0 });
    expect(unseenView(stepUnseen(state, lines, false), lines).index).toBe(-1);
  });

  it('messages arriving at the bottom never place a divider', () => {
    let lines = many('other', 3);
    let state = startUnseen(lines);
    lines = [...lines, ...many('other', 4), make('own')];
    state = stepUnseen(state, lines, true);
    expect(unseenView(state, lines)).toEqual({ index: -1, count: 0, unseen: 0 });
  });

  it('scrolled up: the divider sits above the first new message from others and counts them', () => {
    const old = many('other', 10);
    let state = startUnseen(old);
    const firstBatch = [make('system'), make('other'), make('other')];
    let lines = [...old, ...firstBatch];
    state = stepUnseen(state, lines, false);
    expect(state.dividerId).toBe(firstBatch[1]?.id); // the system line does not place it
    expect(unseenView(state, lines)).toEqual({ index: 11, count: 2, unseen: 2 });
    lines = [...lines, make('other')];
    state = stepUnseen(state, lines, false);
    expect(unseenView(state, lines)).toEqual({ index: 11, count: 3, unseen: 3 });
  });

  it('reaching the bottom marks it seen: the button goes, the divider stays', () => {
    const old = many('other', 4);
    let lines = [...old, ...many('other', 3)];
    let state = stepUnseen(startUnseen(old), lines, false);
    state = stepUnseen(state, lines, true);
    expect(unseenView(state, lines)).toEqual({ index: 4, count: 3, unseen: 0 });
    // Scrolling up again with nothing new: still there, still no button.
    state = stepUnseen(state, lines, false);
    expect(unseenView(state, lines)).toEqual({ index: 4, count: 3, unseen: 0 });
    // A status update of an existing line (same ids) changes nothing.
    lines = [...lines];
    expect(stepUnseen(state, lines, false)).toEqual(state);
  });

  it('a seen divider goes when the user sends, or when a newer message arrives at the bottom', () => {
    const old = many('other', 4);
    const withNew = [...old, ...many('other', 3)];
    const seen = stepUnseen(stepUnseen(startUnseen(old), withNew, false), withNew, true);

    const sent = [...withNew, make('own')];
    expect(stepUnseen(seen, sent, true).dividerId).toBeUndefined();
    expect(stepUnseen(seen, sent, false).dividerId).toBeUndefined();

    const newer = [...withNew, make('other')];
    expect(stepUnseen(seen, newer, true).dividerId).toBeUndefined();
    // Scrolled up again instead: a new divider above the newer message.
    const moved = stepUnseen(seen, newer, false);
    expect(unseenView(moved, newer)).toEqual({ index: 7, count: 1, unseen: 1 });
  });

  it('an unseen divider survives the user sending while scrolled up', () => {
    const old = many('other', 2);
    let lines = [...old, make('other')];
    let state = stepUnseen(startUnseen(old), lines, false);
    lines = [...lines, make('own'), make('other')];
    state = stepUnseen(state, lines, false);
    expect(unseenView(state, lines)).toEqual({ index: 2, count: 2, unseen: 2 });
  });

  it('a shorter timeline (a reset) starts over', () => {
    const old = many('other', 2);
    const lines = [...old, make('other')];
    const state = stepUnseen(startUnseen(old), lines, false);
    expect(stepUnseen(state, [], false)).toEqual(startUnseen([]));
  });

  it('older pages put in above and lines let go at the top are never new', () => {
    const shown = many('other', 4);
    let lines = [...shown];
    let state = startUnseen(lines);
    // An older page (the history, scrolling up) arrives while scrolled up: nothing is new.
    lines = [...many('other', 3), ...lines];
    state = stepUnseen(state, lines, false);
    expect(unseenView(state, lines)).toEqual({ index: -1, count: 0, unseen: 0 });
    // A new message, then the window lets its oldest lines go: the divider and its count stay.
    const fresh = make('other');
    lines = [...lines, fresh];
    state = stepUnseen(state, lines, false);
    lines = lines.slice(5);
    state = stepUnseen(state, lines, false);
    expect(unseenView(state, lines)).toEqual({ index: lines.indexOf(fresh), count: 1, unseen: 1 });
  });

  it('a window that no longer holds the newest line it knew (a reset) starts over', () => {
    const old = many('other', 3);
    const lines = [...old, make('other')];
    const state = stepUnseen(startUnseen(old), lines, false);
    const other = many('other', 5);
    expect(stepUnseen(state, other, false)).toEqual(startUnseen(other));
  });

  it('says how many', () => {
    expect(newMessagesText(1)).toBe('1 new message');
    expect(newMessagesText(3)).toBe('3 new messages');
  });
});

/** One thing that can happen: a batch of lines arrives, or the user scrolls (to the bottom or up). */
type Op = { batch: Sort[] } | { scroll: boolean };
const opArb: fc.Arbitrary<Op> = fc.oneof(
  fc.record({ batch: fc.array(fc.constantFrom<Sort>('other', 'own', 'system'), { maxLength: 6 }) }),
  fc.record({ scroll: fc.boolean() }),
);

describe('unseen divider properties', () => {
  it('the count is the number of others’ messages from the divider on, all of which arrived while scrolled up', () => {
    fc.assert(
      fc.property(
        fc.array(fc.constantFrom<Sort>('other', 'own', 'system'), { maxLength: 8 }),
        fc.array(opArb, { maxLength: 30 }),
        (initial, ops) => {
          let lines: UnseenLine[] = initial.map(make);
          let state: UnseenState = startUnseen(lines);
          let atBottom = true;
          /** Ids of others' messages that arrived while scrolled up and before the last visit to the bottom. */
          const arrivedUnseen = new Set<string>();
          for (const op of ops) {
            if ('scroll' in op) {
              atBottom = op.scroll;
              if (atBottom) arrivedUnseen.clear();
            } else {
              const batch = op.batch.map(make);
              lines = [...lines, ...batch];
              if (!atBottom) for (const l of batch) if (l.sort === 'other') arrivedUnseen.add(l.id);
            }
            state = stepUnseen(state, lines, atBottom);
            const view = unseenView(state, lines);
            const others = lines.slice(Math.max(view.index, 0)).filter((l) => l.sort === 'other');
            if (view.index < 0) {
              expect(view.count).toBe(0);
              expect(view.unseen).toBe(0);
              continue;
            }
            // The divider sits above a message from someone else, and counts exactly those after it.
            expect(lines[view.index]?.sort).toBe('other');
            expect(view.count).toBe(others.length);
            expect(view.count).toBeGreaterThan(0);
            // The button's count is all or nothing, and never shows at the bottom.
            expect([0, view.count]).toContain(view.unseen);
            if (atBottom) expect(view.unseen).toBe(0);
            // While unseen, the counted messages are exactly those that arrived while scrolled up.
            if (view.unseen > 0) expect(new Set(others.map((l) => l.id))).toEqual(arrivedUnseen);
          }
        },
      ),
      { numRuns: 300 },
    );
  });

  it('a timeline that stays at the bottom never gets a divider', () => {
    fc.assert(
      fc.property(
        fc.array(fc.array(fc.constantFrom<Sort>('other', 'own', 'system')), { maxLength: 20 }),
        (batches) => {
          let lines: UnseenLine[] = [];
          let state = startUnseen(lines);
          for (const batch of batches) {
            lines = [...lines, ...batch.map(make)];
            state = stepUnseen(state, lines, true);
            expect(unseenView(state, lines).index).toBe(-1);
          }
        },
      ),
    );
  });
});
