/**
 * The desktop app's history, as the window asks for it (src-main/app/history-reader.ts over the
 * identity's encrypted store, AppMemberState with the bundle-password key): a group with 100,000
 * stored messages is opened until its newest 50 are ChatLines for the window, and searched.
 * Offline, each read opens the store and closes it again, so both numbers include that open.
 *
 * - app.history_open_ms: open the store, read the newest 50, map them (issue 12 goal ≤ 150 ms).
 * - app.search_first_ms: the first search after a catch-up, which indexes the messages the
 *   catch-up stored unindexed (all 100,000 here): paid once, reported apart.
 * - app.search_ms: later searches for a word of 3+ characters (trigram index; goal ≤ 100 ms).
 * - app.search_2chars_ms: a 2-character search (below a trigram: a scan of the table).
 */
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { HistoryReader } from '../../src-main/app/history-reader.js';
import { AppMemberState } from '../../src-main/app/member-state.js';
import { noSecretStorage } from '../../src-main/app/node-ports.js';
import type { SettingsStore } from '../../src-main/app/ports.js';
import { Settings } from '../../src-main/app/settings.js';
import { percentile, type BenchResult, type BenchSuite } from '../harness.js';
import { makeGroup } from './client-kit.js';
import { message } from './history.js';

const MESSAGES = 100_000;
const BATCH = 1_000;
const SHOWN = 50;
function memorySettings(): Settings {
  const data = new Map<string, unknown>();
  const store: SettingsStore = {
    get: (key) => structuredClone(data.get(key)),
    set: (key, value) => void data.set(key, structuredClone(value)),
    delete: (key) => void data.delete(key),
  };
  return new Settings(store);
}

function timed(fn: () => unknown): number {
  const t = performance.now();
  fn();
  return performance.now() - t;
}

export const appHistorySuite: BenchSuite = {
  name: 'app-history',
  description: `the app's history reads (encrypted store opened per read, ${MESSAGES.toLocaleString('en')} messages)`,
  async run(): Promise<BenchResult[]> {
    const dir = mkdtempSync(join(tmpdir(), 'scx-bench-app-history-'));
    try {
      const identity = makeGroup(1, dir).identities[0];
      if (!identity) throw new Error('no identity');
      const owner = { groupId: identity.groupId, member: identity.name };
      const memberState = new AppMemberState({
        dataDir: join(dir, 'data'),
        settings: memorySettings(),
        secrets: noSecretStorage,
      });
      await memberState.unlock(owner, 'app history bench password');
      const store = memberState.open(owner);
      for (let i = 0; i < MESSAGES; i += BATCH) {
        store.history.recordBatch(Array.from({ length: BATCH }, (_, k) => message(i + k)));
      }
      store.close();

      const reader = new HistoryReader({ memberState, openSession: () => undefined });
      const opens: number[] = [];
      for (let r = 0; r < 7; r++) {
        let shown = 0;
        opens.push(timed(() => (shown = reader.recent(identity, SHOWN).length)));
        if (shown !== SHOWN) throw new Error(`showed ${shown} lines, not ${SHOWN}`);
      }
      const first = timed(() => reader.search(identity, 'tangerine', 100));
      const searches: number[] = [];
      const short: number[] = [];
      for (let r = 0; r < 10; r++) {
        searches.push(timed(() => reader.search(identity, `#${(r * 9_973) % MESSAGES} `)));
        short.push(timed(() => reader.search(identity, r % 2 ? 'ok' : 'ug')));
      }
      return [
        { name: 'app.history_open_ms', value: percentile(opens, 50), unit: 'ms' },
        { name: 'app.search_first_ms', value: first, unit: 'ms' },
        { name: 'app.search_ms', value: percentile(searches, 50), unit: 'ms' },
        { name: 'app.search_2chars_ms', value: percentile(short, 50), unit: 'ms' },
      ];
    } finally {
      rmSync(dir, { recursive: true, force: true });
    }
  },
};
