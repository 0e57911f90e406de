/**
 * The desktop app's prekeys (issue 11) under plain Node, with a real relay child and real
 * engines: each app member keeps a signed X25519 prekey in its encrypted state store, publishes it
 * through the relay and keeps the other's, so challenges and key envelopes are sealed with HPKE as
 * the CLI's are (without a prekey store the engine would fall back to RSA-OAEP).
 */
import { afterAll, describe, expect, it } from 'vitest';
import { AppMemberState } from '../../src-main/app/member-state.js';
import { noSecretStorage } from '../../src-main/app/node-ports.js';
import { Settings } from '../../src-main/app/settings.js';
import { makeTestGroup, TEST_PASSWORD } from '../helpers/group.js';
import { importBundle, startRelay, testApps, until, unwrap, type TestApp } from './app-harness.js';

const { app, disposeAll } = testApps();
afterAll(disposeAll);

describe('app: prekeys', () => {
  it('publishes its own signed prekey and keeps the other member’s, in the encrypted store', async () => {
    const group = makeTestGroup(['alice', 'bob']);
    const host = await app();
    const port = unwrap(await startRelay(host, group.relayBundle, TEST_PASSWORD)).port as number;
    const members: Record<string, TestApp> = {};
    for (const name of ['alice', 'bob']) {
      const a = await app();
      unwrap(await importBundle(a, group.bundles[name] as string, TEST_PASSWORD));
      unwrap(await a.service.connect({ host: '127.0.0.1', port }));
      members[name] = a;
    }
    const [alice, bob] = [members.alice as TestApp, members.bob as TestApp];
    for (const a of [alice, bob])
      await until(() => a.service.snapshot().connection.state === 'Chatting', 'chatting');
    unwrap(await alice.service.send({ text: 'sealed to prekeys' }));
    await until(
      () =>
        bob.service.snapshot().timeline.some((l) => l.kind === 'message' && l.text === 'sealed to prekeys'),
      'bob reads alice',
    );
    const groupId = alice.service.snapshot().groups[0]?.id.split('/')[0] as string;
    for (const a of [alice, bob]) await a.service.dispose();

    // Each store, opened as the app opens it (the password derives its key here, no keystore).
    for (const [name, other] of [
      ['alice', 'bob'],
      ['bob', 'alice'],
    ] as const) {
      const a = members[name] as TestApp;
      const state = new AppMemberState({
        dataDir: a.dataDir,
        settings: new Settings(a.settings),
        secrets: noSecretStorage,
      });
      const owner = { groupId, member: name };
      await state.unlock(owner, TEST_PASSWORD);
      const store = state.open(owner);
      try {
        const own = store.loadOwnPrekeys();
        expect(own.length).toBeGreaterThanOrEqual(1);
        expect(own.every((p) => p.signed.member === name && p.publishedAt !== undefined)).toBe(true);
        expect(store.loadPeerPrekeys().map((p) => p.prekey.member)).toContain(other);
      } finally {
        store.close();
        state.lock();
      }
    }
  }, 120_000);
});
