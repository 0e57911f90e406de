/**
 * The member's message history (src-main/client/state/history.ts): real encrypted store files.
 */
import { randomBytes } from 'node:crypto';
import { mkdtempSync, readdirSync, readFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import fc from 'fast-check';
import { describe, expect, it } from 'vitest';
import type { HistoryMessage } from '../../src-main/client/state/history.js';
import { MemberStateStore } from '../../src-main/client/state/member-store.js';

const owner = { groupId: 'cd'.repeat(32), member: 'carol' };
const tmp = () => mkdtempSync(join(tmpdir(), 'scx-history-'));

function msg(from: string, epoch: number, seq: number, text = `${from} ${epoch}.${seq}`): HistoryMessage {
  return {
    from,
    text,
    epoch,
    seq,
    sentAt: 1_700_000_000_000 + seq,
    receivedAt: 1_700_000_000_500 + seq,
    own: false,
  };
}

describe('message history', () => {
  it('stores a message once: a repeat of (sender, epoch, seq) is not new, whatever its text', () => {
    const store = MemberStateStore.open(join(tmp(), 'h.db'), randomBytes(32), owner);
    expect(store.history.record(msg('bob', 3, 1))).toBe(true);
    expect(store.history.record(msg('bob', 3, 1, 'a replayed copy'))).toBe(false);
    expect(store.history.record(msg('bob', 3, 2))).toBe(true);
    expect(store.history.record(msg('alice', 3, 1))).toBe(true);
    expect(store.history.record(msg('bob', 4, 1))).toBe(true);
    expect(store.history.count()).toBe(4);
    expect(store.history.page().map((e) => e.text)).toEqual(['bob 3.1', 'bob 3.2', 'alice 3.1', 'bob 4.1']);
    store.close();
  });

  it('any interleaving of replays and live copies shows each message once, in first-arrival order', () => {
    fc.assert(
      fc.property(
        fc.array(
          fc.tuple(
            fc.constantFrom('alice', 'bob'),
            fc.integer({ min: 1, max: 3 }),
            fc.integer({ min: 1, max: 5 }),
          ),
          {
            maxLength: 60,
          },
        ),
        (arrivals) => {
          const store = MemberStateStore.open(join(tmp(), 'p.db'), randomBytes(32), owner);
          const shown: string[] = [];
          for (const [from, epoch, seq] of arrivals)
            if (store.history.record(msg(from, epoch, seq))) shown.push(`${from} ${epoch}.${seq}`);
          const firstArrivals = [...new Set(arrivals.map(([f, e, s]) => `${f} ${e}.${s}`))];
          expect(shown).toEqual(firstArrivals);
          expect(store.history.page({ limit: 1000 }).map((e) => e.text)).toEqual(firstArrivals);
          store.close();
        },
      ),
      { numRuns: 40 },
    );
  });

  it('a batch and the log position it covers are saved together, and survive a reopen', () => {
    const path = join(tmp(), 'b.db');
    const key = randomBytes(32);
    const a = MemberStateStore.open(path, key, owner);
    expect(a.history.position()).toBeUndefined();
    expect(
      a.history.recordBatch([msg('bob', 1, 1), msg('bob', 1, 2)], { streamId: 'aa'.repeat(16), offset: 7 }),
    ).toEqual([true, true]);
    // A batch that fails half-way leaves neither its rows nor its position.
    const bad = { ...msg('bob', 1, 3), epoch: Number.NaN };
    expect(() =>
      a.history.recordBatch([msg('bob', 1, 4), bad], { streamId: 'aa'.repeat(16), offset: 9 }),
    ).toThrow();
    expect(a.history.count()).toBe(2);
    expect(a.history.position()).toEqual({ streamId: 'aa'.repeat(16), offset: 7 });
    a.close();
    const b = MemberStateStore.open(path, key, owner);
    expect(b.history.position()).toEqual({ streamId: 'aa'.repeat(16), offset: 7 });
    expect(b.history.page().map((e) => e.seq)).toEqual([1, 2]);
    b.close();
  });

  it('remembers where the relay stored our own message, once', () => {
    const store = MemberStateStore.open(join(tmp(), 'o.db'), randomBytes(32), owner);
    store.history.record({ ...msg('carol', 2, 1), own: true });
    store.history.markStored('carol', 2, 1, { streamId: 'bb'.repeat(16), offset: 41 });
    store.history.markStored('carol', 2, 1, { streamId: 'bb'.repeat(16), offset: 99 });
    const [e] = store.history.page();
    expect(e).toMatchObject({ own: true, offset: 41, streamId: 'bb'.repeat(16) });
    store.close();
  });

  it('pages backwards from the newest, oldest first within a page', () => {
    const store = MemberStateStore.open(join(tmp(), 'g.db'), randomBytes(32), owner);
    store.history.recordBatch(Array.from({ length: 120 }, (_, i) => msg('bob', 1, i + 1)));
    const last = store.history.page({ limit: 50 });
    expect(last.map((e) => e.seq)).toEqual(Array.from({ length: 50 }, (_, i) => 71 + i));
    const before = store.history.page({ beforeId: last[0]?.id, limit: 50 });
    expect(before.map((e) => e.seq)).toEqual(Array.from({ length: 50 }, (_, i) => 21 + i));
    const first = store.history.page({ beforeId: before[0]?.id, limit: 50 });
    expect(first.map((e) => e.seq)).toEqual(Array.from({ length: 20 }, (_, i) => 1 + i));
    expect(store.history.page({ beforeId: first[0]?.id })).toEqual([]);
    store.close();
  });

  it('searches substrings case-insensitively, short and long, and treats % and _ literally', () => {
    const store = MemberStateStore.open(join(tmp(), 's.db'), randomBytes(32), owner);
    const texts = [
      'Lunch at noon?',
      'the release is Friday',
      'release notes: 100% done',
      'ok',
      'under_score',
      'Ünïcode wörds',
      'she said "yes" twice',
    ];
    store.history.recordBatch(texts.map((t, i) => msg('bob', 1, i + 1, t)));
    expect(store.history.search('RELEASE').map((e) => e.text)).toEqual([texts[1], texts[2]]);
    expect(store.history.search('ok').map((e) => e.text)).toEqual(['ok']);
    expect(store.history.search('100%').map((e) => e.text)).toEqual([texts[2]]);
    expect(store.history.search('%').map((e) => e.text)).toEqual([texts[2]]);
    expect(store.history.search('e_e')).toEqual([]);
    expect(store.history.search('_').map((e) => e.text)).toEqual(['under_score']);
    expect(store.history.search('wörd').map((e) => e.text)).toEqual([texts[5]]);
    expect(store.history.search('release', 1).map((e) => e.text)).toEqual([texts[2]]);
    expect(store.history.search('"yes"').map((e) => e.text)).toEqual([texts[6]]);
    expect(store.history.search('noon? the')).toEqual([]);
    store.close();
  });

  it('holds no message text on disk, in the database or its -wal file', () => {
    const dir = tmp();
    const store = MemberStateStore.open(join(dir, 'd.db'), randomBytes(32), owner);
    const secret = 'the plaintext that must never be on disk';
    store.history.recordBatch(Array.from({ length: 200 }, (_, i) => msg('bob', 1, i + 1, `${secret} #${i}`)));
    for (const f of readdirSync(dir)) {
      const bytes = readFileSync(join(dir, f));
      expect(bytes.includes(Buffer.from('plaintext that must')), f).toBe(false);
      expect(bytes.includes(Buffer.from('plaintext that must', 'utf16le')), f).toBe(false);
    }
    store.close();
  });

  it('stores a large batch unindexed, indexes it while chat goes on, and searches always see everything', () => {
    const store = MemberStateStore.open(join(tmp(), 'h.db'), randomBytes(32), owner);
    const big = Array.from({ length: 300 }, (_, i) => msg('bob', 1, i + 1, `catch-up ${i + 1} zebra`));
    store.history.recordBatch(big);
    expect(store.history.unindexed()).toBe(300);
    store.history.record(msg('alice', 1, 1, 'live one zebra'));
    // A small batch indexes itself and part of the backlog (64 rows).
    expect(store.history.unindexed()).toBe(300 + 1 - 65);
    expect(store.history.search('zebra', 1000)).toHaveLength(301);
    expect(store.history.unindexed()).toBe(0);
    expect(store.history.search('catch-up 17 ', 10).map((e) => e.seq)).toEqual([17]);
    store.close();
  });

  it('a replay batch (catchingUp) is stored unindexed however small, and searches still see it', () => {
    const store = MemberStateStore.open(join(tmp(), 'h.db'), randomBytes(32), owner);
    for (let i = 0; i < 40; i += 4) {
      const batch = Array.from({ length: 4 }, (_, k) =>
        msg('bob', 1, i + k + 1, `replayed ${i + k + 1} zebra`),
      );
      store.history.recordBatch(batch, { streamId: 'aa'.repeat(16), offset: i + 4 }, { catchingUp: true });
    }
    expect(store.history.unindexed()).toBe(40);
    expect(store.history.position()).toEqual({ streamId: 'aa'.repeat(16), offset: 40 });
    // The first live batch after the replay indexes itself and the backlog (65 rows at most).
    store.history.recordBatch([msg('alice', 1, 1, 'live zebra')]);
    expect(store.history.unindexed()).toBe(0);
    expect(store.history.search('zebra', 100)).toHaveLength(41);
    store.close();
  });

  it('a live message is indexed once 32 rows wait; until then a search indexes it first', () => {
    const store = MemberStateStore.open(join(tmp(), 'h.db'), randomBytes(32), owner);
    for (let seq = 1; seq <= 31; seq++) store.history.record(msg('bob', 1, seq, `live ${seq} okapi`));
    expect(store.history.unindexed()).toBe(31);
    store.history.record(msg('bob', 1, 32, 'live 32 okapi'));
    expect(store.history.unindexed()).toBe(0);
    store.history.record(msg('bob', 1, 33, 'live 33 okapi'));
    expect(store.history.unindexed()).toBe(1);
    expect(store.history.search('33 okapi', 10).map((e) => e.seq)).toEqual([33]);
    expect(store.history.unindexed()).toBe(0);
    store.close();
  });

  it('has() answers as the table does, whatever the order of inserts, lookups and failed batches', () => {
    const triple = fc.tuple(
      fc.constantFrom('alice', 'bob'),
      fc.integer({ min: 1, max: 2 }),
      fc.integer({ min: 1, max: 4 }),
    );
    const step = fc.oneof(
      fc.record({ kind: fc.constant('has' as const), t: triple }),
      fc.record({ kind: fc.constant('insert' as const), ts: fc.array(triple, { maxLength: 4 }) }),
      fc.record({
        kind: fc.constant('failed' as const),
        ts: fc.array(triple, { minLength: 1, maxLength: 3 }),
      }),
      fc.record({ kind: fc.constant('reopen' as const) }),
    );
    fc.assert(
      fc.property(fc.array(step, { maxLength: 40 }), (steps) => {
        const path = join(tmp(), 'has.db');
        const key = randomBytes(32);
        let store = MemberStateStore.open(path, key, owner);
        const held = new Set<string>();
        const id = ([f, e, q]: [string, number, number]) => `${f} ${e}.${q}`;
        for (const s of steps) {
          if (s.kind === 'has') {
            expect(store.history.has(...s.t), id(s.t)).toBe(held.has(id(s.t)));
          } else if (s.kind === 'insert') {
            store.history.recordBatch(s.ts.map((t) => msg(...t)));
            for (const t of s.ts) held.add(id(t));
          } else if (s.kind === 'failed') {
            // The batch's last message breaks a constraint: the whole batch rolls back.
            const bad = { ...msg('zed', 9, 1), text: null as unknown as string };
            expect(() => store.history.recordBatch([...s.ts.map((t) => msg(...t)), bad])).toThrow();
          } else {
            store.close();
            store = MemberStateStore.open(path, key, owner);
          }
        }
        store.close();
      }),
      { numRuns: 150 },
    );
  });

  it('has() sees rows another connection wrote before it first looked at that sender and epoch', () => {
    const path = join(tmp(), 'two.db');
    const key = randomBytes(32);
    const a = MemberStateStore.open(path, key, owner);
    const b = MemberStateStore.open(path, key, owner);
    b.history.record(msg('bob', 1, 5));
    expect(a.history.has('bob', 1, 5)).toBe(true);
    expect(a.history.has('bob', 1, 6)).toBe(false);
    a.history.record(msg('bob', 1, 6));
    expect(a.history.has('bob', 1, 6)).toBe(true);
    a.close();
    b.close();
  });
});
