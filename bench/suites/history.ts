/**
 * The member's encrypted history (src-main/client/state/history.ts) in this process, on a
 * temporary folder of the local disk: how fast messages are stored (the store side of a catch-up:
 * LogFollower batches of one event-loop turn), how long opening a large history and showing its
 * newest page takes, and how long searches take, with the trigram index and with a scan.
 */
import { randomBytes } from 'node:crypto';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { LogFollower } from '../../src-main/client/log-follower.js';
import type { HistoryMessage } from '../../src-main/client/state/history.js';
import { MemberStateStore } from '../../src-main/client/state/member-store.js';
import { percentile, type BenchResult, type BenchSuite } from '../harness.js';

const MESSAGES = 100_000;
const PER_TURN = 256;
const owner = { groupId: 'ab'.repeat(32), member: 'carol' };
const WORDS = [
  'lunch',
  'deploy',
  'review',
  'tangerine',
  'meeting',
  'release',
  'coffee',
  'bug',
  'merge',
  'ok',
];

function text(i: number): string {
  const w = (k: number) => WORDS[(i * 7 + k * 13) % WORDS.length] as string;
  return `${w(0)} ${w(1)} #${i} ${w(2)} ${w(3)}`;
}

/** The i-th message of a benchmark history: a few words and a unique `#i`. Shared with app-history.ts. */
export function message(i: number): HistoryMessage {
  return {
    from: i % 2 ? 'alice' : 'bob',
    text: text(i),
    epoch: 1 + Math.floor(i / 10_000),
    seq: i + 1,
    sentAt: 1_700_000_000_000 + i,
    receivedAt: 1_700_000_000_000 + i,
    own: false,
  };
}

function median(samples: number[]): number {
  return percentile(samples, 50);
}

export const historySuite: BenchSuite = {
  name: 'history',
  description: `member history (encrypted SQLite, ${MESSAGES.toLocaleString('en')} messages, ${PER_TURN} per commit)`,
  async run(): Promise<BenchResult[]> {
    const dir = mkdtempSync(join(tmpdir(), 'scx-bench-history-'));
    const key = randomBytes(32);
    const path = join(dir, 'member-state.db');
    try {
      const store = MemberStateStore.open(path, key, owner);
      // Through the follower, as a catch-up stores them: one commit per turn with the position.
      let queued: (() => void) | undefined;
      const follower = new LogFollower({
        history: store.history,
        self: 'carol',
        shown: () => undefined,
        sent: () => undefined,
        gap: () => undefined,
        problem: (err) => {
          throw err;
        },
        schedule: (fn) => (queued = fn),
      });
      follower.begin('cd'.repeat(16));
      const start = performance.now();
      for (let i = 0; i < MESSAGES; i++) {
        const m = message(i);
        follower.delivered(i + 1, () => {
          if (!follower.isDuplicate(m.from, m.epoch, m.seq)) follower.received(m);
        });
        if ((i + 1) % PER_TURN === 0) queued?.();
      }
      follower.flush();
      const storeSeconds = (performance.now() - start) / 1000;
      store.close();

      const opens: number[] = [];
      for (let r = 0; r < 5; r++) {
        const t = performance.now();
        const s = MemberStateStore.open(path, key, owner);
        s.history.page({ limit: 50 });
        opens.push(performance.now() - t);
        s.close();
      }
      const s = MemberStateStore.open(path, key, owner);
      // The catch-up left its messages unindexed: the first search indexes them all.
      const pending = s.history.unindexed();
      const indexStart = performance.now();
      s.history.indexBacklog();
      const indexSeconds = (performance.now() - indexStart) / 1000;
      const searches: number[] = [];
      const short: number[] = [];
      for (let r = 0; r < 20; r++) {
        let t = performance.now();
        s.history.search(`#${(r * 4999) % MESSAGES} `, 50);
        searches.push(performance.now() - t);
        t = performance.now();
        s.history.search(r % 2 ? 'ok' : 'ug', 50);
        short.push(performance.now() - t);
      }
      s.close();
      return [
        { name: 'history.store_msgs_per_s', value: MESSAGES / storeSeconds, unit: 'msg/s' },
        { name: 'history.index_msgs_per_s', value: pending / indexSeconds, unit: 'msg/s' },
        { name: 'history.open_last50_ms', value: median(opens), unit: 'ms' },
        { name: 'history.search_ms', value: median(searches), unit: 'ms' },
        { name: 'history.search_2chars_ms', value: median(short), unit: 'ms' },
      ];
    } finally {
      rmSync(dir, { recursive: true, force: true });
    }
  },
};
