/**
 * Properties of the roster codec and of roster changes (fast-check): round trip, every byte of a
 * signed roster matters, and any sequence of changes keeps the invariants, checked against a
 * plain model of who should be listed.
 */
import fc from 'fast-check';
import { beforeAll, describe, expect, it } from 'vitest';
import type { Certificate } from '../../src-main/core/pki/index.js';
import {
  RosterError,
  acceptRoster,
  buildRoster,
  compareRoster,
  nextRoster,
  signRoster,
  verifyRoster,
  type Roster,
  type RosterChange,
  type RosterErrorCode,
} from '../../src-main/core/roster/index.js';
import {
  MEMBER_NAMES,
  RELAY_NAMES,
  makeRosterFixtures,
  type RosterFixtures,
} from '../helpers/roster-fixtures.js';

let f: RosterFixtures;
let memberPool: Certificate[];
let relayPool: Certificate[];

beforeAll(async () => {
  f = await makeRosterFixtures();
  memberPool = MEMBER_NAMES.flatMap((n) => [f.members[n], f.reissued[n]] as Certificate[]);
  relayPool = RELAY_NAMES.map((n) => f.relays[n] as Certificate);
}, 60_000);

const issue = (body: Parameters<typeof signRoster>[0]): Roster =>
  verifyRoster(signRoster(body, f.ca), f.ca.certificate);

/** Distinct-name picks from a pool of certificates (two per member name). */
const subsetArb = (size: number, min: number): fc.Arbitrary<number[]> =>
  fc.uniqueArray(fc.integer({ min: 0, max: size - 1 }), { minLength: min, maxLength: size });

function distinctNames(certs: Certificate[]): Certificate[] {
  const seen = new Set<string>();
  return certs.filter((c) => !seen.has(c.name) && seen.add(c.name));
}

describe('the roster codec (properties)', () => {
  it('round-trips: what is signed is what verifies, field for field', () => {
    fc.assert(
      fc.property(
        subsetArb(10, 0),
        subsetArb(3, 1),
        fc
          .string({ minLength: 1, maxLength: 64, unit: 'binary' })
          .filter((s) => !/\p{Cc}/u.test(s) && s.length <= 64),
        fc.nat({ max: 4_000_000_000_000 }),
        (mi, ri, name, issuedAt) => {
          const members = distinctNames(mi.map((i) => memberPool[i] as Certificate));
          const relays = ri.map((i) => relayPool[i] as Certificate);
          const bytes = signRoster(
            buildRoster({ ca: f.ca.certificate, name, members, relays, issuedAt }),
            f.ca,
          );
          const roster = verifyRoster(bytes, f.ca.certificate);
          expect(roster.bytes.equals(bytes)).toBe(true);
          expect(roster.name).toBe(name);
          expect(roster.version).toBe(1);
          expect(roster.issuedAt).toBe(issuedAt);
          expect(roster.memberNames).toEqual(members.map((c) => c.name).sort());
          for (const c of members) expect(roster.member(c.name)?.fingerprintHex).toBe(c.fingerprintHex);
          expect(roster.relayNames).toEqual(relays.map((c) => c.name).sort());
        },
      ),
      { numRuns: 40 },
    );
  });

  it('refuses any single byte changed, anywhere in a signed roster', () => {
    const bytes = signRoster(
      buildRoster({
        ca: f.ca.certificate,
        name: 'team',
        members: [f.members.alice, f.members.bob] as Certificate[],
        relays: [f.relays.relay as Certificate],
      }),
      f.ca,
    );
    const allowed: RosterErrorCode[] = ['RosterEncoding', 'RosterForeignGroup', 'RosterSignature'];
    fc.assert(
      fc.property(fc.nat({ max: bytes.length - 1 }), fc.integer({ min: 1, max: 255 }), (at, xor) => {
        const bad = Buffer.from(bytes);
        bad[at] = (bad[at] as number) ^ xor;
        try {
          verifyRoster(bad, f.ca.certificate);
        } catch (err) {
          expect(err).toBeInstanceOf(RosterError);
          expect(allowed).toContain((err as RosterError).code);
          return;
        }
        throw new Error(`byte ${at} ^ ${xor} was accepted`);
      }),
      { numRuns: 300 },
    );
    // Cut short or extended: the length fields no longer add up.
    for (const bad of [bytes.subarray(0, bytes.length - 1), Buffer.concat([bytes, Buffer.from([0])])]) {
      expect(() => verifyRoster(bad, f.ca.certificate)).toThrow(RosterError);
    }
  });
});

type Step =
  | { kind: 'add-member'; pick: number }
  | { kind: 'add-relay'; pick: number }
  | { kind: 'remove-member'; pick: number; reason: string };

const stepArb: fc.Arbitrary<Step> = fc.oneof(
  fc.record({ kind: fc.constant('add-member' as const), pick: fc.nat({ max: 9 }) }),
  fc.record({ kind: fc.constant('add-relay' as const), pick: fc.nat({ max: 2 }) }),
  fc.record({
    kind: fc.constant('remove-member' as const),
    pick: fc.nat({ max: 9 }),
    reason: fc.constantFrom('', 'lost laptop', 'left the team'),
  }),
);

describe('random sequences of changes (model-based)', () => {
  it('keep the invariants: +1 per change, unique names, removed never listed, never back', () => {
    fc.assert(
      fc.property(fc.array(stepArb, { minLength: 1, maxLength: 12 }), (steps) => {
        let roster = issue(
          buildRoster({
            ca: f.ca.certificate,
            name: 'team',
            members: [f.members.alice as Certificate],
            relays: [f.relays.relay as Certificate],
          }),
        );
        // The model: fingerprint by name for members and relays, and every removed fingerprint.
        const members = new Map<string, string>([['alice', (f.members.alice as Certificate).fingerprintHex]]);
        const relays = new Map<string, string>([['relay', (f.relays.relay as Certificate).fingerprintHex]]);
        const removed: string[] = [];
        for (const step of steps) {
          const before = roster;
          let change: RosterChange;
          let expected: RosterErrorCode | 'ok';
          if (step.kind === 'remove-member') {
            const name = MEMBER_NAMES[step.pick % MEMBER_NAMES.length] as string;
            change = { kind: 'remove-member', name, reason: step.reason };
            expected = members.has(name) ? 'ok' : 'RosterUnknownMember';
          } else {
            const pool = step.kind === 'add-member' ? memberPool : relayPool;
            const cert = pool[step.pick % pool.length] as Certificate;
            change = { kind: step.kind, certificate: cert };
            if (members.has(cert.name) || relays.has(cert.name)) expected = 'RosterDuplicate';
            else if (removed.includes(cert.fingerprintHex)) expected = 'RosterRemovedMember';
            else expected = 'ok';
          }
          let outcome: RosterErrorCode | 'ok' = 'ok';
          try {
            roster = issue(nextRoster(roster, change));
          } catch (err) {
            if (!(err instanceof RosterError)) throw err;
            outcome = err.code;
          }
          expect(outcome).toBe(expected);
          if (outcome !== 'ok') {
            expect(roster).toBe(before);
            continue;
          }
          // Apply the change to the model.
          if (change.kind === 'remove-member') {
            removed.push(members.get(change.name) as string);
            members.delete(change.name);
          } else {
            (change.kind === 'add-member' ? members : relays).set(
              change.certificate.name,
              change.certificate.fingerprintHex,
            );
          }
          expect(roster.version).toBe(before.version + 1);
          expect(roster.issuedAt).toBeGreaterThanOrEqual(before.issuedAt);
          expect(compareRoster(before, roster)).toBe('newer');
          expect(acceptRoster(before, roster)).toBe(roster);
          expect(() => acceptRoster(roster, before)).toThrow(RosterError);
          // The roster says what the model says.
          expect(new Map(roster.members.map((m) => [m.name, m.fingerprintHex]))).toEqual(members);
          expect(new Map(roster.relays.map((r) => [r.name, r.fingerprintHex]))).toEqual(relays);
          expect(roster.removed.map((r) => r.fingerprint)).toEqual(removed);
          // Removed entries only ever grow, unchanged.
          expect(roster.removed.slice(0, before.removed.length)).toEqual(before.removed);
          for (const fp of removed) {
            expect(roster.isMember(fp)).toBe(false);
            expect(roster.isRelay(fp)).toBe(false);
          }
          const names = [...roster.members, ...roster.relays].map((e) => e.name);
          expect(new Set(names).size).toBe(names.length);
          expect(roster.memberNames).toEqual([...members.keys()].sort());
        }
      }),
      { numRuns: 60 },
    );
  });
});
