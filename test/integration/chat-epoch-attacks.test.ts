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
import { ChatProcess, cleanup, startRelay, type RelayProcess } from '../helpers/client-processes.js';
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
  it('NONCE_REQUEST / KEY_DISTRIBUTION at 2^53-1 are refused, a REKEY_REQUEST flood moves the epoch by at most a few, and the group still re-keys', async () => {
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

    // Honest members still re-key: mallory leaves, alice and bob agree on a new key and chat.
    m.raw.destroy();
    await Promise.all([alice.waitForKey(['alice', 'bob']), bob.waitForKey(['alice', 'bob'])]);
    expect(alice.lastKey()?.safetyNumber).toBe(bob.lastKey()?.safetyNumber);
    bob.send('still here');
    await alice.waitForMessage('bob', 'still here');

    // The flood moved the epoch by a handful (one honoured request per sender per 10 s), never 400.
    const after = Math.max(...keyEpochs(alice), ...keyEpochs(bob));
    expect(after).toBeGreaterThan(before);
    expect(after - before).toBeLessThanOrEqual(10);
    for (const p of [alice, bob]) {
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

  it('a member restarted with the same --state-dir (alone or with the other one) never repeats an epoch with another key', async () => {
    relay = await startRelay(g.group.relayBundle);
    const dirs = {
      alice: mkdtempSync(join(tmpdir(), 'scx-state-alice-')),
      bob: mkdtempSync(join(tmpdir(), 'scx-state-bob-')),
    };
    const all: ChatProcess[] = [];
    const start = (name: 'alice' | 'bob') => {
      const p = member(name, dirs[name]);
      all.push(p);
      return p;
    };
    const pair = ['alice', 'bob'];
    let alice = start('alice');
    const bob = start('bob');
    await Promise.all([alice.waitForKey(pair), bob.waitForKey(pair)]);

    // alice (the initiator, M[0]) restarts while bob stays connected and goes back to waiting.
    for (let round = 0; round < 2; round++) {
      const shown = bob.of('key').length;
      alice.end();
      expect(await alice.exited).toBe(0);
      await bob.waitFor((p) => p.state === 'KeyEstablishment', 'bob alone again');
      alice = start('alice');
      await alice.waitForKey(pair);
      await bob.waitFor((p) => p.of('key').length > shown && p.state === 'Chatting', 'bob re-keyed');
    }

    // Both restart: only what they stored tells them which epochs were used.
    alice.end();
    bob.end();
    expect(await alice.exited).toBe(0);
    expect(await bob.exited).toBe(0);
    const highestBefore = Math.max(...all.flatMap(keyEpochs));
    const alice2 = start('alice');
    const bob2 = start('bob');
    await Promise.all([alice2.waitForKey(pair), bob2.waitForKey(pair)]);
    expect(alice2.lastKey()?.epoch).toBeGreaterThan(highestBefore);
    expect(alice2.lastKey()?.safetyNumber).toBe(bob2.lastKey()?.safetyNumber);

    expect(repeatedEpochs(all)).toEqual([]);
  }, 120_000);
});
