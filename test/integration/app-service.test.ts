/**
 * The desktop app's service under plain Node, against a real relay child process and real chat
 * engines: identity import and keeping, connect, members with verified marks, safety numbers,
 * chat both ways, leave + re-key, fingerprint-change warnings, relay start/stop/crash, group
 * creation, the member state store (highest epoch) across restarts.
 */
import { existsSync, readdirSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { mkdtempSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { AppMemberState, memberStateDir, stateKeyId } from '../../src-main/app/member-state.js';
import type { SecretStoragePort } from '../../src-main/app/ports.js';
import { Settings } from '../../src-main/app/settings.js';
import { SALT_FILE, STATE_DB_FILE } from '../../src-main/client/state/store-key.js';
import { readBundle, writeBundle } from '../../src-main/core/pki/bundle.js';
import { Certificate } from '../../src-main/core/pki/certificate.js';
import { issueCertificate } from '../../src-main/core/pki/issue.js';
import { verifyRoster } from '../../src-main/core/roster/index.js';
import type { ChatLine } from '../../src-shared/model.js';
import { publishRoster } from '../../src-main/client/roster-publish.js';
import { LocalIdentity } from '../../src-main/core/pki/local-identity.js';
import { makeTestGroup, readTestRoster, TEST_PASSWORD, type TestGroup } from '../helpers/group.js';
import { noSecretStorage as noKeystore } from '../../src-main/app/node-ports.js';
import { withoutMac } from '../helpers/pfx-craft.js';
import {
  createTestApp,
  importBundle,
  memorySecretStorage,
  startRelay,
  until,
  unwrap,
  type TestApp,
} from './app-harness.js';

/** The app's one kept identity, as the settings hold it (kept-identities.ts). */
function keptIdentity(app: TestApp): { file: string; verified?: Record<string, string> } {
  const kept = new Settings(app.settings).get('identities')?.[0];
  if (!kept) throw new Error('no kept identity');
  return kept;
}

const messages = (app: TestApp): Extract<ChatLine, { kind: 'message' }>[] =>
  app.service
    .snapshot()
    .timeline.filter((l): l is Extract<ChatLine, { kind: 'message' }> => l.kind === 'message');

function required<T>(value: T | null | undefined, what: string): T {
  if (value === null || value === undefined) throw new Error(`missing ${what}`);
  return value;
}

const bundleOf = (group: TestGroup, name: string): string =>
  required(group.bundles[name], `bundle of ${name}`);

/** Counts how often a 10 ms interval fires while `work` runs (is the event loop free?). */
async function ticksDuring<T>(work: () => Promise<T>): Promise<{ value: T; ticks: number }> {
  let ticks = 0;
  const timer = setInterval(() => {
    ticks += 1;
  }, 10);
  try {
    return { value: await work(), ticks };
  } finally {
    clearInterval(timer);
  }
}

const fingerprintOf = (path: string): string =>
  readBundle(readFileSync(path), TEST_PASSWORD).certificate.fingerprintHex;

describe('app service: identity', () => {
  let group: TestGroup;
  beforeAll(() => {
    group = makeTestGroup(['alice']);
  });

  it('refuses a wrong password, a relay bundle and a file that is not a bundle, in plain words', async () => {
    const app = await createTestApp();
    const wrong = await importBundle(app, bundleOf(group, 'alice'), 'not the password');
    expect(wrong).toMatchObject({ ok: false, error: { code: 'WrongPassword' } });
    if (!wrong.ok) expect(wrong.error.message).toMatch(/wrong password/i);

    const relay = await importBundle(app, group.relayBundle, TEST_PASSWORD);
    expect(relay).toMatchObject({ ok: false, error: { code: 'WrongRole' } });

    const junk = join(group.dir, 'notes.p12');
    writeFileSync(junk, 'this is not a PKCS#12 file');
    const notBundle = await importBundle(app, junk, TEST_PASSWORD);
    expect(notBundle).toMatchObject({ ok: false, error: { code: 'NotABundle' } });

    const empty = join(group.dir, 'empty.p12');
    writeFileSync(empty, '');
    expect(await importBundle(app, empty, TEST_PASSWORD)).toMatchObject({
      ok: false,
      error: { code: 'NotABundle' },
    });

    expect(app.service.snapshot().identity).toEqual({ status: 'none' });
  });

  it('refuses a token that no dialog produced', async () => {
    const app = await createTestApp();
    const result = await app.service.importIdentity({ token: 'A'.repeat(24), password: TEST_PASSWORD });
    expect(result).toMatchObject({ ok: false, error: { code: 'ChoiceExpired' } });
    app.dialogs.bundles.push(null);
    expect(await app.service.chooseBundle({ purpose: 'identity' })).toEqual({ ok: true, value: null });
  });

  it('imports a bundle: name, issuer, validity, fingerprint; keeps only the protected .p12 without a keystore', async () => {
    const app = await createTestApp();
    const view = unwrap(await importBundle(app, bundleOf(group, 'alice'), TEST_PASSWORD));
    expect(view.name).toBe('alice');
    expect(view.issuer).toBe('Test Group CA');
    expect(view.fingerprint).toBe(fingerprintOf(bundleOf(group, 'alice')));
    expect(view.groupId).toBe(group.ca.certificate.fingerprintHex);
    expect(view.caFingerprint).toBe(group.ca.certificate.fingerprintHex);
    expect(view.notAfter).toBeGreaterThan(Date.now());
    expect(view.storage).toBe('password');
    expect(app.events.some((e) => e.type === 'identity')).toBe(true);

    // The kept copy is the password-protected bundle itself; the password is stored nowhere.
    const keptFile = join(app.dataDir, keptIdentity(app).file);
    const kept = readFileSync(keptFile);
    expect(kept.equals(readFileSync(bundleOf(group, 'alice')))).toBe(true);
    const stored = JSON.stringify(readFileSync(join(app.settingsDir, 'settings.json'), 'utf8'));
    expect(stored).not.toContain(TEST_PASSWORD);

    // Restart: locked until the password is given again.
    const again = await createTestApp({ dataDir: app.dataDir, settingsDir: app.settingsDir });
    expect(again.service.snapshot().identity).toMatchObject({ status: 'locked', name: 'alice' });
    expect(await again.service.connect({ host: '127.0.0.1', port: 1 })).toMatchObject({
      ok: false,
      error: { code: 'IdentityLocked' },
    });
    expect(await again.service.unlockIdentity({ password: 'nope' })).toMatchObject({
      ok: false,
      error: { code: 'WrongPassword' },
    });
    expect(unwrap(await again.service.unlockIdentity({ password: TEST_PASSWORD })).name).toBe('alice');

    unwrap(await again.service.removeIdentity());
    expect(existsSync(keptFile)).toBe(false);
    expect(again.service.snapshot().identity).toEqual({ status: 'none' });
  });

  it('refuses a tampered bundle at import and a kept bundle tampered later at unlock (BundleIntegrity)', async () => {
    const app = await createTestApp();
    const dir = mkdtempSync(join(tmpdir(), 'scx-app-tampered-'));
    const stripped = join(dir, 'alice.p12');
    writeFileSync(stripped, withoutMac(readFileSync(bundleOf(group, 'alice'))));
    const refused = await importBundle(app, stripped, TEST_PASSWORD);
    expect(refused).toMatchObject({ ok: false, error: { code: 'NotABundle' } });
    expect(refused.ok ? '' : refused.error.message).toMatch(/integrity check failed/);
    expect(app.service.snapshot().identity).toEqual({ status: 'none' });

    // A good import, then the kept copy is changed on disk: the next unlock refuses it.
    const view = unwrap(await importBundle(app, bundleOf(group, 'alice'), TEST_PASSWORD));
    expect(view.caFingerprint).toBe(group.ca.certificate.fingerprintHex);
    const kept = join(app.dataDir, keptIdentity(app).file);
    writeFileSync(kept, withoutMac(readFileSync(kept)));
    const again = await createTestApp({ dataDir: app.dataDir, settingsDir: app.settingsDir });
    const unlock = await again.service.unlockIdentity({ password: TEST_PASSWORD });
    expect(unlock).toMatchObject({ ok: false, error: { code: 'NotABundle' } });
    expect(unlock.ok ? '' : unlock.error.message).toMatch(/integrity check failed/);
  });

  it('opens bundles in the PKI worker: the event loop keeps running during a slow import', async () => {
    // 100,000 PBKDF2 iterations: about half a second of node-forge work to open.
    const dave = issueCertificate(group.ca, { name: 'dave', role: 'member' });
    const slow = join(group.dir, 'dave-slow.p12');
    writeFileSync(slow, writeBundle(dave, group.ca.certificate, TEST_PASSWORD, { kdfIterations: 100_000 }));
    const app = await createTestApp();

    const wrong = await ticksDuring(() => importBundle(app, slow, 'not the password'));
    expect(wrong.value).toMatchObject({ ok: false, error: { code: 'WrongPassword' } });
    expect(wrong.ticks).toBeGreaterThanOrEqual(5);

    const imported = await ticksDuring(() => importBundle(app, slow, TEST_PASSWORD));
    expect(unwrap(imported.value).name).toBe('dave');
    expect(imported.ticks).toBeGreaterThanOrEqual(5);
    await app.service.dispose();
  });

  it('with a keystore, keeps the password encrypted by it and reopens the identity at start', async () => {
    const secrets = memorySecretStorage();
    const app = await createTestApp({ secrets });
    expect(unwrap(await importBundle(app, bundleOf(group, 'alice'), TEST_PASSWORD)).storage).toBe(
      'safeStorage',
    );
    const settingsText = readFileSync(join(app.settingsDir, 'settings.json'), 'utf8');
    expect(settingsText).not.toContain(TEST_PASSWORD);
    expect(settingsText).toContain('encryptedPassword');

    const again = await createTestApp({ secrets, dataDir: app.dataDir, settingsDir: app.settingsDir });
    expect(again.service.snapshot().identity).toMatchObject({ status: 'ready', identity: { name: 'alice' } });

    // A keystore that cannot decrypt (another machine / user): asks for the password, says why.
    const other = await createTestApp({
      secrets: memorySecretStorage(),
      dataDir: app.dataDir,
      settingsDir: app.settingsDir,
    });
    const state = other.service.snapshot().identity;
    expect(state.status).toBe('locked');
  });
});

describe('app service: a chat through the bundled relay', () => {
  let group: TestGroup;
  let host: TestApp;
  let alice: TestApp;
  let bob: TestApp;
  let carol: TestApp;
  let port: number;

  beforeAll(async () => {
    group = makeTestGroup(['alice', 'bob', 'carol']);
    host = await createTestApp();
    const relay = unwrap(await startRelay(host, group.relayBundle, TEST_PASSWORD));
    expect(relay.status).toBe('running');
    expect(relay.host).toBe('127.0.0.1');
    port = required(relay.port, 'relay port');
    expect(port).toBeGreaterThan(0);
    [alice, bob, carol] = await Promise.all([createTestApp(), createTestApp(), createTestApp()]);
    unwrap(await importBundle(alice, bundleOf(group, 'alice'), TEST_PASSWORD));
    unwrap(await importBundle(bob, bundleOf(group, 'bob'), TEST_PASSWORD));
    unwrap(await importBundle(carol, bundleOf(group, 'carol'), TEST_PASSWORD));
  }, 60_000);

  afterAll(async () => {
    await Promise.all([alice, bob, carol, host].filter(Boolean).map((a) => a.service.dispose()));
  });

  it('connects three members: Chatting, each other’s fingerprints, one safety number, relay count', async () => {
    for (const app of [alice, bob, carol]) unwrap(await app.service.connect({ host: '127.0.0.1', port }));
    for (const app of [alice, bob, carol]) {
      await until(
        () =>
          app.service.snapshot().connection.state === 'Chatting' &&
          app.service.snapshot().key?.members.length === 3,
        'three members chatting',
      );
    }
    const states = alice.events
      .filter((e) => e.type === 'state')
      .map((e) => (e.type === 'state' ? e.state : ''));
    expect(states).toContain('Connecting');
    expect(states).toContain('KeyEstablishment');
    expect(states.at(-1)).toBe('Chatting');

    await until(
      () => new Set([alice, bob, carol].map((a) => a.service.snapshot().key?.safetyNumber)).size === 1,
      'one safety number',
    );
    const members = alice.service.snapshot().members;
    expect(members.map((m) => m.name).sort()).toEqual(['alice', 'bob', 'carol']);
    expect(members.find((m) => m.name === 'bob')?.fingerprint).toBe(fingerprintOf(bundleOf(group, 'bob')));
    expect(members.find((m) => m.name === 'alice')?.self).toBe(true);
    expect(members.every((m) => !m.verified)).toBe(true);
    await until(() => host.service.snapshot().relay.memberCount === 3, 'relay counts three members');
    expect(alice.service.snapshot().settings.relayAddress).toEqual({ host: '127.0.0.1', port });
  });

  it('chats both ways; own messages go queued → sending → sent (stored by the relay); notifications carry no content by default', async () => {
    const { localId } = unwrap(await alice.service.send({ text: 'hello from alice' }));
    expect(localId).toBeTruthy();
    await until(() => messages(bob).some((m) => m.text === 'hello from alice'), 'bob receives');
    await until(() => messages(carol).some((m) => m.text === 'hello from alice'), 'carol receives');
    const received = messages(bob).find((m) => m.text === 'hello from alice');
    expect(received?.from).toBe('alice');
    expect(received?.epoch).toBe(bob.service.snapshot().key?.epoch);

    unwrap(await bob.service.send({ text: 'hi alice,\nbob here' }));
    await until(() => messages(alice).some((m) => m.text === 'hi alice,\nbob here'), 'alice receives');

    await until(
      () => alice.service.snapshot().timeline.some((l) => l.kind === 'own' && l.status === 'sent'),
      'own line sent',
    );
    const own = alice.service.snapshot().timeline.find((l) => l.kind === 'own');
    expect(own).toMatchObject({ kind: 'own', text: 'hello from alice', status: 'sent', from: 'alice' });
    // Every own line event: queued, written (sending), stored by the relay (sent), same id.
    const ownEvents = alice.events.flatMap((e) =>
      e.type === 'line' && e.line.kind === 'own' ? [e.line] : [],
    );
    expect(ownEvents.map((l) => (l.kind === 'own' ? l.status : ''))).toEqual(['queued', 'sending', 'sent']);
    expect(new Set(ownEvents.map((l) => l.id)).size).toBe(1);

    expect(alice.notifications.length).toBeGreaterThan(0);
    for (const n of alice.notifications) expect(n.body).not.toContain('bob here');

    // Unread: counted while alice's window is not in front, reset when it is.
    expect(alice.unreadCounts).toEqual([]); // in front so far
    alice.service.windowFocus(false);
    unwrap(await bob.service.send({ text: 'unread one' }));
    unwrap(await bob.service.send({ text: 'unread two' }));
    await until(() => messages(alice).some((m) => m.text === 'unread two'), 'alice receives both');
    expect(alice.unreadCounts).toEqual([1, 2]);
    expect(alice.service.unreadCount).toBe(2);
    // One notification per group, updated while away from the window, without content.
    const me = alice.service.snapshot().identity;
    // Notifications are grouped per group of this app: `<group id>/<name>`.
    const group =
      me.status === 'ready'
        ? { id: `${me.identity.groupId}/${me.identity.name}`, name: me.identity.issuer }
        : undefined;
    expect(group?.name).toBeTruthy();
    expect(alice.notifications.slice(-2)).toEqual([
      { group: group?.id, title: group?.name, body: 'A new message from bob' },
      { group: group?.id, title: group?.name, body: '2 new messages from bob' },
    ]);
    unwrap(await alice.service.send({ text: 'my own does not count' }));
    await until(() => messages(bob).some((m) => m.text === 'my own does not count'), 'bob receives');
    alice.service.windowFocus(true);
    expect(alice.unreadCounts).toEqual([1, 2, 0]);
    unwrap(await alice.service.updateSettings({ notificationPreviews: true }));
    unwrap(await bob.service.send({ text: 'preview me' }));
    await until(
      () => alice.notifications.some((n) => n.body === 'preview me'),
      'a notification with preview',
    );
    // Back in front, the count started over: one message, named by its sender.
    expect(alice.notifications.at(-1)).toEqual({
      group: group?.id,
      title: `bob in ${group?.name}`,
      body: 'preview me',
    });
  });

  it('marks a member verified (persisted name → fingerprint) and unmarks', async () => {
    const bobFp = fingerprintOf(bundleOf(group, 'bob'));
    const members = unwrap(
      await alice.service.setVerified({ name: 'bob', fingerprint: bobFp, verified: true }),
    );
    expect(members.find((m) => m.name === 'bob')?.verified).toBe(true);
    expect(keptIdentity(alice).verified).toEqual({ bob: bobFp });
    // The fingerprint must be the one presented now.
    expect(
      await alice.service.setVerified({ name: 'carol', fingerprint: 'ab'.repeat(32), verified: true }),
    ).toMatchObject({ ok: false, error: { code: 'InvalidArgument' } });
    unwrap(
      await alice.service.setVerified({
        name: 'carol',
        fingerprint: fingerprintOf(bundleOf(group, 'carol')),
        verified: true,
      }),
    );
    unwrap(
      await alice.service.setVerified({
        name: 'carol',
        fingerprint: fingerprintOf(bundleOf(group, 'carol')),
        verified: false,
      }),
    );
    expect(keptIdentity(alice).verified).toEqual({ bob: bobFp });
  });

  it('a member leaves: the others see it and keep their epoch (a leave never re-keys)', async () => {
    const before = required(alice.service.snapshot().key, 'key');
    unwrap(await carol.service.disconnect());
    expect(carol.service.snapshot().connection.state).toBe('Disconnected');
    for (const app of [alice, bob]) {
      await until(
        () =>
          app.service
            .snapshot()
            .timeline.some((l) => l.kind === 'system' && l.event === 'left' && l.name === 'carol'),
        'carol left',
      );
    }
    await until(() => host.service.snapshot().relay.memberCount === 2, 'relay counts two');
    unwrap(await alice.service.send({ text: 'carol has gone' }));
    await until(
      () => messages(bob).some((m) => m.text === 'carol has gone'),
      'bob receives under the same key',
    );
    expect(messages(bob).find((m) => m.text === 'carol has gone')?.epoch).toBe(before.epoch);
    for (const app of [alice, bob]) {
      expect(app.service.snapshot().key).toMatchObject({
        epoch: before.epoch,
        safetyNumber: before.safetyNumber,
      });
      expect(
        app.service
          .snapshot()
          .timeline.some((l) => l.kind === 'system' && l.event === 'rekey' && (l.epoch ?? 0) > before.epoch),
      ).toBe(false);
    }
    expect(messages(carol).some((m) => m.text === 'carol has gone')).toBe(false);
  });

  it('warns prominently when a verified member’s certificate changes, and clears the mark', async () => {
    // bob gets a new certificate (same name) and comes back with it.
    const newBundle = group.addMember('bob');
    unwrap(await bob.service.disconnect());
    // The relay admits the new certificate once it holds the roster that lists it (carol, who
    // left, carries it there).
    const carolId = LocalIdentity.fromBundleFile(readFileSync(bundleOf(group, 'carol')), TEST_PASSWORD);
    const published = await publishRoster({
      identity: carolId,
      relay: { host: '127.0.0.1', port },
      roster: readTestRoster(group),
    });
    expect(published.version).toBe(group.roster().version);
    unwrap(await importBundle(bob, newBundle, TEST_PASSWORD));
    unwrap(await bob.service.connect({ host: '127.0.0.1', port }));
    await until(
      () => alice.events.some((e) => e.type === 'fingerprint-changed' && e.name === 'bob'),
      'a warning',
    );
    const warning = alice.events.find((e) => e.type === 'fingerprint-changed');
    expect(warning).toMatchObject({ name: 'bob', currentFingerprint: fingerprintOf(newBundle) });
    const entry = alice.service.snapshot().members.find((m) => m.name === 'bob');
    expect(entry).toMatchObject({ verified: false, fingerprintChanged: true });
    expect(keptIdentity(alice).verified).toEqual({});
    expect(alice.service.snapshot().warnings.map((w) => w.name)).toEqual(['bob']);
    // Re-verifying the new certificate clears the warning.
    unwrap(
      await alice.service.setVerified({ name: 'bob', fingerprint: fingerprintOf(newBundle), verified: true }),
    );
    expect(alice.service.snapshot().warnings).toEqual([]);
    expect(alice.service.snapshot().members.find((m) => m.name === 'bob')).toMatchObject({
      verified: true,
      fingerprintChanged: false,
    });
  });

  it('stops the relay: members lose the connection, the app goes on', async () => {
    const view = unwrap(await host.service.stopRelay());
    expect(view.status).toBe('stopped');
    await until(() => alice.service.snapshot().connection.state !== 'Chatting', 'alice notices');
    expect(await host.service.stopRelay()).toMatchObject({ ok: false, error: { code: 'RelayNotRunning' } });
  });
});

describe('app service: relay launcher and failures', () => {
  let group: TestGroup;
  beforeAll(() => {
    group = makeTestGroup(['alice']);
  });

  it('refuses a wrong relay password and a member bundle before starting anything', async () => {
    const app = await createTestApp();
    expect(await startRelay(app, group.relayBundle, 'wrong')).toMatchObject({
      ok: false,
      error: { code: 'WrongPassword' },
    });
    const member = await startRelay(app, bundleOf(group, 'alice'), TEST_PASSWORD);
    expect(member).toMatchObject({ ok: false, error: { code: 'WrongRole' } });
    expect(app.service.snapshot().relay.status).toBe('stopped');
  });

  it('reports a relay crash as an event and keeps working', async () => {
    const app = await createTestApp();
    const relay = unwrap(await startRelay(app, group.relayBundle, TEST_PASSWORD));
    expect(relay.status).toBe('running');
    expect(await startRelay(app, group.relayBundle, TEST_PASSWORD)).toMatchObject({
      ok: false,
      error: { code: 'RelayAlreadyRunning' },
    });
    const pid = app.service.relayProcessId;
    if (pid === undefined) throw new Error('no relay pid');
    process.kill(pid, 'SIGKILL');
    await until(() => app.service.snapshot().relay.status === 'crashed', 'crash reported');
    const error = app.events.find((e) => e.type === 'error' && e.error.code === 'RelayFailed');
    expect(error).toBeDefined();
    if (error?.type === 'error') expect(error.error.message).toMatch(/killed|stopped unexpectedly/);
    // The service still answers, and the relay can be started again.
    expect(unwrap(await app.service.getSnapshot()).relay.status).toBe('crashed');
    expect(unwrap(await startRelay(app, group.relayBundle, TEST_PASSWORD)).status).toBe('running');
    await app.service.dispose();
  });

  it('says plainly when the relay is unreachable, and keeps retrying', async () => {
    const app = await createTestApp();
    unwrap(await importBundle(app, bundleOf(group, 'alice'), TEST_PASSWORD));
    // Port 1 on loopback: nothing listens there.
    unwrap(await app.service.connect({ host: '127.0.0.1', port: 1 }));
    await until(
      () => app.events.some((e) => e.type === 'error' && e.error.code === 'RelayUnreachable'),
      'unreachable',
    );
    const error = app.events.find((e) => e.type === 'error');
    if (error?.type === 'error')
      expect(error.error.message).toBe('Relay unreachable: nothing is listening at 127.0.0.1:1.');
    expect(app.service.snapshot().connection.state).toMatch(/Reconnecting|Connecting|Initialization/);
    expect(await app.service.connect({ host: '127.0.0.1', port: 1 })).toMatchObject({
      ok: false,
      error: { code: 'AlreadyConnected' },
    });
    unwrap(await app.service.disconnect());
    expect(app.service.snapshot().connection.state).toBe('Disconnected');
  });
});

describe('app service: create a group', () => {
  it('writes the CA, the bundles and roster v1 into the chosen folder, never overwriting without confirmation', async () => {
    const app = await createTestApp();
    const folder = mkdtempSync(join(tmpdir(), 'scx-newgroup-'));
    app.dialogs.folders.push(folder);
    const choice = required(unwrap(await app.service.chooseFolder()), 'folder choice');
    const args = {
      folderToken: choice.token,
      groupName: 'Book club',
      members: ['ann', 'ben'],
      relayName: 'relay',
      password: 'a long enough password',
      overwrite: false,
    };
    const { value: result, ticks } = await ticksDuring(() => app.service.createGroup(args));
    // Keys and bundles are made in the PKI worker, not on this event loop.
    expect(ticks).toBeGreaterThanOrEqual(1);
    const created = unwrap(result);
    const allFiles = ['ca.pem', 'ca.p12', 'ann.p12', 'ben.p12', 'relay.p12', 'roster.scx'];
    expect(created.files).toEqual(allFiles);
    const ca = Certificate.fromPem(readFileSync(join(folder, 'ca.pem'), 'utf8'));
    expect(ca.fingerprintHex).toBe(created.caFingerprint);
    // Roster v1 beside the bundles, signed by the CA just written: exactly the members and the relay.
    const roster = verifyRoster(readFileSync(join(folder, 'roster.scx')), ca);
    expect(roster.version).toBe(1);
    expect(roster.name).toBe('Book club');
    expect(roster.memberNames).toEqual(['ann', 'ben']);
    expect(roster.relayNames).toEqual(['relay']);
    expect(roster.removed).toEqual([]);
    const ann = readBundle(readFileSync(join(folder, 'ann.p12')), 'a long enough password');
    expect(ann.certificate.name).toBe('ann');
    expect(ann.ca.fingerprintHex).toBe(ca.fingerprintHex);
    expect(
      readBundle(readFileSync(join(folder, 'relay.p12')), 'a long enough password').certificate.serverAuth,
    ).toBe(true);

    const before = readFileSync(join(folder, 'ann.p12'));
    const rosterBefore = readFileSync(join(folder, 'roster.scx'));
    const again = await app.service.createGroup(args);
    expect(again).toMatchObject({ ok: false, error: { code: 'WouldOverwrite' } });
    if (!again.ok) expect(again.error.details).toEqual(allFiles);
    expect(readFileSync(join(folder, 'ann.p12')).equals(before)).toBe(true);
    expect(readFileSync(join(folder, 'roster.scx')).equals(rosterBefore)).toBe(true);

    unwrap(await app.service.createGroup({ ...args, overwrite: true }));
    expect(readFileSync(join(folder, 'ann.p12')).equals(before)).toBe(false);
    // The replaced roster belongs to the new CA, not the old one.
    const newCa = Certificate.fromPem(readFileSync(join(folder, 'ca.pem'), 'utf8'));
    expect(verifyRoster(readFileSync(join(folder, 'roster.scx')), newCa).groupId).toBe(newCa.fingerprintHex);
    expect(() => verifyRoster(readFileSync(join(folder, 'roster.scx')), ca)).toThrow(
      expect.objectContaining({ code: 'RosterForeignGroup' }),
    );
  });

  it('asks before replacing an existing roster.scx alone, and a refusal writes nothing', async () => {
    const app = await createTestApp();
    const folder = mkdtempSync(join(tmpdir(), 'scx-newgroup-roster-'));
    writeFileSync(join(folder, 'roster.scx'), 'an older group’s roster');
    app.dialogs.folders.push(folder);
    const choice = required(unwrap(await app.service.chooseFolder()), 'folder choice');
    const refused = await app.service.createGroup({
      folderToken: choice.token,
      groupName: 'Book club',
      members: ['ann'],
      relayName: 'relay',
      password: 'a long enough password',
      overwrite: false,
    });
    expect(refused).toMatchObject({ ok: false, error: { code: 'WouldOverwrite', details: ['roster.scx'] } });
    expect(readdirSync(folder)).toEqual(['roster.scx']);
    expect(readFileSync(join(folder, 'roster.scx'), 'utf8')).toBe('an older group’s roster');
    await app.service.dispose();
  });
});

describe('app service: the highest epoch is kept across restarts (member state store)', () => {
  let group: TestGroup;
  let host: TestApp;
  let port: number;
  const groupId = (): string => group.ca.certificate.fingerprintHex;

  beforeAll(async () => {
    group = makeTestGroup(['alice', 'bob']);
    host = await createTestApp();
    port = required(unwrap(await startRelay(host, group.relayBundle, TEST_PASSWORD)).port, 'relay port');
  }, 60_000);

  afterAll(async () => {
    await host?.service.dispose();
  });

  /** The epoch saved in an app's store, read with the app's own settings and keystore (app disconnected). */
  async function storedEpoch(app: TestApp, name: string, secrets: SecretStoragePort): Promise<number> {
    const state = new AppMemberState({ dataDir: app.dataDir, settings: new Settings(app.settings), secrets });
    const owner = { groupId: groupId(), member: name };
    await state.unlock(owner, TEST_PASSWORD);
    const store = state.open(owner);
    try {
      return store.load();
    } finally {
      store.close();
      state.lock();
    }
  }

  const keyEpochs = (apps: TestApp[]): number[] =>
    apps.flatMap((a) => a.events.flatMap((e) => (e.type === 'key' ? [e.key.epoch] : [])));

  async function chatting(apps: TestApp[]): Promise<number> {
    for (const app of apps) unwrap(await app.service.connect({ host: '127.0.0.1', port }));
    await until(
      () =>
        apps.every(
          (a) =>
            a.service.snapshot().connection.state === 'Chatting' &&
            a.service.snapshot().key?.members.length === apps.length,
        ) && new Set(apps.map((a) => a.service.snapshot().key?.epoch)).size === 1,
      'one key for all',
    ).catch((err: unknown) => {
      const seen = apps.map((a) => {
        const s = a.service.snapshot();
        return JSON.stringify({ connection: s.connection, key: s.key, last: a.events.slice(-12) });
      });
      throw new Error(`${(err as Error).message}\n${seen.join('\n')}`);
    });
    return required(apps[0]?.service.snapshot().key, 'key').epoch;
  }

  /** The same installation started again: a new service over the same data folder and settings. */
  async function restart(app: TestApp, secrets: SecretStoragePort | undefined): Promise<TestApp> {
    await app.service.dispose();
    const again = await createTestApp({
      ...(secrets ? { secrets } : {}),
      dataDir: app.dataDir,
      settingsDir: app.settingsDir,
    });
    if (!secrets) {
      expect(again.service.snapshot().identity.status).toBe('locked');
      unwrap(await again.service.unlockIdentity({ password: TEST_PASSWORD }));
    }
    expect(again.service.snapshot().identity.status).toBe('ready');
    return again;
  }

  for (const withKeystore of [true, false]) {
    it(`${withKeystore ? 'with' : 'without'} a keystore: after both members restart they chat on under the stored key, and the next key's epoch is above every epoch used before`, async () => {
      const keystores = withKeystore ? [memorySecretStorage(), memorySecretStorage()] : [];
      const secretsOf = (i: number): SecretStoragePort | undefined => keystores[i];
      const names = ['alice', 'bob'];
      let apps = await Promise.all(
        names.map((_, i) => {
          const secrets = secretsOf(i);
          return createTestApp(secrets ? { secrets } : {});
        }),
      );
      for (const [i, app] of apps.entries()) {
        const view = unwrap(
          await importBundle(app, bundleOf(group, required(names[i], 'name')), TEST_PASSWORD),
        );
        expect(view.storage).toBe(withKeystore ? 'safeStorage' : 'password');
      }
      const first = await chatting(apps);
      unwrap(await required(apps[0], 'alice').service.rekey());
      await until(
        () => apps.every((a) => (a.service.snapshot().key?.epoch ?? 0) > first),
        'a second key for both',
      );
      const usedBefore = Math.max(...keyEpochs(apps));
      expect(usedBefore).toBeGreaterThan(first);
      // Its own words per run: both runs share the relay, whose log a fresh member reads in full.
      const said = `said before the restart (${withKeystore ? 'keystore' : 'password'})`;
      unwrap(await required(apps[0], 'alice').service.send({ text: said }));
      await until(() => messages(required(apps[1], 'bob')).some((m) => m.text === said), 'bob reads it');
      for (const app of apps) unwrap(await app.service.disconnect());

      // What is on disk: one folder per identity, the key kept the way this installation can.
      for (const [i, app] of apps.entries()) {
        const name = required(names[i], 'name');
        const dir = memberStateDir(app.dataDir, { groupId: groupId(), member: name });
        expect(existsSync(join(dir, STATE_DB_FILE))).toBe(true);
        expect(existsSync(join(dir, SALT_FILE))).toBe(!withKeystore);
        expect(app.settings.get('stateKeys') !== undefined).toBe(withKeystore);
        const stored = await storedEpoch(app, name, secretsOf(i) ?? noKeystore);
        expect(stored).toBeGreaterThanOrEqual(usedBefore);
      }

      // Every member restarts (nobody stays connected to remember the epoch for the group).
      apps = await Promise.all(apps.map((app, i) => restart(app, secretsOf(i))));
      const restored = await chatting(apps);
      expect(restored).toBe(usedBefore); // the stored key: no re-key because they were away
      // The windows start with the stored history: the message once each, alice's own as sent.
      const lines = (app: TestApp) =>
        app.service.snapshot().timeline.filter((l) => l.kind !== 'system' && l.text === said);
      expect(lines(required(apps[0], 'alice'))).toMatchObject([
        { kind: 'own', status: 'sent', from: 'alice' },
      ]);
      expect(lines(required(apps[1], 'bob'))).toMatchObject([{ kind: 'message', from: 'alice' }]);
      unwrap(await required(apps[1], 'bob').service.rekey());
      await until(
        () => apps.every((a) => (a.service.snapshot().key?.epoch ?? 0) > usedBefore),
        'a new key for both after the restart',
      );
      const next = required(apps[0]?.service.snapshot().key, 'key').epoch;
      expect(next).toBeGreaterThan(usedBefore);
      for (const app of apps) {
        expect(app.events.some((e) => e.type === 'error' && e.error.code === 'StorageFailed')).toBe(false);
        unwrap(await app.service.disconnect());
      }

      // Removing the identity deletes its state folder and its kept key.
      const alice = required(apps[0], 'alice');
      unwrap(await alice.service.removeIdentity());
      expect(existsSync(memberStateDir(alice.dataDir, { groupId: groupId(), member: 'alice' }))).toBe(false);
      expect(alice.settings.get('stateKeys') ?? {}).not.toHaveProperty(
        stateKeyId({ groupId: groupId(), member: 'alice' }),
      );
      await Promise.all(apps.map((a) => a.service.dispose()));
    });
  }

  async function expectStoreRefused(app: TestApp, code: string): Promise<void> {
    const db = join(memberStateDir(app.dataDir, { groupId: groupId(), member: 'alice' }), STATE_DB_FILE);
    const before = readFileSync(db);
    const result = await app.service.connect({ host: '127.0.0.1', port });
    expect(result).toMatchObject({ ok: false, error: { code: 'StorageFailed', details: [code] } });
    if (!result.ok) expect(result.error.message).toMatch(/saved chat state/);
    const event = app.events.find((e) => e.type === 'error' && e.error.code === 'StorageFailed');
    expect(event).toMatchObject({ type: 'error', error: { code: 'StorageFailed', details: [code] } });
    // No engine was started without its store, and the old store was not replaced.
    expect(app.service.snapshot().connection.state).toBe('Disconnected');
    expect(readFileSync(db).equals(before)).toBe(true);
    expect(unwrap(await app.service.getSnapshot()).identity.status).toBe('ready');
  }

  it('with a keystore: a kept key that does not open the store is StorageFailed / StateKeyWrong, shown, and nothing is replaced', async () => {
    const secrets = memorySecretStorage();
    const app = await createTestApp({ secrets });
    unwrap(await importBundle(app, bundleOf(group, 'alice'), TEST_PASSWORD));
    // Connecting makes the store (alone, alice gets no key; that does not matter here).
    unwrap(await app.service.connect({ host: '127.0.0.1', port }));
    unwrap(await app.service.disconnect());
    const id = stateKeyId({ groupId: groupId(), member: 'alice' });
    const good = required(app.settings.get('stateKeys'), 'kept keys') as Record<string, string>;
    const wrong = Buffer.from(secrets.encryptString('00'.repeat(32))).toString('base64');
    app.settings.set('stateKeys', { ...good, [id]: wrong });
    await expectStoreRefused(app, 'StateKeyWrong');

    // The right key back: connects again with the same store.
    app.settings.set('stateKeys', good);
    unwrap(await app.service.connect({ host: '127.0.0.1', port }));
    unwrap(await app.service.disconnect());
    await app.service.dispose();
  });

  it('without a keystore: a damaged salt file is StorageFailed / StateStoreCorrupt, another salt StateKeyWrong', async () => {
    const app = await createTestApp();
    unwrap(await importBundle(app, bundleOf(group, 'alice'), TEST_PASSWORD));
    unwrap(await app.service.connect({ host: '127.0.0.1', port }));
    unwrap(await app.service.disconnect());
    const salt = join(memberStateDir(app.dataDir, { groupId: groupId(), member: 'alice' }), SALT_FILE);
    const goodSalt = readFileSync(salt, 'utf8');

    writeFileSync(salt, 'not json');
    let again = await restart(app, undefined);
    await expectStoreRefused(again, 'StateStoreCorrupt');

    writeFileSync(salt, goodSalt.replace(/"salt":"[0-9a-f]+"/, `"salt":"${'11'.repeat(16)}"`));
    again = await restart(again, undefined);
    await expectStoreRefused(again, 'StateKeyWrong');

    // A deleted salt file: a new salt is made, which does not open the old store either.
    rmSync(salt);
    again = await restart(again, undefined);
    await expectStoreRefused(again, 'StateKeyWrong');
    await again.service.dispose();
  });
});

describe('app service: the highest roster is kept across restarts (member state store)', () => {
  it('a restarted member holds roster v2, chats on, and corrects a relay restored with v1', async () => {
    // carol stays offline: she publishes the roster at the end (a login as alice would replace alice's).
    const group = makeTestGroup(['alice', 'bob', 'carol']);
    const groupId = group.ca.certificate.fingerprintHex;
    const v1 = Buffer.from(group.roster().bytes);
    // Roster v2 lists dave (offline): the relay starts with it and pushes it to both at login.
    group.addMember('dave');
    const first = await createTestApp();
    const firstPort = required(
      unwrap(await startRelay(first, group.relayBundle, TEST_PASSWORD)).port,
      'relay port',
    );
    // alice with a keystore, bob without: both ways of keeping the store's key.
    const secrets = [memorySecretStorage(), undefined] as const;
    const names = ['alice', 'bob'] as const;
    let apps = await Promise.all(
      names.map((_, i) => {
        const s = secrets[i];
        return createTestApp(s ? { secrets: s } : {});
      }),
    );
    for (const [i, app] of apps.entries())
      unwrap(await importBundle(app, bundleOf(group, required(names[i], 'name')), TEST_PASSWORD));
    const keyOf = (app: TestApp) => app.service.snapshot().key;
    for (const app of apps) unwrap(await app.service.connect({ host: '127.0.0.1', port: firstPort }));
    await until(
      () => apps.every((a) => a.service.snapshot().connection.state === 'Chatting' && keyOf(a)),
      'both chatting under roster v2',
    );
    const carolId = LocalIdentity.fromBundleFile(readFileSync(bundleOf(group, 'carol')), TEST_PASSWORD);
    for (const app of apps) unwrap(await app.service.disconnect());

    // On disk: each store holds roster v2, the relay's bytes as signed by the CA.
    for (const [i, app] of apps.entries()) {
      const owner = { groupId, member: required(names[i], 'name') };
      const state = new AppMemberState({
        dataDir: app.dataDir,
        settings: new Settings(app.settings),
        secrets: secrets[i] ?? noKeystore,
      });
      await state.unlock(owner, TEST_PASSWORD);
      const store = state.open(owner);
      try {
        expect(store.rosterVersion).toBe(2);
        expect(required(store.loadRoster(), 'stored roster').equals(group.roster().bytes)).toBe(true);
      } finally {
        store.close();
        state.lock();
      }
    }

    // The relay is restored from an old backup: a fresh log and roster v1 (dave not listed).
    unwrap(await first.service.stopRelay());
    const restoredDir = mkdtempSync(join(tmpdir(), 'scx-app-restored-relay-'));
    const restoredBundle = join(restoredDir, 'relay.p12');
    writeFileSync(restoredBundle, readFileSync(group.relayBundle));
    writeFileSync(join(restoredDir, 'roster.scx'), v1);
    const restored = await createTestApp();
    const port = required(
      unwrap(await startRelay(restored, restoredBundle, TEST_PASSWORD)).port,
      'restored relay port',
    );

    // Both members restart (new services over the same data folders and settings).
    apps = await Promise.all(
      apps.map(async (app, i) => {
        await app.service.dispose();
        const s = secrets[i];
        const again = await createTestApp({
          ...(s ? { secrets: s } : {}),
          dataDir: app.dataDir,
          settingsDir: app.settingsDir,
        });
        if (!s) unwrap(await again.service.unlockIdentity({ password: TEST_PASSWORD }));
        expect(again.service.snapshot().identity.status).toBe('ready');
        return again;
      }),
    );
    for (const app of apps) unwrap(await app.service.connect({ host: '127.0.0.1', port }));
    await until(
      () => apps.every((a) => a.service.snapshot().connection.state === 'Chatting'),
      'both chatting after the restart',
    );
    const [alice, bob] = [required(apps[0], 'alice'), required(apps[1], 'bob')];
    unwrap(await alice.service.send({ text: 'still roster v2' }));
    await until(() => messages(bob).some((m) => m.text === 'still roster v2'), 'bob receives');
    for (const app of apps) {
      expect(app.events.some((e) => e.type === 'error' && e.error.code === 'ChatError')).toBe(false);
    }
    // The members gave the restored relay their newer roster: it holds v2 again (v1 is not taken).
    const held = await publishRoster({
      identity: carolId,
      relay: { host: '127.0.0.1', port },
      roster: verifyRoster(v1, group.ca.certificate),
    });
    expect(held.version).toBe(2);

    await Promise.all([...apps, first, restored].map((a) => a.service.dispose()));
  }, 120_000);
});
