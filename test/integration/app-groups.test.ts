/**
 * Several groups in one app (issue 12, item 2) under plain Node, with two real relay child
 * processes and real engines: alice belongs to two groups (two CAs), imports both bundles, is
 * connected to both at once, reads unread counts per group, switches between them, searches each
 * one's own history, restarts with both kept, and removes one (its history with it). An app from
 * before several groups (one kept identity) is migrated.
 */
import { existsSync } from 'node:fs';
import { afterAll, describe, expect, it } from 'vitest';
import { memberStateDir } from '../../src-main/app/member-state.js';
import { Settings } from '../../src-main/app/settings.js';
import type { ChatLine } from '../../src-shared/model.js';
import { makeTestGroup, TEST_PASSWORD } from '../helpers/group.js';
import { importBundle, startRelay, testApps, until, unwrap, type TestApp } from './app-harness.js';

const { app, disposeAll } = testApps();
afterAll(disposeAll);

const texts = (a: TestApp): string[] =>
  a.service
    .snapshot()
    .timeline.filter((l): l is Exclude<ChatLine, { kind: 'system' }> => l.kind !== 'system')
    .map((l) => l.text);

describe('app: several groups', () => {
  it('holds two groups, connected at once, with unread counts per group, switching, search and removal', async () => {
    const team = makeTestGroup(['alice', 'bob']);
    const family = makeTestGroup(['alice', 'carol']);
    const ports: number[] = [];
    for (const g of [team, family]) {
      const host = await app();
      ports.push(unwrap(await startRelay(host, g.relayBundle, TEST_PASSWORD)).port as number);
    }
    const [teamPort, familyPort] = ports as [number, number];
    const alice = await app();
    const bob = await app();
    const carol = await app();
    unwrap(await importBundle(bob, team.bundles.bob as string, TEST_PASSWORD));
    unwrap(await importBundle(carol, family.bundles.carol as string, TEST_PASSWORD));

    // Two bundles of two groups: both kept, the one imported last shown.
    const teamView = unwrap(await importBundle(alice, team.bundles.alice as string, TEST_PASSWORD));
    const familyView = unwrap(await importBundle(alice, family.bundles.alice as string, TEST_PASSWORD));
    const teamId = `${teamView.groupId}/alice`;
    const familyId = `${familyView.groupId}/alice`;
    let snap = alice.service.snapshot();
    expect(snap.groups.map((g) => g.id)).toEqual([teamId, familyId]);
    expect(snap.activeGroup).toBe(familyId);

    // Each group its own connection: family now, then team, both stay up.
    unwrap(await alice.service.connect({ host: '127.0.0.1', port: familyPort }));
    unwrap(await alice.service.switchGroup({ id: teamId }));
    expect(alice.service.snapshot().connection.state).toBe('Disconnected');
    unwrap(await alice.service.connect({ host: '127.0.0.1', port: teamPort }));
    unwrap(await bob.service.connect({ host: '127.0.0.1', port: teamPort }));
    unwrap(await carol.service.connect({ host: '127.0.0.1', port: familyPort }));
    await until(
      () => alice.service.snapshot().groups.every((g) => g.connection === 'Chatting'),
      'alice chatting in both groups',
    );
    for (const other of [bob, carol])
      await until(() => other.service.snapshot().connection.state === 'Chatting', 'chatting');

    // Shown: team. A message in family counts there; the team's does not (shown, in front).
    unwrap(await carol.service.send({ text: 'dinner on sunday?' }));
    await until(
      () => alice.service.snapshot().groups.find((g) => g.id === familyId)?.unread === 1,
      'one unread in family',
    );
    expect(texts(alice)).not.toContain('dinner on sunday?');
    unwrap(await bob.service.send({ text: 'standup moved to 10' }));
    await until(() => texts(alice).includes('standup moved to 10'), 'alice reads the team');
    expect(alice.service.snapshot().groups.map((g) => g.unread)).toEqual([0, 1]);
    expect(alice.unreadCounts.at(-1)).toBe(1);
    // Away from the window: the team's message counts too, and the badge sums both.
    alice.service.windowFocus(false);
    unwrap(await bob.service.send({ text: 'and bring the notes' }));
    await until(() => alice.service.unreadCount === 2, 'two unread in all');
    alice.service.windowFocus(true);
    expect(alice.service.snapshot().groups.map((g) => g.unread)).toEqual([0, 1]);

    // Switching shows family's own timeline and reads it; the relay address is the group's.
    snap = unwrap(await alice.service.switchGroup({ id: familyId }));
    expect(snap.activeGroup).toBe(familyId);
    expect(texts(alice)).toContain('dinner on sunday?');
    expect(texts(alice)).not.toContain('standup moved to 10');
    expect(snap.groups.map((g) => g.unread)).toEqual([0, 0]);
    expect(alice.unreadCounts.at(-1)).toBe(0);
    expect(snap.settings.relayAddress?.port).toBe(familyPort);
    expect(snap.members.map((m) => m.name).sort()).toEqual(['alice', 'carol']);

    // Search looks in the shown group's history only.
    expect(unwrap(await alice.service.searchHistory({ text: 'standup' })).lines).toEqual([]);
    expect(unwrap(await alice.service.searchHistory({ text: 'sunday' })).lines).toHaveLength(1);
    unwrap(await alice.service.switchGroup({ id: teamId }));
    expect(unwrap(await alice.service.searchHistory({ text: 'standup' })).lines).toHaveLength(1);
    expect(alice.service.snapshot().settings.relayAddress?.port).toBe(teamPort);

    // Restart: both groups kept (no keystore here: each is unlocked with its password).
    await alice.service.dispose();
    const again = await app({ dataDir: alice.dataDir, settingsDir: alice.settingsDir });
    snap = again.service.snapshot();
    expect(snap.groups.map((g) => [g.id, g.status])).toEqual([
      [teamId, 'locked'],
      [familyId, 'locked'],
    ]);
    expect(snap.groups.map((g) => g.groupName)).toEqual(['Test Group CA', 'Test Group CA']);
    expect(snap.activeGroup).toBe(teamId);
    unwrap(await again.service.unlockIdentity({ password: TEST_PASSWORD }));
    expect(texts(again)).toEqual(['standup moved to 10', 'and bring the notes']);
    unwrap(await again.service.switchGroup({ id: familyId }));
    expect(again.service.snapshot().identity.status).toBe('locked');
    unwrap(await again.service.unlockIdentity({ password: TEST_PASSWORD }));
    expect(texts(again)).toEqual(['dinner on sunday?']);

    // Removing family removes its history; team is shown and keeps its own.
    const familyState = memberStateDir(again.dataDir, { groupId: familyView.groupId, member: 'alice' });
    expect(existsSync(familyState)).toBe(true);
    unwrap(await again.service.removeIdentity());
    expect(existsSync(familyState)).toBe(false);
    snap = again.service.snapshot();
    expect(snap.groups.map((g) => g.id)).toEqual([teamId]);
    expect(snap.activeGroup).toBe(teamId);
    expect(texts(again)).toEqual(['standup moved to 10', 'and bring the notes']);
    expect(await again.service.switchGroup({ id: familyId })).toMatchObject({
      ok: false,
      error: { code: 'InvalidArgument' },
    });
  }, 240_000);

  it('an app from before several groups keeps its identity, marks and relay address', async () => {
    const team = makeTestGroup(['alice', 'bob']);
    const first = await app();
    const view = unwrap(await importBundle(first, team.bundles.alice as string, TEST_PASSWORD));
    await first.service.dispose();
    // The settings as the earlier version wrote them: one identity, marks and relay at the top.
    const settings = new Settings(first.settings);
    const kept = settings.get('identities')?.[0];
    if (!kept) throw new Error('no kept identity');
    const { verified: _v, relayAddress: _r, groupName: _g, ...legacy } = kept;
    settings.delete('identities');
    settings.set('identity', legacy);
    settings.set('verified', { bob: 'bb'.repeat(32) });
    settings.set('relayAddress', { host: '127.0.0.1', port: 7443 });

    const again = await app({ dataDir: first.dataDir, settingsDir: first.settingsDir });
    const after = new Settings(again.settings);
    expect(after.get('identity')).toBeUndefined();
    expect(after.get('verified')).toBeUndefined();
    expect(after.get('identities')).toMatchObject([
      {
        name: 'alice',
        groupId: view.groupId,
        verified: { bob: 'bb'.repeat(32) },
        relayAddress: { port: 7443 },
      },
    ]);
    expect(again.service.snapshot().groups.map((g) => g.id)).toEqual([`${view.groupId}/alice`]);
    unwrap(await again.service.unlockIdentity({ password: TEST_PASSWORD }));
    expect(again.service.snapshot().identity.status).toBe('ready');
  }, 60_000);
});
