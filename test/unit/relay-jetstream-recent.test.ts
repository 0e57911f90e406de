/**
 * RecentAppends (src-main/relay/log/jetstream-read.ts): the frames a cluster node appended, kept
 * for its own follower. It may only ever save reads: each sequence is handed out once, what the
 * follower passed is dropped, and it stays within its entry and byte caps.
 */
import { describe, expect, it } from 'vitest';
import { RecentAppends } from '../../src-main/relay/log/jetstream-read.js';
import type { LogEntry } from '../../src-main/relay/log/types.js';

const entry = (offset: number, bytes = 10): LogEntry => ({
  offset,
  storedAt: 0,
  audience: { kind: 'all' },
  sender: 'alice',
  frame: Buffer.alloc(bytes, offset & 0xff),
});

describe('RecentAppends', () => {
  it('hands out each appended sequence once, and nothing it was not given', () => {
    const recent = new RecentAppends();
    recent.add(entry(3));
    recent.add(entry(4));
    expect(recent.take(2)).toBeUndefined();
    expect(recent.take(4)?.frame).toEqual(entry(4).frame);
    expect(recent.take(4)).toBeUndefined();
    expect(recent.take(3)?.offset).toBe(3);
  });

  it('drops what the follower is past (read back from the stream meanwhile)', () => {
    const recent = new RecentAppends();
    for (const seq of [5, 6, 7, 8]) recent.add(entry(seq));
    recent.dropThrough(7);
    expect([5, 6, 7].map((s) => recent.take(s))).toEqual([undefined, undefined, undefined]);
    expect(recent.take(8)?.offset).toBe(8);
  });

  it('keeps within its caps, oldest first', () => {
    const byCount = new RecentAppends(2, 1_000_000);
    for (const seq of [1, 2, 3]) byCount.add(entry(seq));
    expect(byCount.take(1)).toBeUndefined();
    expect([byCount.take(2)?.offset, byCount.take(3)?.offset]).toEqual([2, 3]);

    const byBytes = new RecentAppends(100, 25);
    for (const seq of [1, 2, 3]) byBytes.add(entry(seq, 10));
    expect(byBytes.take(1)).toBeUndefined();
    expect([byBytes.take(2)?.offset, byBytes.take(3)?.offset]).toEqual([2, 3]);
    // Taking gives the bytes back: two more fit again.
    for (const seq of [4, 5]) byBytes.add(entry(seq, 10));
    expect([byBytes.take(4)?.offset, byBytes.take(5)?.offset]).toEqual([4, 5]);
  });
});
