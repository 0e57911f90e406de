/**
 * Epochs over the roster in running engines (in-process ChatEngines through a real relay process):
 * rotation by age on the engine's injected clock and by message count, and a member alone online
 * with a roster, which keys by itself (contributors = [self]) and chats.
 */
import { afterEach, beforeAll, describe, expect, it } from 'vitest';
import type { LocalIdentity } from '../../src-main/core/pki/local-identity.js';
import { cleanup, startRelay, type RelayProcess } from '../helpers/client-processes.js';
import { TestMember } from '../helpers/client-engine.js';
import { makeLoadedGroup, type LoadedGroup } from '../helpers/client-identities.js';
import { rosterOf } from '../helpers/test-roster.js';

let g: LoadedGroup;
let relay: RelayProcess | undefined;
let running: TestMember[] = [];

beforeAll(() => {
  g = makeLoadedGroup(['alice', 'bob']);
});

afterEach(async () => {
  await cleanup(...running);
  running = [];
  await cleanup(relay);
  relay = undefined;
});

const DAY = 24 * 3600_000;

async function pair(options: Record<string, unknown>): Promise<[TestMember, TestMember]> {
  const r = await startRelay(g.group.relayBundle);
  relay = r;
  const roster = rosterOf(g, ['alice', 'bob']);
  const [alice, bob] = (['alice', 'bob'] as const).map(
    (n) => new TestMember(g.identities[n] as LocalIdentity, r.port, { roster, ...options }),
  ) as [TestMember, TestMember];
  running = [alice, bob];
  // One after the other, so that the test starts from one settled epoch: alice alone waits for a
  // first message to key; bob's arrival makes a key over both.
  alice.engine.start();
  await alice.waitFor(() => alice.engine.state === 'Chatting', 'alice alone and Chatting');
  bob.engine.start();
  await Promise.all(running.map((m) => m.waitForKey(['alice', 'bob'])));
  await alice.waitFor(
    () => !!alice.engine.key && alice.engine.key.safetyNumber === bob.engine.key?.safetyNumber,
    'one key for both',
  );
  return [alice, bob];
}

describe('rotation', () => {
  it('by age: once the epoch is 24 h old on the engine clock, a new epoch, and chat goes on under it', async () => {
    let now = 1_000_000;
    const [alice, bob] = await pair({ now: () => now, rotationCheckMs: 50 });
    const first = alice.engine.key?.epoch as number;
    alice.engine.send('before rotation');
    await bob.waitFor(() => bob.of('message').some((m) => m.text === 'before rotation'), 'the first message');
    now += DAY - 1_000;
    // Not yet due: let several checks pass (the message round trip takes longer than 50 ms checks).
    alice.engine.send('almost a day');
    await bob.waitFor(() => bob.of('message').some((m) => m.text === 'almost a day'), 'the second message');
    expect(alice.engine.key?.epoch).toBe(first);
    now += 1_000;
    await Promise.all(
      [alice, bob].map((m) => m.waitFor(() => (m.engine.key?.epoch ?? 0) > first, 'a rotated epoch')),
    );
    expect(alice.engine.key?.safetyNumber).toBe(bob.engine.key?.safetyNumber);
    expect(alice.engine.key?.epoch).toBe(first + 1);
    bob.engine.send('after rotation');
    await alice.waitFor(() => alice.of('message').some((m) => m.text === 'after rotation'), 'the answer');
    expect(alice.of('message').at(-1)?.epoch).toBe(first + 1);
  });

  it('by count: after the configured number of messages', async () => {
    const [alice, bob] = await pair({ rotationMaxMessages: 6 });
    const first = alice.engine.key?.epoch as number;
    for (let i = 1; i <= 3; i++) alice.engine.send(`m${i}`);
    await bob.waitFor(() => bob.of('message').some((m) => m.text === 'm3'), 'three messages');
    expect(alice.engine.key?.epoch).toBe(first);
    for (let i = 4; i <= 6; i++) bob.engine.send(`m${i}`);
    // alice (the initiator) counted 3 sent + 3 received: the sixth starts the next epoch.
    await Promise.all(
      [alice, bob].map((m) => m.waitFor(() => (m.engine.key?.epoch ?? 0) > first, 'a rotated epoch')),
    );
    expect(alice.engine.key?.safetyNumber).toBe(bob.engine.key?.safetyNumber);
  });
});

describe('alone online with a roster', () => {
  it('is Chatting at once, keys alone for its first message (contributors = [self], members = the roster)', async () => {
    const r = await startRelay(g.group.relayBundle);
    relay = r;
    const alice = new TestMember(g.identities.alice as LocalIdentity, r.port, {
      roster: rosterOf(g, ['alice', 'bob']),
    });
    running = [alice];
    alice.engine.start();
    await alice.waitFor(() => alice.engine.state === 'Chatting', 'Chatting');
    // No key yet: one made now could conflict with one made by a member connecting meanwhile.
    expect(alice.engine.key).toBeUndefined();
    alice.engine.send('a note for bob');
    await alice.waitForKey(['alice', 'bob']);
    expect(alice.engine.key?.contributors).toEqual(['alice']);
    // Written under that key (this member keeps no history, so it follows no log and sees no STORED).
    await alice.waitFor(
      () => alice.of('outgoing').some((o) => o.status === 'sent' && o.epoch === 1 && o.seq === 1),
      'the note sent under epoch 1',
    );
    expect(alice.engine.state).toBe('Chatting');
  });
});
