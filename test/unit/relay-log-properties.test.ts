/**
 * Properties of the relay log's per-member views (src-main/relay/log): random interleavings of
 * appends (to everyone and to several members, from several senders) and reads (random start,
 * page size, byte cap, own broadcasts or not), checked against a plain array model.
 */
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import fc from 'fast-check';
import { describe, expect, it } from 'vitest';
import { SqliteRelayLog, type LogAppend } from '../../src-main/relay/log/index.js';

const MEMBERS = ['alice', 'bob', 'carol', 'dave'] as const;
const member = fc.constantFrom(...MEMBERS);

const appendArb: fc.Arbitrary<LogAppend> = fc.record({
  audience: fc.oneof(
    fc.constant({ kind: 'all' as const }),
    member.map((name) => ({ kind: 'member' as const, name })),
  ),
  sender: member,
  frame: fc.uint8Array({ minLength: 1, maxLength: 64 }).map((u) => Buffer.from(u)),
});

type Command =
  | { kind: 'append'; batch: LogAppend[] }
  | { kind: 'read'; member: string; after: number; limit: number; maxBytes: number; own: boolean };

const commandArb: fc.Arbitrary<Command> = fc.oneof(
  fc.record({ kind: fc.constant('append' as const), batch: fc.array(appendArb, { maxLength: 12 }) }),
  fc.record({
    kind: fc.constant('read' as const),
    member,
    // A fraction of the log so far, so starts land inside it, at its end and past it.
    after: fc.double({ min: 0, max: 1.2, noNaN: true }),
    limit: fc.integer({ min: 1, max: 8 }),
    maxBytes: fc.integer({ min: 1, max: 300 }),
    own: fc.boolean(),
  }),
);

interface Stored extends LogAppend {
  offset: number;
}

function due(e: Stored, who: string, own: boolean): boolean {
  if (e.audience.kind === 'member') return e.audience.name === who;
  return own || e.sender !== who;
}

describe('relay log properties', () => {
  it('a member’s paged reads return exactly what is addressed to it or to all, in order, each once', async () => {
    await fc.assert(
      fc.asyncProperty(fc.array(commandArb, { minLength: 1, maxLength: 30 }), async (commands) => {
        const dir = mkdtempSync(join(tmpdir(), 'scx-relay-log-prop-'));
        const log = SqliteRelayLog.open(dir);
        const model: Stored[] = [];
        try {
          for (const c of commands) {
            if (c.kind === 'append') {
              const offsets = await log.append(c.batch);
              expect(offsets).toEqual(c.batch.map((_, i) => model.length + 1 + i));
              c.batch.forEach((e, i) => model.push({ ...e, offset: offsets[i] as number }));
              continue;
            }
            const start = Math.floor(c.after * model.length);
            const seen: Stored[] = [];
            let after = start;
            for (let pages = 0; ; pages++) {
              expect(pages).toBeLessThanOrEqual(model.length + 1);
              const page = await log.read({
                afterOffset: after,
                member: c.member,
                limit: c.limit,
                maxBytes: c.maxBytes,
                ownBroadcasts: c.own,
              });
              expect(page.entries.length).toBeLessThanOrEqual(c.limit);
              if (page.entries.length > 1) {
                expect(page.entries.reduce((n, e) => n + e.frame.length, 0)).toBeLessThanOrEqual(c.maxBytes);
              }
              expect(page.nextAfter).toBeGreaterThanOrEqual(page.entries.at(-1)?.offset ?? after);
              seen.push(...page.entries);
              after = page.nextAfter;
              if (page.end) break;
            }
            const expected = model.filter((e) => e.offset > start && due(e, c.member, c.own));
            expect(seen.map((e) => e.offset)).toEqual(expected.map((e) => e.offset));
            for (const [i, e] of seen.entries()) {
              const want = expected[i] as Stored;
              expect(e.frame.equals(want.frame)).toBe(true);
              expect(e.sender).toBe(want.sender);
              expect(e.audience).toEqual(want.audience);
            }
            expect(after).toBe(Math.max(start, model.length));
          }
          const bounds = await log.bounds();
          expect(bounds).toMatchObject({ firstOffset: 1, lastOffset: model.length, frames: model.length });
        } finally {
          await log.close();
          rmSync(dir, { recursive: true, force: true });
        }
      }),
      { numRuns: 60 },
    );
  });
});
