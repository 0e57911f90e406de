/**
 * The desktop app's history (issue 12, item 1) under plain Node, with a real relay child process
 * and real chat engines: the stored history shown at unlock before any connect, older pages read
 * before the oldest line shown, search, and the "while you were away" divider above what a member
 * catches up after being offline; and no message text readable in any file the app keeps.
 */
import { statSync } from 'node:fs';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import type { ChatLine } from '../../src-shared/model.js';
import { TIMELINE_START_LINES } from '../../src-shared/limits.js';
import { makeTestGroup, TEST_PASSWORD, type TestGroup } from '../helpers/group.js';
import { filesUnder, plaintextFound } from '../helpers/plaintext-on-disk.js';
import { createTestApp, importBundle, startRelay, until, unwrap, type TestApp } from './app-harness.js';

type Shown = Exclude<ChatLine, { kind: 'system' }>;

function required<T>(value: T | null | undefined, what: string): T {
  if (value === null || value === undefined) throw new Error(`missing ${what}`);
  return value;
}

const shown = (app: TestApp): Shown[] =>
  app.service.snapshot().timeline.filter((l): l is Shown => l.kind !== 'system');

describe('app service: history that lasts', () => {
  let group: TestGroup;
  let host: TestApp;
  let port: number;
  const apps: TestApp[] = [];

  beforeAll(async () => {
    group = makeTestGroup(['alice', 'bob']);
    host = await createTestApp();
    port = required(unwrap(await startRelay(host, group.relayBundle, TEST_PASSWORD)).port, 'relay port');
  }, 60_000);

  afterAll(async () => {
    await Promise.all([...apps, host].map((a) => a.service.dispose()));
  });

  async function member(name: string, reuse?: TestApp): Promise<TestApp> {
    const app = await createTestApp(reuse ? { dataDir: reuse.dataDir, settingsDir: reuse.settingsDir } : {});
    apps.push(app);
    if (reuse) unwrap(await app.service.unlockIdentity({ password: TEST_PASSWORD }));
    else unwrap(await importBundle(app, required(group.bundles[name], name), TEST_PASSWORD));
    return app;
  }

  async function connect(...members: TestApp[]): Promise<void> {
    for (const app of members) unwrap(await app.service.connect({ host: '127.0.0.1', port }));
    await until(
      () => members.every((a) => a.service.snapshot().connection.state === 'Chatting'),
      'all chatting',
    );
  }

  it('shows the stored history at unlock, pages back to the first message, searches it, and puts what was missed below "While you were away"', async () => {
    let alice = await member('alice');
    let bob = await member('bob');
    await connect(alice, bob);

    // More than the window starts with, so that older pages are needed.
    const total = TIMELINE_START_LINES + 150;
    for (let i = 1; i <= total; i++) unwrap(await alice.service.send({ text: `note ${i} of the plan` }));
    unwrap(await alice.service.send({ text: 'the budget is 4,200' }));
    await until(() => shown(bob).some((l) => l.text === 'the budget is 4,200'), 'bob reads them all');
    // The relay acknowledges in order: the last one stored means all are.
    await until(
      () =>
        shown(alice).some((l) => l.kind === 'own' && l.status === 'sent' && l.text === 'the budget is 4,200'),
      'all of alice’s stored by the relay',
    );
    // A stored own message carries its place in the history.
    expect(shown(alice).every((l) => l.historyId !== undefined)).toBe(true);
    for (const app of [alice, bob]) await app.service.dispose();

    // On disk (the store, its -wal/-shm, the settings, the kept bundle) no message text is readable.
    const dirs = [alice, bob].flatMap((a) => [a.dataDir, a.settingsDir]);
    expect(dirs.flatMap(filesUnder).some((f) => f.endsWith('member-state.db') && statSync(f).size > 0)).toBe(
      true,
    );
    expect(plaintextFound(dirs, ['the budget is 4,200', 'note 7 of the plan', 'of the plan'])).toEqual([]);

    // Restarted (no keystore here: unlock with the password): the history is there before any connect.
    alice = await member('alice', alice);
    bob = await member('bob', bob);
    expect(alice.service.snapshot().connection.state).toBe('Disconnected');
    const start = shown(alice);
    expect(start).toHaveLength(TIMELINE_START_LINES);
    expect(start.at(-1)).toMatchObject({ kind: 'own', status: 'sent', text: 'the budget is 4,200' });

    // Older pages before the oldest shown, until the history says there are none.
    const texts = start.map((l) => l.text);
    let before = required(start[0]?.historyId, 'history id');
    let more = true;
    while (more) {
      const page = unwrap(await alice.service.historyPage({ beforeId: before, limit: 100 }));
      expect(page.lines.length).toBeGreaterThan(0);
      texts.unshift(...page.lines.map((l) => (l.kind === 'system' ? '' : l.text)));
      before = required(page.lines[0]?.kind !== 'system' ? page.lines[0]?.historyId : undefined, 'id');
      more = page.more;
    }
    expect(texts).toEqual([
      ...Array.from({ length: total }, (_, i) => `note ${i + 1} of the plan`),
      'the budget is 4,200',
    ]);

    // Search: an old message by a word of it, case-insensitively; short searches too; nothing for a miss.
    expect(unwrap(await bob.service.searchHistory({ text: 'NOTE 7 OF' })).lines).toMatchObject([
      { kind: 'message', from: 'alice', text: 'note 7 of the plan' },
    ]);
    expect(unwrap(await bob.service.searchHistory({ text: '4,' })).lines.map((l) => l.kind)).toEqual([
      'message',
    ]);
    expect(unwrap(await bob.service.searchHistory({ text: 'not in any message' })).lines).toEqual([]);

    // Bob is away while alice writes; when he connects, what he missed comes below the divider.
    await connect(alice);
    const missed = ['while bob was away 1', 'while bob was away 2', 'while bob was away 3'];
    for (const text of missed) unwrap(await alice.service.send({ text }));
    await until(
      () =>
        missed.every((t) =>
          shown(alice).some((l) => l.text === t && l.kind === 'own' && l.status === 'sent'),
        ),
      'stored for bob',
    );
    await connect(bob);
    await until(() => missed.every((t) => shown(bob).some((l) => l.text === t)), 'bob catches up');
    const lines = bob.service.snapshot().timeline;
    const away = lines.findIndex((l) => l.kind === 'system' && l.event === 'away');
    expect(away).toBeGreaterThan(0);
    expect(
      lines
        .slice(away + 1)
        .filter((l) => l.kind === 'message')
        .map((l) => l.text),
    ).toEqual(missed);
    // Above it, the history he had read, shown once each.
    const budget = lines.filter((l) => l.kind === 'message' && l.text === 'the budget is 4,200');
    expect(budget).toHaveLength(1);
    expect(lines.indexOf(required(budget[0], 'budget line'))).toBeLessThan(away);

    // Live messages after that get no divider of their own.
    unwrap(await alice.service.send({ text: 'live again' }));
    await until(() => shown(bob).some((l) => l.text === 'live again'), 'bob reads it live');
    expect(
      bob.service.snapshot().timeline.filter((l) => l.kind === 'system' && l.event === 'away'),
    ).toHaveLength(1);
  }, 180_000);

  it('a locked identity has no history to read, in words', async () => {
    const alice = await member('alice');
    await alice.service.dispose();
    const again = await createTestApp({ dataDir: alice.dataDir, settingsDir: alice.settingsDir });
    apps.push(again);
    expect(again.service.snapshot().identity.status).toBe('locked');
    expect(again.service.snapshot().timeline).toEqual([]);
    const page = await again.service.historyPage({});
    expect(page).toMatchObject({ ok: false });
    const search = await again.service.searchHistory({ text: 'plan' });
    expect(search).toMatchObject({ ok: false });
  }, 60_000);
});
