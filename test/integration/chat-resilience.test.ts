/**
 * The relay is killed (SIGKILL) and restarted on the same port: members reconnect, keep their key
 * (a reconnect never re-keys: the key belongs to the group, not to a session), deliver.
 */
import { afterEach, beforeAll, describe, expect, it } from 'vitest';
import {
  ChatProcess,
  cleanup,
  startRelay,
  waitForAgreedKey,
  type RelayProcess,
} from '../helpers/client-processes.js';
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
  it('members reconnect with backoff, keep their epoch (no re-key) and deliver what was typed meanwhile', async () => {
    const first = await startRelay(group.relayBundle);
    relays.push(first);
    members = NAMES.map((n) => ChatProcess.start(n, group.bundles[n] as string, first.address));
    const [alice, bob, carol] = members as [ChatProcess, ChatProcess, ChatProcess];
    const { epoch: before } = await waitForAgreedKey(members, NAMES);
    const keysShown = members.map((m) => m.of('key').length);
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
    const chattingBefore = members.map((m) => m.of('state').filter((s) => s.state === 'Chatting').length);
    await Promise.all(
      members.map((m, i) =>
        m.waitFor(
          (p) => p.of('state').filter((s) => s.state === 'Chatting').length > (chattingBefore[i] as number),
          'Chatting again after the outage',
          30_000,
        ),
      ),
    );

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
    // Everything went under the epoch of before the outage, and nobody showed a new key.
    for (const m of members) {
      expect(m.lastKey()?.epoch).toBe(before);
      expect(m.messages().every((x) => x.epoch === before)).toBe(true);
    }
    expect(members.map((m) => m.of('key').length)).toEqual(keysShown);

    for (const m of members) m.end();
    expect(await Promise.all(members.map((m) => m.exited))).toEqual([0, 0, 0]);
  }, 90_000);
});
