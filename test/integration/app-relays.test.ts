/**
 * Several relay addresses in the app (issue 10: "in the app a list") under plain Node, with a real
 * relay child and real engines: a connect given a first address where nothing listens and the
 * group's other relay after it reaches the other one and chats; the addresses are kept for the
 * group and come back after a restart; an address listed twice is refused before anything runs.
 */
import { afterAll, describe, expect, it } from 'vitest';
import { makeTestGroup, TEST_PASSWORD } from '../helpers/group.js';
import { importBundle, startRelay, testApps, until, unwrap } from './app-harness.js';

const { app, disposeAll } = testApps();
afterAll(disposeAll);

describe('app: several relay addresses', () => {
  it('fails over from a dead first address to the next, keeps the list, refuses one listed twice', async () => {
    const group = makeTestGroup(['alice', 'bob']);
    const host = await app();
    const port = unwrap(await startRelay(host, group.relayBundle, TEST_PASSWORD)).port as number;
    const bob = await app();
    unwrap(await importBundle(bob, group.bundles.bob as string, TEST_PASSWORD));
    unwrap(await bob.service.connect({ host: '127.0.0.1', port }));
    const alice = await app();
    unwrap(await importBundle(alice, group.bundles.alice as string, TEST_PASSWORD));

    // Port 1 on loopback: nothing listens there. The same address twice is refused first.
    const dead = { host: '127.0.0.1', port: 1 };
    expect(
      await alice.service.connect({ ...dead, fallbacks: [{ host: '127.0.0.1', port: 1 }] }),
    ).toMatchObject({
      ok: false,
      error: { code: 'InvalidArgument' },
    });
    expect(alice.service.snapshot().connection.state).toBe('Disconnected');

    unwrap(await alice.service.connect({ ...dead, fallbacks: [{ host: '127.0.0.1', port }] }));
    await until(
      () => alice.service.snapshot().connection.state === 'Chatting',
      'alice chatting via the second',
    );
    await until(() => bob.service.snapshot().connection.state === 'Chatting', 'bob chatting');
    // The window says where it is now: the second address.
    const snap = alice.service.snapshot();
    expect(snap.connection.address).toEqual({ host: '127.0.0.1', port });
    expect(
      snap.timeline.filter((l) => l.kind === 'system' && l.event === 'connected').map((l) => l.text),
    ).toEqual([`Connected to 127.0.0.1:${port}.`]);
    unwrap(await alice.service.send({ text: 'through the other relay' }));
    await until(
      () =>
        bob.service
          .snapshot()
          .timeline.some((l) => l.kind === 'message' && l.text === 'through the other relay'),
      'bob reads alice',
    );

    // Kept for the group: the connect form starts with both after a restart.
    const expected = { relayAddress: dead, relayFallbacks: [{ host: '127.0.0.1', port }] };
    expect(alice.service.snapshot().settings).toMatchObject(expected);
    await alice.service.dispose();
    const again = await app({ dataDir: alice.dataDir, settingsDir: alice.settingsDir });
    expect(again.service.snapshot().settings).toMatchObject(expected);
  }, 120_000);
});
