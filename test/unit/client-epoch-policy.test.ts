/**
 * How far and how often an epoch may move, that the highest epoch is stored before it is used, and
 * that no challenge or nonce outlives its round: the key-establishment machine over the in-memory
 * bus (test/helpers/key-bus.ts) with a fake clock.
 */
import { beforeAll, describe, expect, it } from 'vitest';
import type { KeyEstablishment } from '../../src-main/client/key-establishment.js';
import { EPOCH_CEILING, MAX_EPOCH_STEP } from '../../src-main/client/key-establishment.js';
import { epochLimit, RekeyRateLimiter } from '../../src-main/client/epoch-policy.js';
import type { LocalIdentity } from '../../src-main/core/pki/local-identity.js';
import { makeLoadedGroup, type LoadedGroup } from '../helpers/client-identities.js';
import { Bus } from '../helpers/key-bus.js';
import { rosterOf, withoutMember } from '../helpers/test-roster.js';

let g: LoadedGroup;
const ids = (...names: string[]) => names.map((n) => g.identities[n] as LocalIdentity);
const THREE = ['alice', 'bob', 'carol'];
const END = Number.MAX_SAFE_INTEGER; // 2^53 - 1

beforeAll(() => {
  g = makeLoadedGroup(['alice', 'bob', 'carol']);
});

/** Three members holding epoch 1. */
function keyedBus(): Bus {
  const bus = new Bus(ids(...THREE));
  bus.setMembership(THREE, 1);
  bus.run();
  for (const n of THREE) expect(bus.last(n)?.epoch).toBe(1);
  return bus;
}

const machine = (bus: Bus, name: string) => bus.machines.get(name) as KeyEstablishment;

describe('epoch jump bound', () => {
  it('the limit: newcomers up to the ceiling, members with history 2^20 above what they saw', () => {
    expect(epochLimit(0, 0)).toBe(EPOCH_CEILING);
    expect(epochLimit(0, 5)).toBe(EPOCH_CEILING);
    expect(epochLimit(3, 9)).toBe(9 + MAX_EPOCH_STEP);
    expect(epochLimit(EPOCH_CEILING - 1, EPOCH_CEILING - 1)).toBe(EPOCH_CEILING);
    expect(EPOCH_CEILING).toBeLessThan(END / 16);
  });

  it('an insider NONCE_REQUEST for epoch 2^53-1 is refused (EpochOutOfRange) and moves nothing', () => {
    const bus = keyedBus();
    for (const target of ['alice', 'bob']) {
      machine(bus, target).onNonceRequest('carol', {
        epoch: END,
        membershipVersion: 1,
        rosterVersion: 0,
        members: THREE,
        challenge: Buffer.alloc(256, 1),
      });
    }
    expect(bus.queue).toEqual([]); // no NONCE_RESPONSE, no stale-epoch answer
    expect(bus.codes).toEqual(['EpochOutOfRange', 'EpochOutOfRange']);
    for (const n of ['alice', 'bob']) {
      expect(machine(bus, n).highestEpochSeen).toBe(1);
      expect(bus.persisted.get(n)?.at(-1)).toBe(1);
    }
    // The group still re-keys, to the next epoch.
    machine(bus, 'alice').startRound();
    bus.run();
    for (const n of THREE) expect(bus.last(n)?.epoch).toBe(2);
  });

  it('an insider KEY_DISTRIBUTION for epoch 2^53-1 is refused as EpochOutOfRange', () => {
    const bus = keyedBus();
    machine(bus, 'bob').onKeyDistribution('carol', {
      epoch: END,
      wrappedKey: Buffer.alloc(256, 1),
      iv: Buffer.alloc(12),
      ciphertext: Buffer.alloc(32),
    });
    expect(bus.codes).toEqual(['EpochOutOfRange']);
    expect(machine(bus, 'bob').highestEpochSeen).toBe(1);
  });

  it('a newcomer (no history) still refuses any frame above the ceiling, and follows one below it', () => {
    const bus = new Bus(ids('alice', 'bob'));
    bus.machines.get('alice')?.setMembership(['alice', 'bob'], 1);
    const bob = machine(bus, 'bob');
    bob.setMembership(['alice', 'bob'], 1);
    bus.queue = []; // alice's own round: not what this test is about
    bob.onNonceRequest('alice', {
      epoch: EPOCH_CEILING + 1,
      membershipVersion: 1,
      rosterVersion: 0,
      members: ['alice', 'bob'],
      challenge: Buffer.alloc(256, 1),
    });
    bob.onRekeyRequest('alice', { minEpoch: END, reason: 'requested' });
    expect(bus.codes).toEqual(['EpochOutOfRange', 'EpochOutOfRange']);
    expect(bob.highestEpochSeen).toBe(0);
    expect(bus.queue).toEqual([]);
  });

  it("the initiator's own choice is bounded too: a round above the limit is not started", () => {
    const bus = keyedBus();
    expect(machine(bus, 'alice').startRound(1 + 1 + MAX_EPOCH_STEP)).toBe(false);
    expect(bus.codes).toEqual(['EpochOutOfRange']);
    expect(bus.queue).toEqual([]);
    expect(machine(bus, 'alice').startRound(1 + MAX_EPOCH_STEP)).toBe(true);
  });

  it('a stale-epoch REKEY_REQUEST that answers no round of ours moves nothing', () => {
    const bus = keyedBus();
    machine(bus, 'alice').onRekeyRequest('carol', { minEpoch: 1 + MAX_EPOCH_STEP, reason: 'stale-epoch' });
    expect(machine(bus, 'alice').highestEpochSeen).toBe(1);
    expect(bus.queue).toEqual([]);
  });
});

describe('stored highest epoch', () => {
  it('is saved before the epoch is used (write-ahead) and never goes down', () => {
    const bus = new Bus(ids(...THREE));
    const persistedWhenSent: number[] = [];
    const send = bus.queue.push.bind(bus.queue);
    bus.queue.push = (...w) => {
      for (const x of w)
        if (x.type === 'NONCE_REQUEST' || x.type === 'NONCE_RESPONSE')
          persistedWhenSent.push(Math.max(0, ...(bus.persisted.get(x.from) ?? [])));
      return send(...w);
    };
    bus.setMembership(THREE, 1);
    bus.run();
    // Every request and answer for epoch 1 left after its sender stored 1.
    expect(persistedWhenSent.length).toBe(4);
    expect(persistedWhenSent.every((e) => e === 1)).toBe(true);
    for (const n of THREE) expect(bus.persisted.get(n)).toEqual([1]);
  });

  it('a member restarted with a stored epoch starts above it and never answers an epoch at or below it', () => {
    // alice restarted remembering epoch 7; bob (fresh state) asks for epoch 1.
    const bus = new Bus(ids('alice', 'bob'), undefined, (n) =>
      n === 'alice' ? { initialHighestEpoch: 7 } : {},
    );
    const alice = machine(bus, 'alice');
    expect(alice.highestEpochSeen).toBe(7);
    // bob initiates at 1 (as M[attempt 1]); alice answers stale-epoch, bob starts over at 8.
    for (const n of ['alice', 'bob']) bus.machines.get(n)?.setMembership(['alice', 'bob'], 1);
    bus.queue = bus.queue.filter((w) => w.from !== 'alice'); // alice's own round at 8 is dropped
    for (const n of ['alice', 'bob']) bus.machines.get(n)?.nextAttempt();
    bus.run();
    expect(bus.keys.get('alice')?.map((k) => k.epoch)).toEqual([8]);
    expect(bus.keys.get('bob')?.map((k) => k.epoch)).toEqual([8]);
  });

  it('a store that cannot save stops the epoch from being used (StateStoreFailed)', () => {
    const bus = new Bus(ids('alice', 'bob'), undefined, (n) =>
      n === 'alice'
        ? {
            persistEpoch: () => {
              throw new Error('disk full');
            },
          }
        : {},
    );
    bus.setMembership(['alice', 'bob'], 1);
    // alice sent nothing (bob, without a key, asked her for one: REKEY_REQUEST key-missing).
    expect(bus.queue.filter((w) => w.from === 'alice')).toEqual([]);
    expect(bus.codes).toEqual(['StateStoreFailed']);
    expect(bus.problems[0]).toMatch(/disk full/);
  });
});

describe('REKEY_REQUEST rate limit', () => {
  it('the limiter honours one request per sender per interval', () => {
    let now = 0;
    const limiter = new RekeyRateLimiter(() => now, 10_000);
    expect(limiter.allow('carol')).toBe(true);
    expect(limiter.allow('carol')).toBe(false);
    expect(limiter.allow('bob')).toBe(true);
    now = 9_999;
    expect(limiter.allow('carol')).toBe(false);
    expect(limiter.waitMs('carol')).toBe(1);
    now = 10_000;
    expect(limiter.allow('carol')).toBe(true);
  });

  it('400 requested re-keys in a burst move the epoch by one; the rest are RekeyRateLimited', () => {
    const bus = keyedBus();
    const alice = machine(bus, 'alice');
    for (let i = 0; i < 400; i++) {
      alice.onRekeyRequest('carol', { minEpoch: alice.highestEpochSeen + 1, reason: 'requested' });
      bus.run();
    }
    for (const n of THREE) expect(bus.last(n)?.epoch).toBe(2);
    expect(bus.codes.filter((c) => c === 'RekeyRateLimited').length).toBe(399);
    expect(bus.codes.every((c) => c === 'RekeyRateLimited')).toBe(true);
    // Per sender: bob is not held back by carol's flood.
    alice.onRekeyRequest('bob', { minEpoch: 3, reason: 'key-missing' });
    bus.run();
    for (const n of THREE) expect(bus.last(n)?.epoch).toBe(3);
    // Ten seconds later carol is honoured again.
    bus.now += 10_000;
    alice.onRekeyRequest('carol', { minEpoch: 4, reason: 'requested' });
    bus.run();
    for (const n of THREE) expect(bus.last(n)?.epoch).toBe(4);
  });
});

describe('secrets of a round are zeroed on every way out', () => {
  const allZero = (bufs: Buffer[]) => bufs.every((b) => b.every((x) => x === 0));
  const randoms = (bus: Bus) => [...bus.randoms.values()].flat();

  it('after a successful round', () => {
    const bus = keyedBus();
    expect(randoms(bus).length).toBe(2 + 2 + 1); // alice's 2 challenges, bob's and carol's nonces, alice's nonce
    expect(allZero(randoms(bus))).toBe(true);
    for (const n of THREE) expect(machine(bus, n).heldSecretsForTest()).toEqual([]);
  });

  it('after a session reset in the middle of a round (responses never arrived)', () => {
    const bus = new Bus(ids(...THREE));
    bus.filter = (w) => w.type !== 'NONCE_RESPONSE';
    bus.setMembership(THREE, 1);
    bus.run();
    const held = THREE.flatMap((n) => machine(bus, n).heldSecretsForTest());
    expect(held.length).toBe(4); // alice: 2 challenges; bob, carol: their nonce
    expect(allZero(held)).toBe(false);
    for (const n of THREE) machine(bus, n).reset();
    expect(allZero(held)).toBe(true);
    expect(allZero(randoms(bus))).toBe(true);
  });

  it('after a partial round (one response in) is abandoned for a new roster version', () => {
    const bus = new Bus(ids(...THREE));
    const v1 = rosterOf(g, THREE);
    bus.setRoster(v1);
    bus.filter = (w) => !(w.type === 'NONCE_RESPONSE' && w.from === 'carol');
    bus.presence(...THREE);
    bus.run();
    const held = machine(bus, 'alice').heldSecretsForTest();
    expect(held.length).toBe(3); // 2 challenges + bob's nonce (a copy)
    expect(allZero(held)).toBe(false);
    bus.filter = () => false;
    machine(bus, 'alice').setRoster(withoutMember(g, v1, 'carol'));
    expect(allZero(held)).toBe(true);
  });

  it('after a timed-out round is superseded by a newer one that completes', () => {
    const bus = new Bus(ids(...THREE));
    bus.filter = (w) => !(w.type === 'NONCE_RESPONSE' && w.from === 'carol');
    bus.setMembership(THREE, 1);
    bus.run();
    const stale = THREE.flatMap((n) => machine(bus, n).heldSecretsForTest());
    bus.filter = () => true;
    for (const n of THREE) machine(bus, n).nextAttempt(); // failover: bob initiates epoch 2
    bus.run();
    for (const n of THREE) expect(bus.last(n)?.epoch).toBe(2);
    expect(allZero(stale)).toBe(true);
    expect(allZero(randoms(bus))).toBe(true);
  });

  it('after a failed check (a key distribution that does not decrypt)', () => {
    const bus = new Bus(ids('alice', 'bob'));
    bus.tamper = (w) => {
      if (w.type !== 'KEY_DISTRIBUTION') return w.bytes;
      const body = JSON.parse(w.bytes.toString()) as { ciphertext: string };
      const c = Buffer.from(body.ciphertext, 'base64');
      c[0] = (c[0] as number) ^ 1;
      return Buffer.from(JSON.stringify({ ...body, ciphertext: c.toString('base64') }));
    };
    bus.setMembership(['alice', 'bob'], 1);
    bus.run();
    expect(bus.last('bob')).toBeUndefined();
    const held = machine(bus, 'bob').heldSecretsForTest();
    expect(held.length).toBe(1); // bob's nonce, waiting for a distribution that may still come
    machine(bus, 'bob').reset();
    expect(allZero(randoms(bus))).toBe(true);
  });
});
