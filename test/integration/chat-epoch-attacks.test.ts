/**
 * An insider against the epoch counter, with real processes: the relay CLI, alice and bob as
 * `chat --json` processes, and mallory, a member holding a valid bundle who speaks the protocol
 * directly (test/helpers/keyed-raw-member.ts). And members restarting with the same --state-dir:
 * epoch numbers never repeat with a different key.
 */
import { randomBytes } from 'node:crypto';
import { mkdtempSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterEach, beforeAll, describe, expect, it } from 'vitest';
import { nonceRequestLabel } from '../../src-main/client/key-schedule.js';
import { oaepEncrypt } from '../../src-main/core/crypto/primitives.js';
import type { BodyOf } from '../../src-main/core/protocol/index.js';
import type { LocalIdentity } from '../../src-main/core/pki/local-identity.js';
import {
  ChatProcess,
  cleanup,
  startRelay,
  waitForAgreedKey,
  type RelayProcess,
} from '../helpers/client-processes.js';
import { makeLoadedGroup, type LoadedGroup } from '../helpers/client-identities.js';
import { KeyedRawMember } from '../helpers/keyed-raw-member.js';

const END = Number.MAX_SAFE_INTEGER; // 2^53 - 1
const THREE = ['alice', 'bob', 'mallory'];
let g: LoadedGroup;
let relay: RelayProcess | undefined;
let running: { kill(): Promise<unknown> }[] = [];
let mallory: KeyedRawMember | undefined;

beforeAll(() => {
  g = makeLoadedGroup(THREE);
});

afterEach(async () => {
  mallory?.raw.destroy();
  mallory = undefined;
  await cleanup(...running);
  running = [];
  await cleanup(relay);
  relay = undefined;
});

function member(name: string, stateDir?: string): ChatProcess {
  const p = ChatProcess.start(name, g.group.bundles[name] as string, relay?.address as string, {
    ...(stateDir !== undefined ? { stateDir } : {}),
  });
  running.push(p);
  return p;
}

const errors = (p: ChatProcess, code: string) => p.of('error').filter((e) => e.code === code);
const keyEpochs = (p: ChatProcess) => p.of('key').map((k) => k.epoch as number);

describe('an insider cannot stop the group from re-keying', () => {
  it('NONCE_REQUEST / KEY_DISTRIBUTION at 2^53-1 are refused, a REKEY_REQUEST flood moves the epoch by at most a few, and the group goes on', async () => {
    relay = await startRelay(g.group.relayBundle);
    const alice = member('alice');
    const bob = member('bob');
    mallory = await KeyedRawMember.join(g.identities.mallory as LocalIdentity, relay.port);
    await Promise.all([alice.waitForKey(THREE), bob.waitForKey(THREE), mallory.waitForKey(THREE)]);
    const before = Math.max(...keyEpochs(alice), ...keyEpochs(bob));
    const m = mallory;
    const presence = m.raw.frames.filter((f) => f.type === 'PRESENCE').at(-1)?.body as BodyOf<'PRESENCE'>;

    // mallory, as an initiator, runs a "round" at the last epoch: a well-formed request each target
    // could answer (the challenge really is sealed to it), then a key distribution for that epoch.
    for (const target of ['alice', 'bob']) {
      const cert = (g.identities[target] as LocalIdentity).certificate;
      m.send('NONCE_REQUEST', target, {
        epoch: END,
        membershipVersion: presence.version,
        rosterVersion: m.key?.rosterVersion ?? 1,
        members: THREE,
        challenge: oaepEncrypt(
          cert.publicKey,
          randomBytes(32),
          nonceRequestLabel(m.identity.groupId, END, 'mallory', target),
        ),
      });
      m.send('KEY_DISTRIBUTION', target, {
        epoch: END,
        wrappedKey: randomBytes(256),
        iv: randomBytes(12),
        ciphertext: randomBytes(64),
      });
    }
    for (const p of [alice, bob]) {
      await p.waitFor((x) => errors(x, 'EpochOutOfRange').length >= 2, 'two EpochOutOfRange errors');
    }

    // 400 requested re-keys at each honest member, as fast as mallory can write them.
    for (let i = 0; i < 400; i++) {
      for (const target of ['alice', 'bob']) {
        m.send('REKEY_REQUEST', target, { minEpoch: before + 1, reason: 'requested' });
      }
    }
    for (const p of [alice, bob]) {
      await p.waitFor((x) => errors(x, 'RekeyRateLimited').length >= 390, '390 RekeyRateLimited errors');
    }
    await Promise.all([alice.waitForKey(THREE), bob.waitForKey(THREE)]);

    // The group goes on: mallory leaves, bob comes back without his state (the relay's log gives
    // him the current key), and alice and bob chat under one key. (An honest re-key after such a
    // barrage: chat-receive-properties.test.ts.)
    m.raw.destroy();
    bob.end();
    expect(await bob.exited).toBe(0);
    const bob2 = member('bob');
    await Promise.all([alice.waitForKey(['alice', 'bob']), bob2.waitForKey(['alice', 'bob'])]);
    // Either may be the last to reach the shared key: wait on both processes' events.
    await waitForAgreedKey([alice, bob2], ['alice', 'bob']);
    expect(alice.lastKey()?.safetyNumber).toBe(bob2.lastKey()?.safetyNumber);
    bob2.send('still here');
    await alice.waitForMessage('bob', 'still here');

    // The flood moved the epoch by a handful (one honoured request per sender per 10 s), never 400.
    const after = Math.max(...keyEpochs(alice), ...keyEpochs(bob2));
    expect(after).toBeGreaterThanOrEqual(before);
    expect(after - before).toBeLessThanOrEqual(10);
    for (const p of [alice, bob, bob2]) {
      expect(p.of('state').some((s) => s.state === 'Failed')).toBe(false);
      expect(p.badLines).toEqual([]);
    }
  }, 120_000);
});

describe('members persist the highest epoch they have seen', () => {
  /** Every key shown by any process, by epoch: one safety number each, or the epoch repeated. */
  function repeatedEpochs(processes: ChatProcess[]): string[] {
    const byEpoch = new Map<number, Set<string>>();
    for (const p of processes) {
      for (const k of p.of('key')) {
        const set = byEpoch.get(k.epoch as number) ?? new Set<string>();
        set.add(k.safetyNumber as string);
        byEpoch.set(k.epoch as number, set);
      }
    }
    return [...byEpoch].filter(([, s]) => s.size > 1).map(([e, s]) => `epoch ${e}: ${[...s].join(' / ')}`);
  }

  it('a member restarted with the same --state-dir chats on under its stored key (no re-key), and no epoch ever repeats with another key', async () => {
    relay = await startRelay(g.group.relayBundle);
    const dirs = {
      alice: mkdtempSync(join(tmpdir(), 'scx-state-alice-')),
      bob: mkdtempSync(join(tmpdir(), 'scx-state-bob-')),
    };
    const all: ChatProcess[] = [];
    const start = (name: 'alice' | 'bob', dir = dirs[name]) => {
      const p = member(name, dir);
      all.push(p);
      return p;
    };
    const pair = ['alice', 'bob'];
    let alice = start('alice');
    const bob = start('bob');
    await Promise.all([alice.waitForKey(pair), bob.waitForKey(pair)]);
    const first = alice.lastKey();

    // alice (the initiator) restarts while bob stays connected and waits alone; she comes back with
    // her stored key and they chat on under it: bob shows no new key.
    for (let round = 0; round < 2; round++) {
      const shown = bob.of('key').length;
      alice.end();
      expect(await alice.exited).toBe(0);
      await bob.waitFor((p) => {
        const m = p.of('members').at(-1)?.members as { name: string }[] | undefined;
        return m?.map((x) => x.name).join(',') === 'bob';
      }, 'bob alone again');
      alice = start('alice');
      await alice.waitForKey(pair);
      expect(alice.of('key').map((k) => [k.epoch, k.safetyNumber])).toEqual([
        [first?.epoch, first?.safetyNumber],
      ]);
      await bob.waitFor((p) => p.state === 'Chatting', 'bob chatting again');
      alice.send(`back ${round}`);
      await bob.waitForMessage('alice', `back ${round}`);
      expect(bob.messages().at(-1)?.epoch).toBe(first?.epoch);
      expect(bob.of('key').length).toBe(shown);
    }

    // Both restart: their stored keys carry them on, again without a re-key.
    alice.end();
    bob.end();
    expect(await alice.exited).toBe(0);
    expect(await bob.exited).toBe(0);
    const alice2 = start('alice');
    const bob2 = start('bob');
    await Promise.all([alice2.waitForKey(pair), bob2.waitForKey(pair)]);
    expect(alice2.lastKey()?.epoch).toBe(first?.epoch);
    bob2.send('both back');
    await alice2.waitForMessage('bob', 'both back');

    // bob loses his state folder: the key distribution the relay's log holds for him was sealed to
    // his prekey, which went with his state (forward secrecy, docs/security.md): he cannot open it,
    // asks for a key, and the group re-keys. No epoch ever has two keys.
    const before = alice2.lastKey()?.epoch as number;
    bob2.end();
    expect(await bob2.exited).toBe(0);
    const bob3 = start('bob', mkdtempSync(join(tmpdir(), 'scx-state-bob-fresh-')));
    await bob3.waitFor((p) => (p.lastKey()?.epoch ?? 0) > before, 'a new epoch for the fresh bob');
    await waitForAgreedKey([alice2, bob3], pair);
    expect(bob3.lastKey()?.safetyNumber).toBe(alice2.lastKey()?.safetyNumber);
    alice2.send('for the fresh bob');
    await bob3.waitForMessage('alice', 'for the fresh bob');

    expect(repeatedEpochs(all)).toEqual([]);
  }, 120_000);
});
