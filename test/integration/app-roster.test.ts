/**
 * The app and roster changes (real app services, a real relay process, rosters published the way
 * `group publish` does): the window says who was added and who was removed, and a removed member
 * sees "You were removed from this group" and stops reconnecting.
 */
import { readFileSync } from 'node:fs';
import { afterEach, describe, expect, it } from 'vitest';
import { publishRoster } from '../../src-main/client/roster-publish.js';
import { LocalIdentity } from '../../src-main/core/pki/local-identity.js';
import type { ChatLine } from '../../src-shared/model.js';
import { makeTestGroup, TEST_PASSWORD, type TestGroup } from '../helpers/group.js';
import { createTestApp, importBundle, startRelay, until, unwrap, type TestApp } from './app-harness.js';

let apps: TestApp[] = [];

afterEach(async () => {
  await Promise.all(apps.map((a) => a.service.dispose()));
  apps = [];
});

const systemLines = (app: TestApp, event: string): Extract<ChatLine, { kind: 'system' }>[] =>
  app.service
    .snapshot()
    .timeline.filter(
      (l): l is Extract<ChatLine, { kind: 'system' }> => l.kind === 'system' && l.event === event,
    );

function bundle(group: TestGroup, name: string): string {
  const path = group.bundles[name];
  if (!path) throw new Error(`no bundle for ${name}`);
  return path;
}

describe('app: roster changes', { timeout: 120_000 }, () => {
  it('says who was added and who was removed; the removed member is told so and stops reconnecting', async () => {
    const group = makeTestGroup(['alice', 'bob', 'carol', 'erin']);
    const host = await createTestApp();
    apps.push(host);
    const port = unwrap(await startRelay(host, group.relayBundle, TEST_PASSWORD)).port as number;
    const names = ['alice', 'bob', 'carol'];
    const members = await Promise.all(names.map(() => createTestApp()));
    apps.push(...members);
    const [alice, bob, carol] = members as [TestApp, TestApp, TestApp];
    for (const [i, app] of members.entries())
      unwrap(await importBundle(app, bundle(group, names[i] as string), TEST_PASSWORD));
    for (const app of members) unwrap(await app.service.connect({ host: '127.0.0.1', port }));
    await until(
      () =>
        members.every((a) => a.service.snapshot().connection.state === 'Chatting') &&
        new Set(members.map((a) => a.service.snapshot().key?.safetyNumber)).size === 1,
      'three chatting under one key',
    );
    // The roster each started with is no news.
    for (const app of members) expect(systemLines(app, 'roster')).toEqual([]);

    // erin (offline) publishes, as `group publish` would: a login as alice would replace hers.
    const publisher = LocalIdentity.fromBundleFile(readFileSync(bundle(group, 'erin')), TEST_PASSWORD);
    const publish = async () =>
      (
        await publishRoster({
          identity: publisher,
          relay: { host: '127.0.0.1', port },
          roster: group.roster(),
        })
      ).version;
    group.addMember('dave');
    expect(await publish()).toBe(2);
    for (const app of members) await until(() => systemLines(app, 'roster').length === 1, 'roster v2');
    expect(systemLines(alice, 'roster')[0]?.text).toBe('The group changed (roster v2): dave added.');

    group.changeRoster({ kind: 'remove-member', name: 'carol', reason: 'lost laptop' });
    expect(await publish()).toBe(3);
    await until(() => systemLines(carol, 'removed').length === 1, 'carol told she was removed');
    expect(systemLines(carol, 'removed')[0]?.text).toBe('You were removed from this group.');
    const removed = carol.events.find((e) => e.type === 'error' && e.error.code === 'Removed');
    expect(removed?.type === 'error' && removed.error.details?.join(' ')).toMatch(/lost laptop/);
    await until(() => carol.service.snapshot().connection.state === 'Failed', 'carol stops');
    for (const app of [alice, bob]) {
      await until(() => systemLines(app, 'roster').length === 2, 'roster v3');
      await until(
        () => app.service.snapshot().key?.members.includes('carol') === false,
        'a key without carol',
      );
    }
    expect(systemLines(bob, 'roster')[1]?.text).toBe('The group changed (roster v3): carol removed.');
    unwrap(await alice.service.send({ text: 'without carol' }));
    await until(
      () => bob.service.snapshot().timeline.some((l) => l.kind === 'message' && l.text === 'without carol'),
      'bob reads alice',
    );
    // Removed is final: no retry is scheduled, and the window shows no reconnect.
    expect(carol.service.snapshot().connection.retryInMs).toBeUndefined();
    expect(carol.service.snapshot().connection.state).toBe('Failed');
    // The header says "Removed": the view carries the typed cause, not only the words.
    expect(carol.service.snapshot().connection.cause).toBe('removed');
  });
});
