/**
 * Epochs over the roster (DESIGN.md §10.2, docs/protocol.md "Group key establishment" v2), on the
 * in-memory bus (test/helpers/key-bus.ts), which stores KEY_DISTRIBUTIONs for offline members the
 * way the v2 relay does. The key of an epoch belongs to every roster member, online or not;
 * presence never re-keys; a roster change, rotation and requests do.
 */
import { beforeAll, describe, expect, it } from 'vitest';
import type { EstablishedKey, KeyEstablishment } from '../../src-main/client/key-establishment.js';
import { keyDistributionAad } from '../../src-main/client/key-schedule.js';
import { sealEnvelope } from '../../src-main/core/crypto/digital-envelope.js';
import type { LocalIdentity } from '../../src-main/core/pki/local-identity.js';
import { decodeJsonBody, encodeJsonBody } from '../../src-main/core/protocol/json-body.js';
import { BODY_SCHEMAS } from '../../src-main/core/protocol/schemas.js';
import { makeLoadedGroup, type LoadedGroup } from '../helpers/client-identities.js';
import { Bus, type Wire } from '../helpers/key-bus.js';
import { rosterOf, withMember, withoutMember } from '../helpers/test-roster.js';

let g: LoadedGroup;
const ids = (...names: string[]) => names.map((n) => g.identities[n] as LocalIdentity);
const ALL = ['alice', 'bob', 'carol', 'dave'];

beforeAll(() => {
  g = makeLoadedGroup(ALL);
});

function machine(bus: Bus, name: string): KeyEstablishment {
  return bus.machines.get(name) as KeyEstablishment;
}

/** Every frame that left any machine, in order (recorded before the bus delivers or stores it). */
function record(bus: Bus): Wire[] {
  const seen: Wire[] = [];
  const before = bus.filter;
  bus.filter = (w) => {
    seen.push(w);
    return before(w);
  };
  return seen;
}

function sameKey(a: EstablishedKey | undefined, b: EstablishedKey | undefined): boolean {
  return a !== undefined && b !== undefined && a.derived.key.equals(b.derived.key);
}

/** A KEY_DISTRIBUTION `from` would send `to` with this (possibly dishonest) key material. */
function craftedKd(from: string, to: string, material: Record<string, unknown>, epoch: number): Wire {
  const target = g.identities[to] as LocalIdentity;
  const groupId = target.groupId;
  const envelope = sealEnvelope(
    target.certificate.publicKey,
    encodeJsonBody({ groupId, epoch, initiator: from, ...material }),
    keyDistributionAad(groupId, epoch, from, to),
  );
  return { from, to, type: 'KEY_DISTRIBUTION', bytes: encodeJsonBody({ epoch, ...envelope }) };
}

describe('a key for every roster member', () => {
  it('alone online: C = [I], a KEY_DISTRIBUTION for every other roster member, each stored', () => {
    const bus = new Bus(ids(...ALL));
    bus.setRoster(rosterOf(g, ALL));
    const sent = record(bus);
    bus.presence('alice');
    bus.run();
    const k = bus.last('alice');
    expect(k?.epoch).toBe(1);
    expect(k?.members).toEqual(ALL);
    expect(k?.contributors).toEqual(['alice']);
    expect(k?.rosterVersion).toBe(1);
    expect(sent.filter((w) => w.type === 'NONCE_REQUEST')).toEqual([]);
    expect(sent.filter((w) => w.type === 'KEY_DISTRIBUTION').map((w) => w.to)).toEqual([
      'bob',
      'carol',
      'dave',
    ]);
    for (const n of ['bob', 'carol', 'dave']) expect(bus.stored.get(n)?.length).toBe(1);
    expect(bus.problems).toEqual([]);
  });

  it('an offline member installs the stored KEY_DISTRIBUTION later: same K_e, not a contributor, no new round', () => {
    const bus = new Bus(ids(...ALL));
    bus.setRoster(rosterOf(g, ALL));
    bus.presence('alice', 'bob');
    bus.run();
    const ab = bus.last('alice');
    expect(ab?.contributors).toEqual(['alice', 'bob']);
    expect(sameKey(ab, bus.last('bob'))).toBe(true);
    const sent = record(bus);
    bus.presence('alice', 'bob', 'carol'); // carol: her stored frames first, then live
    bus.run();
    const c = bus.last('carol');
    expect(c?.epoch).toBe(ab?.epoch);
    expect(c?.readOnly).toBe(false);
    expect(c?.contributors).toEqual(['alice', 'bob']);
    expect(sameKey(c, ab)).toBe(true);
    expect(c?.derived.safetyNumber).toBe(ab?.derived.safetyNumber);
    // carol holds a usable key: she asks for nothing and nobody re-keys.
    expect(sent).toEqual([]);
    expect(bus.problems).toEqual([]);
  });

  it('presence joins and leaves never start a round', () => {
    const bus = new Bus(ids(...ALL));
    bus.setRoster(rosterOf(g, ALL));
    bus.presence(...ALL);
    bus.run();
    for (const n of ALL) expect(bus.last(n)?.epoch).toBe(1);
    const sent = record(bus);
    bus.presence('alice', 'bob', 'carol'); // dave leaves
    bus.run();
    bus.presence('bob', 'carol'); // the initiator leaves
    bus.run();
    bus.presence(...ALL); // everyone back, each still holding epoch 1
    bus.run();
    expect(sent).toEqual([]);
    for (const n of ALL) expect(bus.keys.get(n)?.map((k) => k.epoch)).toEqual([1]);
  });

  it('without a roster (transitional), a join by a member without a key keys over who is online; a leave does not', () => {
    const bus = new Bus(ids('alice', 'bob', 'carol'));
    bus.presence('alice', 'bob');
    bus.run();
    expect(bus.last('bob')?.members).toEqual(['alice', 'bob']);
    expect(bus.last('bob')?.rosterVersion).toBe(0);
    const sent = record(bus);
    bus.presence('alice');
    bus.presence('alice', 'bob'); // bob reconnects holding his key: nothing happens
    bus.run();
    expect(sent).toEqual([]);
    bus.presence('alice', 'bob', 'carol'); // carol has no key: she asks alice
    bus.run();
    expect(sent[0]).toMatchObject({ from: 'carol', to: 'alice', type: 'REKEY_REQUEST' });
    for (const n of ['alice', 'bob', 'carol'])
      expect(bus.last(n)?.members).toEqual(['alice', 'bob', 'carol']);
    expect(bus.last('carol')?.epoch).toBe(2);
  });
});

describe('what starts a new epoch', () => {
  it('a roster change: a new epoch over the new M, nothing sealed for the removed member', () => {
    const bus = new Bus(ids(...ALL));
    const v1 = rosterOf(g, ALL);
    bus.setRoster(v1);
    bus.presence(...ALL);
    bus.run();
    const sent = record(bus);
    const v2 = withoutMember(g, v1, 'dave');
    bus.setRoster(v2, ['alice', 'bob', 'carol']);
    bus.run();
    for (const n of ['alice', 'bob', 'carol']) {
      const k = bus.last(n);
      expect(k?.epoch).toBe(2);
      expect(k?.rosterVersion).toBe(2);
      expect(k?.members).toEqual(['alice', 'bob', 'carol']);
    }
    expect(sent.filter((w) => w.to === 'dave')).toEqual([]);
    expect(bus.last('dave')?.epoch).toBe(1);
    // Adding a member is a roster change too; the newcomer (offline) gets its stored key.
    const three = new Bus(ids(...ALL));
    const t1 = rosterOf(g, ['alice', 'bob', 'carol']);
    three.setRoster(t1);
    three.presence('alice', 'bob', 'carol');
    three.run();
    three.setRoster(withMember(g, t1, 'dave'));
    three.run();
    expect(three.last('alice')?.epoch).toBe(2);
    expect(three.last('alice')?.members).toEqual(ALL);
    expect(three.stored.get('dave')?.length).toBe(1);
  });

  it('rotation by age: after 24 h the online initiator (only) starts a new epoch', () => {
    const bus = new Bus(ids('alice', 'bob'));
    bus.setRoster(rosterOf(g, ['alice', 'bob']));
    bus.presence('alice', 'bob');
    bus.run();
    bus.now += 24 * 3600_000 - 1;
    expect(machine(bus, 'alice').maybeRotate()).toBe(false);
    bus.now += 1;
    expect(machine(bus, 'bob').maybeRotate()).toBe(false); // not the initiator
    expect(machine(bus, 'alice').maybeRotate()).toBe(true);
    bus.run();
    for (const n of ['alice', 'bob']) expect(bus.last(n)?.epoch).toBe(2);
    expect(machine(bus, 'alice').maybeRotate()).toBe(false); // the new epoch is young
  });

  it('rotation by count: at 100,000 messages; a configured bound is honoured', () => {
    const bus = new Bus(ids('alice', 'bob'), undefined, () => ({ rotation: { maxMessages: 10 } }));
    bus.setRoster(rosterOf(g, ['alice', 'bob']));
    bus.presence('alice', 'bob');
    bus.run();
    bus.countMessages('alice', 9);
    expect(machine(bus, 'alice').maybeRotate()).toBe(false);
    bus.countMessages('alice', 1);
    expect(machine(bus, 'alice').maybeRotate()).toBe(true);
    bus.run();
    expect(bus.last('bob')?.epoch).toBe(2);
    const defaults = new Bus(ids('alice', 'bob'));
    defaults.setRoster(rosterOf(g, ['alice', 'bob']));
    defaults.presence('alice', 'bob');
    defaults.run();
    defaults.countMessages('alice', 99_999);
    expect(machine(defaults, 'alice').maybeRotate()).toBe(false);
    defaults.countMessages('alice', 1);
    expect(machine(defaults, 'alice').maybeRotate()).toBe(true);
  });
});

describe('a member whose stored key is stale', () => {
  it('asks for a new epoch when a message comes under an epoch it never got (once per interval)', () => {
    const bus = new Bus(ids('alice', 'bob', 'carol'));
    const v1 = rosterOf(g, ['alice', 'bob', 'carol']);
    bus.setRoster(v1);
    bus.presence('alice', 'bob', 'carol');
    bus.run();
    bus.presence('alice', 'bob');
    machine(bus, 'alice').onRekeyRequest('bob', { minEpoch: 2, reason: 'requested' });
    bus.run();
    bus.stored.set('carol', []); // nothing kept the epoch-2 key for carol (a v1 relay)
    expect(bus.last('alice')?.epoch).toBe(2);
    bus.presence('alice', 'bob', 'carol'); // carol is back with epoch 1, usable for all she knows
    bus.run();
    expect(bus.last('carol')?.epoch).toBe(1);
    const sent = record(bus);
    machine(bus, 'carol').onUnknownEpoch(2); // bob's message under epoch 2 could not be opened
    machine(bus, 'carol').onUnknownEpoch(7); // within the interval: nothing more
    bus.run();
    expect(sent[0]).toMatchObject({ from: 'carol', to: 'alice', type: 'REKEY_REQUEST' });
    expect(sent.filter((w) => w.from === 'carol' && w.type === 'REKEY_REQUEST').length).toBe(1);
    for (const n of ['alice', 'bob', 'carol']) expect(bus.last(n)?.epoch).toBe(3);
    expect(sameKey(bus.last('carol'), bus.last('bob'))).toBe(true);
  });
});

describe('the receiver checks', () => {
  it('a KEY_DISTRIBUTION that omits a member who answered is refused', () => {
    const bus = new Bus(ids('alice', 'bob', 'carol'));
    bus.setRoster(rosterOf(g, ['alice', 'bob', 'carol']));
    // alice's genuine distribution to bob is swapped for one without bob's nonce.
    bus.filter = (w) => !(w.type === 'KEY_DISTRIBUTION' && w.to === 'bob');
    bus.presence('alice', 'bob', 'carol');
    bus.run();
    expect(bus.last('carol')?.contributors).toEqual(['alice', 'bob', 'carol']);
    bus.filter = () => true;
    const bob = machine(bus, 'bob');
    const forged = craftedKd(
      'alice',
      'bob',
      {
        rosterVersion: 1,
        members: ['alice', 'bob', 'carol'],
        contributors: ['alice', 'carol'],
        nonces: [Buffer.alloc(32, 1), Buffer.alloc(32, 2)],
      },
      1,
    );
    bob.onKeyDistribution('alice', decodeJsonBody(BODY_SCHEMAS.KEY_DISTRIBUTION, forged.bytes, 'x'));
    expect(bus.last('bob')).toBeUndefined();
    expect(
      bus.problems.some((p) => p.startsWith('bob:') && /does not match what this member answered/.test(p)),
    ).toBe(true);
  });

  it('a KEY_DISTRIBUTION listing a member who never answered as contributor is refused', () => {
    const bus = new Bus(ids('alice', 'bob', 'carol'));
    bus.setRoster(rosterOf(g, ['alice', 'bob', 'carol']));
    bus.presence('alice', 'bob');
    bus.run();
    const carol = machine(bus, 'carol');
    carol.setRoster(rosterOf(g, ['alice', 'bob', 'carol']));
    const padded = craftedKd(
      'alice',
      'carol',
      {
        rosterVersion: 1,
        members: ['alice', 'bob', 'carol'],
        contributors: ['alice', 'bob', 'carol'],
        nonces: [Buffer.alloc(32, 1), Buffer.alloc(32, 2), Buffer.alloc(32, 3)],
      },
      2,
    );
    carol.onKeyDistribution('alice', decodeJsonBody(BODY_SCHEMAS.KEY_DISTRIBUTION, padded.bytes, 'x'));
    expect(bus.last('carol')).toBeUndefined();
    expect(bus.problems).toEqual([
      'carol: the key material of alice for epoch 2 lists this member as a contributor, but it never answered that request',
    ]);
    // The genuine stored one (carol not a contributor) is accepted.
    bus.presence('alice', 'bob', 'carol');
    bus.run();
    expect(sameKey(bus.last('carol'), bus.last('alice'))).toBe(true);
  });

  it('a key of an older roster version is accepted read-only; one of a newer version waits for the roster', () => {
    const bus = new Bus(ids(...ALL));
    const v1 = rosterOf(g, ALL);
    bus.setRoster(v1);
    bus.presence('alice', 'bob');
    bus.run(); // epoch 1 (v1) stored for carol and dave
    const v2 = withoutMember(g, v1, 'dave');
    bus.setRoster(v2, ['alice', 'bob']);
    bus.run(); // epoch 2 (v2) stored for carol
    expect(bus.last('alice')?.epoch).toBe(2);
    // carol comes back holding v2 already (the relay sends the roster first): epoch 1 is historic.
    bus.setRoster(v2, ['carol']);
    bus.presence('alice', 'bob', 'carol');
    bus.run();
    const carols = bus.keys.get('carol') ?? [];
    expect(carols.map((k) => [k.epoch, k.rosterVersion, k.readOnly])).toEqual([
      [1, 1, true],
      [2, 2, false],
    ]);
    expect(sameKey(carols[0], bus.keys.get('alice')?.[0])).toBe(true);
    expect(sameKey(carols[1], bus.last('alice'))).toBe(true);
    expect(machine(bus, 'carol').needsKey).toBe(false);

    // dave, still on v1, is not in v2's M: the KEY_DISTRIBUTION for v2 never came to him. A v2 key
    // reaching a member on v1 waits until its roster catches up.
    const late = new Bus(ids('alice', 'bob'));
    late.setRoster(v2, ['alice']);
    late.setRoster(v1, ['bob']);
    late.presence('alice'); // alice alone, v2: stored for bob
    late.run();
    late.presence('alice', 'bob');
    late.run();
    expect(late.last('bob')).toBeUndefined(); // held, bob needs v2 first
    machine(late, 'bob').setRoster(v2);
    late.run();
    expect(sameKey(late.last('bob'), late.last('alice'))).toBe(true);
  });

  it('a NONCE_REQUEST that overtakes the replay waits for LIVE: a member that lost its state never reuses an epoch in the log', () => {
    // Before: alice alone made epochs 1..3, each sealed for bob and stored for him.
    const before = new Bus(ids('alice', 'bob'));
    before.setRoster(rosterOf(g, ['alice', 'bob']));
    before.presence('alice');
    before.run();
    machine(before, 'alice').startRound();
    before.run();
    machine(before, 'alice').startRound();
    before.run();
    const stored = before.stored.get('bob') ?? [];
    expect(stored.map((w) => decodeJsonBody(BODY_SCHEMAS.KEY_DISTRIBUTION, w.bytes, 'kd').epoch)).toEqual([
      1, 2, 3,
    ]);
    // Now: alice starts over with no state (her own distributions are not addressed to her), and
    // bob connects; her NONCE_REQUEST for epoch 1 reaches him before his replay is done.
    const bus = new Bus(ids('alice', 'bob'));
    bus.setRoster(rosterOf(g, ['alice', 'bob']));
    bus.online = new Set(['alice', 'bob']);
    machine(bus, 'alice').setPresence(['alice', 'bob'], 1);
    machine(bus, 'bob').setPresence(['alice', 'bob'], 1);
    machine(bus, 'alice').goLive();
    const request = bus.queue.shift() as Wire;
    expect(request.type).toBe('NONCE_REQUEST');
    bus.deliverNow(request);
    expect(bus.queue).toEqual([]); // held, not answered
    for (const w of stored) bus.deliverNow(w);
    machine(bus, 'bob').goLive();
    bus.run();
    const a = bus.last('alice');
    expect(a?.epoch).toBe(4);
    expect(sameKey(a, bus.last('bob'))).toBe(true);
    expect(bus.problems).toEqual([]);
  });

  it('a member that follows the log and comes without a key waits one attempt before asking: the key on its way is not crossed by a new epoch', () => {
    const abc = ['alice', 'bob', 'carol'];
    const start = () => {
      const bus = new Bus(ids(...abc), undefined, () => ({ followsLog: () => true }));
      bus.setRoster(rosterOf(g, abc));
      bus.presence('alice', 'bob');
      bus.run();
      // carol's KEY_DISTRIBUTION is still in flight as she goes live.
      const inFlight = bus.stored.get('carol') ?? [];
      bus.stored.set('carol', []);
      const sent = record(bus);
      bus.presence('alice', 'bob', 'carol');
      bus.run();
      return { bus, inFlight, sent };
    };
    const crossing = start();
    expect(crossing.sent.filter((w) => w.type === 'REKEY_REQUEST')).toEqual([]);
    for (const w of crossing.inFlight) crossing.bus.deliverNow(w);
    crossing.bus.run();
    expect(sameKey(crossing.bus.last('carol'), crossing.bus.last('alice'))).toBe(true);
    expect(crossing.bus.last('alice')?.epoch).toBe(1);

    // The key never comes (say the log lost it): after the first attempt's timeout she asks.
    const lost = start();
    machine(lost.bus, 'carol').nextAttempt();
    lost.bus.run();
    const asked = lost.sent.filter((w) => w.type === 'REKEY_REQUEST');
    expect(asked.map((w) => [w.from, w.to])).toEqual([['carol', 'bob']]);
    const c = lost.bus.last('carol');
    expect(c?.epoch).toBe(2);
    expect(sameKey(c, lost.bus.last('alice'))).toBe(true);
    expect([...crossing.bus.problems, ...lost.bus.problems]).toEqual([]);
  });

  it("a member without a key who comes online during a round it cannot see, and starts its own at the same epoch, takes the other round's key: no second epoch", () => {
    const abc = ['alice', 'bob', 'carol'];
    // Which of the two reaches alice first, bob's KEY_DISTRIBUTION or the stale-epoch answers to
    // her own round, depends on the relay and the load: both orders end in epoch 1 for everyone.
    for (const keyFirst of [true, false]) {
      const bus = new Bus(ids(...abc), undefined, () => ({ followsLog: () => true }));
      bus.setRoster(rosterOf(g, abc));
      bus.presence('bob', 'carol');
      bus.run(1); // bob's NONCE_REQUEST reaches carol; her answer is in flight
      expect(bus.queue.map((w) => [w.from, w.type])).toEqual([['carol', 'NONCE_RESPONSE']]);
      // alice (first in the sorted list: the expected initiator) goes live without a key and
      // starts epoch 1 herself, not knowing bob's round.
      bus.presence('alice', 'bob', 'carol');
      expect(bus.queue.filter((w) => w.from === 'alice' && w.type === 'NONCE_REQUEST')).toHaveLength(2);
      if (!keyFirst) {
        // The stale-epoch answers to alice overtake bob's KEY_DISTRIBUTION to her; what bob sends
        // her after it still comes after it (one relay link per member keeps each sender's order).
        let held: Wire | undefined;
        bus.filter = (w) => {
          if (w.type === 'KEY_DISTRIBUTION' && w.to === 'alice' && held === undefined) {
            held = w;
            return false;
          }
          if (held && w.from === held.from && w.to === 'alice') {
            bus.deliverNow(held);
            held = undefined;
          }
          return true;
        };
        bus.run();
        if (held) bus.deliverNow(held);
      }
      bus.run();
      for (const n of abc)
        expect(
          bus.keys.get(n)?.map((k) => k.epoch),
          `${n}, key first: ${keyFirst}`,
        ).toEqual([1]);
      expect(sameKey(bus.last('alice'), bus.last('carol'))).toBe(true);
      expect(bus.problems).toEqual([]);
    }
  });

  it('conflicting key material for an installed epoch: keep the installed one, ask for a new epoch above it', () => {
    const bus = new Bus(ids('alice', 'bob', 'carol'));
    bus.setRoster(rosterOf(g, ['alice', 'bob', 'carol']));
    bus.presence('alice');
    bus.run(); // alice alone: epoch 1, stored for bob and carol
    bus.stored.set('bob', []); // lost for bob (say the relay's log was replaced)
    bus.presence('bob'); // bob alone, never saw epoch 1: he keys epoch 1 too
    bus.run();
    expect(bus.last('bob')?.initiator).toBe('bob');
    expect(bus.last('bob')?.epoch).toBe(1);
    const sent = record(bus);
    bus.presence('carol'); // both epoch-1 keys are stored for carol: alice's first
    bus.run();
    const carol = bus.last('carol');
    expect(carol?.initiator).toBe('alice');
    expect(bus.keys.get('carol')?.length).toBe(1);
    expect(bus.codes).toContain('KeyConflict');
    // Every member asks the same one (the lower name of the two initiators) for the next epoch.
    const ask = sent.find((w) => w.type === 'REKEY_REQUEST');
    expect(ask).toMatchObject({ from: 'carol', to: 'alice' });
    expect(decodeJsonBody(BODY_SCHEMAS.REKEY_REQUEST, (ask as Wire).bytes, 'x')).toEqual({
      minEpoch: 2,
      reason: 'stale-epoch',
    });
    // Once they meet, alice sees bob's conflicting key herself and runs epoch 2 for everyone.
    bus.presence('alice', 'bob', 'carol');
    bus.run();
    for (const n of ['alice', 'bob', 'carol']) expect(bus.last(n)?.epoch).toBe(2);
    expect(sameKey(bus.last('bob'), bus.last('carol'))).toBe(true);
  });
});
