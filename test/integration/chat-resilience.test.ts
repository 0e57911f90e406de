/** The relay is killed (SIGKILL) and restarted on the same port: members reconnect, re-key, deliver. */
import { afterEach, beforeAll, describe, expect, it } from 'vitest';
import { ChatProcess, cleanup, startRelay, type RelayProcess } from '../helpers/client-processes.js';
import { makeTestGroup, type TestGroup } from '../helpers/group.js';

const NAMES = ['alice', 'bob', 'carol'];
let group: TestGroup;
let relays: RelayProcess[] = [];
let members: ChatProcess[] = [];

beforeAll(() => {
  group = makeTestGroup(NAMES);
});

afterEach(async () => {
  await cleanup(...members, ...relays);
  members = [];
  relays = [];
});

describe('relay outage', () => {
  it('members reconnect with backoff, re-key to a newer epoch and deliver what was typed meanwhile', async () => {
    const first = await startRelay(group.relayBundle);
    relays.push(first);
    members = NAMES.map((n) => ChatProcess.start(n, group.bundles[n] as string, first.address));
    const [alice, bob, carol] = members as [ChatProcess, ChatProcess, ChatProcess];
    await Promise.all(members.map((m) => m.waitForKey(NAMES)));
    const before = alice.lastKey()?.epoch as number;
    alice.send('before the outage');
    await bob.waitForMessage('alice', 'before the outage');

    await first.kill('SIGKILL');
    await Promise.all(members.map((m) => m.waitFor((p) => p.state === 'Reconnecting', 'Reconnecting')));
    const reconnecting = alice.of('state').filter((s) => s.state === 'Reconnecting');
    expect(typeof reconnecting[0]?.retryInMs).toBe('number');

    alice.send('typed during the outage 1');
    alice.send('typed during the outage 2');
    carol.send('carol during the outage');
    // Let a few reconnect attempts fail against the closed port.
    await alice.waitFor(
      (p) => p.of('state').filter((s) => s.state === 'Reconnecting').length >= 3,
      'retries',
    );

    const second = await startRelay(group.relayBundle, first.port);
    relays.push(second);
    await Promise.all(members.map((m) => m.waitForKey(NAMES, 30_000)));
    for (const m of members) expect(m.lastKey()?.epoch).toBeGreaterThan(before);
    expect(new Set(members.map((m) => m.lastKey()?.safetyNumber)).size).toBe(1);

    for (const m of [bob, carol]) {
      await m.waitForMessage('alice', 'typed during the outage 1');
      await m.waitForMessage('alice', 'typed during the outage 2');
      const texts = m
        .messages()
        .filter((x) => x.from === 'alice')
        .map((x) => x.text);
      expect(texts).toEqual(['before the outage', 'typed during the outage 1', 'typed during the outage 2']);
    }
    await alice.waitForMessage('carol', 'carol during the outage');
    await bob.waitForMessage('carol', 'carol during the outage');

    for (const m of members) m.end();
    expect(await Promise.all(members.map((m) => m.exited))).toEqual([0, 0, 0]);
  }, 90_000);
});
