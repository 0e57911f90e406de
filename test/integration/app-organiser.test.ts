/**
 * The organiser's tools (issue 12, item 3) under plain Node: real app services, the real PKI
 * worker (the CA key is opened there), a real relay child process and real engines. Alice holds
 * the group's ca.p12: she opens it, adds dave (his bundle written beside it, the roster's next
 * version published through her running engine), and removes carol, who is told so.
 */
import { existsSync, readFileSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { afterAll, describe, expect, it } from 'vitest';
import { MIN_NEW_PASSWORD_CHARS } from '../../src-main/cli/group/options.js';
import { createGroupCa, writeBundle } from '../../src-main/core/pki/index.js';
import { LIMITS } from '../../src-main/core/protocol/schemas.js';
import { verifyRoster } from '../../src-main/core/roster/index.js';
import { MAX_REMOVAL_REASON_CHARS, MIN_BUNDLE_PASSWORD_CHARS } from '../../src-shared/limits.js';
import type { ChatLine } from '../../src-shared/model.js';
import { makeTestGroup, TEST_KDF_ITERATIONS, TEST_PASSWORD } from '../helpers/group.js';
import { createTestApp, importBundle, startRelay, until, unwrap, type TestApp } from './app-harness.js';

const CA_PASSWORD = 'the organiser keeps this one';
const DAVE_PASSWORD = 'a passphrase for dave';

const apps: TestApp[] = [];
afterAll(async () => {
  await Promise.all(apps.map((a) => a.service.dispose()));
});

const texts = (app: TestApp): string[] =>
  app.service
    .snapshot()
    .timeline.filter((l): l is Exclude<ChatLine, { kind: 'system' }> => l.kind !== 'system')
    .map((l) => l.text);

async function openCa(app: TestApp, path: string, password: string) {
  app.dialogs.bundles.push(path);
  const choice = unwrap(await app.service.chooseBundle({ purpose: 'ca' }));
  if (!choice) throw new Error('dialog cancelled');
  return app.service.openGroupCa({ token: choice.token, password });
}

describe('the limits the window and the organiser tools share', () => {
  it('are the protocol’s reason bound and the CLI’s password minimum', () => {
    expect(MAX_REMOVAL_REASON_CHARS).toBe(LIMITS.reasonChars);
    expect(MIN_BUNDLE_PASSWORD_CHARS).toBe(MIN_NEW_PASSWORD_CHARS);
  });
});

describe('app: the organiser adds and removes members', () => {
  it('opens only this group’s CA bundle, adds dave (who reads what follows), removes carol (who is told)', async () => {
    const group = makeTestGroup(['alice', 'bob', 'carol']);
    const caPath = join(group.dir, 'ca.p12');
    writeFileSync(
      caPath,
      writeBundle(group.ca, group.ca.certificate, CA_PASSWORD, { kdfIterations: TEST_KDF_ITERATIONS }),
    );
    const otherCa = createGroupCa({ name: 'Another Group CA' });
    const otherCaPath = join(group.dir, 'other-ca.p12');
    writeFileSync(
      otherCaPath,
      writeBundle(otherCa, otherCa.certificate, CA_PASSWORD, { kdfIterations: TEST_KDF_ITERATIONS }),
    );

    const host = await createTestApp();
    apps.push(host);
    const port = unwrap(await startRelay(host, group.relayBundle, TEST_PASSWORD)).port as number;
    const [alice, carol] = [await createTestApp(), await createTestApp()];
    apps.push(alice, carol);
    unwrap(await importBundle(alice, group.bundles.alice as string, TEST_PASSWORD));
    unwrap(await importBundle(carol, group.bundles.carol as string, TEST_PASSWORD));
    for (const app of [alice, carol]) unwrap(await app.service.connect({ host: '127.0.0.1', port }));
    await until(
      () =>
        [alice, carol].every((a) => a.service.snapshot().connection.state === 'Chatting') &&
        alice.service.snapshot().key?.safetyNumber === carol.service.snapshot().key?.safetyNumber,
      'alice and carol chatting under one key',
    );
    unwrap(await alice.service.send({ text: 'before dave' }));
    await until(() => texts(carol).includes('before dave'), 'carol reads it');

    // Only this group's CA bundle opens, and only with its password.
    expect(await openCa(alice, caPath, 'not the password')).toMatchObject({
      ok: false,
      error: { code: 'WrongPassword' },
    });
    expect(await openCa(alice, group.bundles.bob as string, TEST_PASSWORD)).toMatchObject({
      ok: false,
      error: { code: 'NotGroupCa' },
    });
    expect(await openCa(alice, otherCaPath, CA_PASSWORD)).toMatchObject({
      ok: false,
      error: { code: 'NotGroupCa' },
    });
    expect(alice.service.snapshot().organiser).toBeUndefined();
    expect(
      await alice.service.addMember({ name: 'dave', password: DAVE_PASSWORD, caPassword: CA_PASSWORD }),
    ).toMatchObject({ ok: false, error: { code: 'NoGroupCa' } });

    const view = unwrap(await openCa(alice, caPath, CA_PASSWORD));
    expect(view).toMatchObject({ caFile: 'ca.p12', rosterVersion: 1, relays: ['relay'], removed: [] });
    expect(view.members.map((m) => [m.name, m.online])).toEqual([
      ['alice', true],
      ['bob', false],
      ['carol', true],
    ]);
    expect(view.members.find((m) => m.name === 'bob')?.lastSeen).toBeUndefined();
    expect(alice.service.snapshot().organiser?.rosterVersion).toBe(1);

    // A wrong CA password changes nothing: no bundle, the roster as it was.
    expect(
      await alice.service.addMember({ name: 'erin', password: DAVE_PASSWORD, caPassword: 'wrong' }),
    ).toMatchObject({ ok: false, error: { code: 'WrongPassword' } });
    expect(existsSync(join(group.dir, 'erin.p12'))).toBe(false);
    expect(verifyRoster(readFileSync(group.rosterPath), group.ca.certificate).version).toBe(1);

    // dave is added: his bundle beside ca.p12, roster v2 in roster.scx and at the relay.
    const added = unwrap(
      await alice.service.addMember({ name: 'dave', password: DAVE_PASSWORD, caPassword: CA_PASSWORD }),
    );
    expect(added).toMatchObject({ name: 'dave', rosterVersion: 2, published: true });
    expect(added.bundlePath).toBe(join(group.dir, 'dave.p12'));
    const fileRoster = verifyRoster(readFileSync(group.rosterPath), group.ca.certificate);
    expect(fileRoster.version).toBe(2);
    expect(fileRoster.member('dave')?.fingerprintHex).toBe(added.fingerprint);
    expect(alice.service.snapshot().organiser?.members.map((m) => m.name)).toEqual([
      'alice',
      'bob',
      'carol',
      'dave',
    ]);
    expect(
      await alice.service.addMember({ name: 'Dave', password: DAVE_PASSWORD, caPassword: CA_PASSWORD }),
    ).toMatchObject({ ok: false, error: { code: 'RosterRefused', details: ['RosterDuplicate'] } });
    await until(
      () => carol.service.snapshot().timeline.some((l) => l.kind === 'system' && l.event === 'roster'),
      'carol sees roster v2',
    );

    // dave imports the bundle alice wrote, connects, and reads what follows (not what came before).
    const dave = await createTestApp();
    apps.push(dave);
    unwrap(await importBundle(dave, added.bundlePath, DAVE_PASSWORD));
    unwrap(await dave.service.connect({ host: '127.0.0.1', port }));
    await until(
      () =>
        [alice, carol, dave].every((a) => a.service.snapshot().key?.members.includes('dave') === true) &&
        new Set([alice, carol, dave].map((a) => a.service.snapshot().key?.safetyNumber)).size === 1,
      'one key with dave',
    );
    unwrap(await alice.service.send({ text: 'welcome, dave' }));
    await until(() => texts(dave).includes('welcome, dave'), 'dave reads it');
    expect(texts(dave)).not.toContain('before dave');

    // Removing oneself is refused; carol is removed with a reason and told so.
    expect(
      await alice.service.removeMember({ name: 'alice', reason: '', caPassword: CA_PASSWORD }),
    ).toMatchObject({ ok: false, error: { code: 'RosterRefused' } });
    const removed = unwrap(
      await alice.service.removeMember({ name: 'carol', reason: 'lost laptop', caPassword: CA_PASSWORD }),
    );
    expect(removed).toEqual({ name: 'carol', rosterVersion: 3, published: true });
    await until(() => carol.service.snapshot().connection.cause === 'removed', 'carol is removed');
    expect(carol.service.snapshot().timeline.some((l) => l.kind === 'system' && l.event === 'removed')).toBe(
      true,
    );
    await until(
      () => alice.service.snapshot().organiser?.members.find((m) => m.name === 'carol') === undefined,
      'carol gone from the roster view',
    );
    const after = alice.service.snapshot().organiser;
    expect(after?.removed).toMatchObject([{ name: 'carol', reason: 'lost laptop' }]);
    await until(
      () => alice.service.snapshot().key?.members.includes('carol') === false,
      'a key without carol',
    );
    unwrap(await alice.service.send({ text: 'without carol' }));
    await until(() => texts(dave).includes('without carol'), 'dave reads it');
    expect(texts(carol)).not.toContain('without carol');
    expect(verifyRoster(readFileSync(group.rosterPath), group.ca.certificate).version).toBe(3);

    // dave leaves: offline now, last seen by this app a moment ago.
    const beforeLeaving = Date.now();
    unwrap(await dave.service.disconnect());
    await until(
      () => alice.service.snapshot().organiser?.members.find((m) => m.name === 'dave')?.online === false,
      'dave offline in the roster view',
    );
    const daveSeen = alice.service.snapshot().organiser?.members.find((m) => m.name === 'dave')?.lastSeen;
    expect(daveSeen).toBeGreaterThanOrEqual(beforeLeaving);

    // Closing the CA bundle hides the tools again.
    unwrap(await alice.service.closeGroupCa());
    expect(alice.service.snapshot().organiser).toBeUndefined();
  }, 180_000);

  it('offline, a change is kept in the store and roster.scx, and reaches the relay at the next connect', async () => {
    const group = makeTestGroup(['alice', 'bob']);
    const caPath = join(group.dir, 'ca.p12');
    writeFileSync(
      caPath,
      writeBundle(group.ca, group.ca.certificate, CA_PASSWORD, { kdfIterations: TEST_KDF_ITERATIONS }),
    );
    const host = await createTestApp();
    apps.push(host);
    const port = unwrap(await startRelay(host, group.relayBundle, TEST_PASSWORD)).port as number;
    const [alice, bob] = [await createTestApp(), await createTestApp()];
    apps.push(alice, bob);
    unwrap(await importBundle(alice, group.bundles.alice as string, TEST_PASSWORD));
    unwrap(await importBundle(bob, group.bundles.bob as string, TEST_PASSWORD));
    unwrap(await bob.service.connect({ host: '127.0.0.1', port }));
    await until(() => bob.service.snapshot().connection.state === 'Chatting', 'bob chatting');

    // Never connected, alice's store holds no roster: roster.scx beside ca.p12 is the base.
    unwrap(await openCa(alice, caPath, CA_PASSWORD));
    const added = unwrap(
      await alice.service.addMember({ name: 'dave', password: DAVE_PASSWORD, caPassword: CA_PASSWORD }),
    );
    expect(added).toMatchObject({ rosterVersion: 2, published: false });
    unwrap(await alice.service.connect({ host: '127.0.0.1', port }));
    await until(
      () => bob.service.snapshot().timeline.some((l) => l.kind === 'system' && l.event === 'roster'),
      'bob gets roster v2 once alice connects',
    );
    const line = bob.service.snapshot().timeline.find((l) => l.kind === 'system' && l.event === 'roster');
    expect(line?.kind === 'system' && line.text).toBe('The group changed (roster v2): dave added.');
  }, 120_000);
});
