/**
 * Changing a roster (nextRoster: add member, add relay, remove member) and the monotonic
 * acceptance rule (compareRoster, acceptRoster), each refusal with its code. Real certificates.
 */
import { beforeAll, describe, expect, it } from 'vitest';
import type { Certificate } from '../../src-main/core/pki/index.js';
import { issueCertificate } from '../../src-main/core/pki/index.js';
import { LIMITS } from '../../src-main/core/protocol/index.js';
import type { Roster } from '../../src-main/core/roster/index.js';
import {
  RosterError,
  acceptRoster,
  buildRoster,
  compareRoster,
  nextRoster,
  signRoster,
  verifyRoster,
  type RosterBody,
  type RosterErrorCode,
} from '../../src-main/core/roster/index.js';
import { makeRosterFixtures, type RosterFixtures } from '../helpers/roster-fixtures.js';

let f: RosterFixtures;
let v1: Roster;
/** Now: a newcomer's certificate must be valid at the time of the change. */
const T0 = Date.now();

function rosterErrorOf(fn: () => unknown): RosterError {
  try {
    fn();
  } catch (err) {
    expect(err).toBeInstanceOf(RosterError);
    return err as RosterError;
  }
  throw new Error('expected a RosterError, nothing was thrown');
}
const codeOf = (fn: () => unknown): RosterErrorCode => rosterErrorOf(fn).code;

const issue = (body: RosterBody): Roster => verifyRoster(signRoster(body, f.ca), f.ca.certificate);
const firstBody = (): RosterBody =>
  buildRoster({
    ca: f.ca.certificate,
    name: 'Équipe Zoë 日本',
    members: [f.members.carol, f.members.alice, f.members.bob] as Certificate[],
    relays: [f.relays.relay as Certificate],
    issuedAt: T0,
  });
const must = <T>(v: T | undefined): T => {
  if (v === undefined) throw new Error('missing fixture');
  return v;
};

beforeAll(async () => {
  f = await makeRosterFixtures();
  v1 = issue(firstBody());
}, 60_000);

describe('nextRoster', () => {
  it('adds a member: version + 1, the certificate listed, the rest unchanged', () => {
    const v2 = issue(
      nextRoster(v1, { kind: 'add-member', certificate: must(f.members.dave) }, { now: T0 + 10 }),
    );
    expect(v2.version).toBe(2);
    expect(v2.issuedAt).toBe(T0 + 10);
    expect(v2.memberNames).toEqual(['alice', 'bob', 'carol', 'dave']);
    expect(v2.member('dave')?.certificate.der.equals(must(f.members.dave).der)).toBe(true);
    expect(v2.name).toBe(v1.name);
    expect(v2.relayNames).toEqual(['relay']);
  });

  it('adds a relay', () => {
    const v2 = issue(nextRoster(v1, { kind: 'add-relay', certificate: must(f.relays.relay2) }));
    expect(v2.relayNames).toEqual(['relay', 'relay2']);
    expect(v2.isRelay(must(f.relays.relay2).fingerprintHex)).toBe(true);
    expect(v2.isMember(must(f.relays.relay2).fingerprintHex)).toBe(false);
  });

  it('removes a member: gone from members, a removed entry with time, fingerprint and reason', () => {
    const carol = must(f.members.carol);
    const v2 = issue(
      nextRoster(v1, { kind: 'remove-member', name: 'carol', reason: 'lost laptop' }, { now: T0 + 5 }),
    );
    expect(v2.memberNames).toEqual(['alice', 'bob']);
    expect(v2.isMember(carol.fingerprintHex)).toBe(false);
    expect(v2.removedEntry(carol.fingerprintHex)).toEqual({
      name: 'carol',
      fingerprint: carol.fingerprintHex,
      removedAt: T0 + 5,
      reason: 'lost laptop',
    });
  });

  it('never dates a version before the previous one', () => {
    const v2 = issue(nextRoster(v1, { kind: 'remove-member', name: 'bob' }, { now: T0 - 60_000 }));
    expect(v2.issuedAt).toBe(T0);
    expect(v2.removed[0]?.reason).toBe('');
  });

  it('refuses to remove an unknown name, a relay, or someone removed already (RosterUnknownMember)', () => {
    expect(codeOf(() => nextRoster(v1, { kind: 'remove-member', name: 'zed' }))).toBe('RosterUnknownMember');
    const relay = rosterErrorOf(() => nextRoster(v1, { kind: 'remove-member', name: 'relay' }));
    expect(relay.code).toBe('RosterUnknownMember');
    expect(relay.message).toMatch(/it is a relay/);
    const v2 = issue(nextRoster(v1, { kind: 'remove-member', name: 'carol' }));
    const again = rosterErrorOf(() => nextRoster(v2, { kind: 'remove-member', name: 'carol' }));
    expect(again.code).toBe('RosterUnknownMember');
    expect(again.message).toMatch(/removed already/);
  });

  it('refuses to re-add a removed certificate, allows the removed name with a new one', () => {
    const v2 = issue(nextRoster(v1, { kind: 'remove-member', name: 'carol', reason: 'lost laptop' }));
    expect(codeOf(() => nextRoster(v2, { kind: 'add-member', certificate: must(f.members.carol) }))).toBe(
      'RosterRemovedMember',
    );
    const v3 = issue(nextRoster(v2, { kind: 'add-member', certificate: must(f.reissued.carol) }));
    expect(v3.memberNames).toEqual(['alice', 'bob', 'carol']);
    expect(v3.isMember(must(f.reissued.carol).fingerprintHex)).toBe(true);
    expect(v3.removedEntry(must(f.members.carol).fingerprintHex)?.reason).toBe('lost laptop');
  });

  it('refuses a name already listed, a wrong role, another CA (RosterDuplicate, RosterCertificate)', () => {
    expect(codeOf(() => nextRoster(v1, { kind: 'add-member', certificate: must(f.reissued.alice) }))).toBe(
      'RosterDuplicate',
    );
    expect(codeOf(() => nextRoster(v1, { kind: 'add-member', certificate: must(f.relays.relay2) }))).toBe(
      'RosterCertificate',
    );
    expect(codeOf(() => nextRoster(v1, { kind: 'add-relay', certificate: must(f.members.dave) }))).toBe(
      'RosterCertificate',
    );
    expect(codeOf(() => nextRoster(v1, { kind: 'add-member', certificate: f.outsider }))).toBe(
      'RosterCertificate',
    );
  });

  it('refuses a 17th relay (RosterLimit)', () => {
    const key = {
      privateKeyPem: f.ca.privateKeyPem,
      publicKeyPem: f.ca.certificate.publicKey.export({ type: 'spki', format: 'pem' }).toString(),
    };
    let roster = v1;
    for (let i = roster.relays.length; i < LIMITS.rosterRelays; i++) {
      const certificate = issueCertificate(f.ca, {
        name: `node${i}`,
        role: 'relay',
        keyPair: key,
      }).certificate;
      roster = issue(nextRoster(roster, { kind: 'add-relay', certificate }));
    }
    expect(roster.relays).toHaveLength(LIMITS.rosterRelays);
    const one = issueCertificate(f.ca, { name: 'one-too-many', role: 'relay', keyPair: key }).certificate;
    expect(codeOf(() => nextRoster(roster, { kind: 'add-relay', certificate: one }))).toBe('RosterLimit');
  });

  it('refuses a reason a person could not read on one line (RosterSchema)', () => {
    expect(
      codeOf(() => nextRoster(v1, { kind: 'remove-member', name: 'bob', reason: 'x'.repeat(201) })),
    ).toBe('RosterSchema');
    expect(codeOf(() => nextRoster(v1, { kind: 'remove-member', name: 'bob', reason: 'a\rb' }))).toBe(
      'RosterSchema',
    );
  });
});

describe('compareRoster and acceptRoster: never back, never a fork', () => {
  let v2: Roster;
  let v2fork: Roster;

  beforeAll(() => {
    v2 = issue(nextRoster(v1, { kind: 'add-member', certificate: must(f.members.dave) }));
    v2fork = issue(nextRoster(v1, { kind: 'remove-member', name: 'carol' }));
  });

  it('orders by version; the same version with other bytes is a conflict', () => {
    expect(compareRoster(v1, v2)).toBe('newer');
    expect(compareRoster(v2, v1)).toBe('older');
    expect(compareRoster(v2, verifyRoster(v2.bytes, f.ca.certificate))).toBe('same');
    expect(compareRoster(v2, v2fork)).toBe('conflict');
    // The same body signed again: PSS signatures differ, so the bytes differ too.
    expect(compareRoster(v1, issue(firstBody()))).toBe('conflict');
  });

  it('keeps the newer, the held on a repeat; refuses older (RosterRollback) and forks (RosterConflict)', () => {
    expect(acceptRoster(undefined, v1)).toBe(v1);
    expect(acceptRoster(v1, v2)).toBe(v2);
    expect(acceptRoster(v2, verifyRoster(v2.bytes, f.ca.certificate))).toBe(v2);
    expect(codeOf(() => acceptRoster(v2, v1))).toBe('RosterRollback');
    expect(codeOf(() => acceptRoster(v2, v2fork))).toBe('RosterConflict');
  });

  it('refuses a roster of another group (RosterForeignGroup)', () => {
    const foreign = verifyRoster(
      signRoster(
        buildRoster({
          ca: f.other.certificate,
          name: 'other',
          members: [f.outsider],
          relays: [f.outsiderRelay],
        }),
        f.other,
      ),
      f.other.certificate,
    );
    expect(codeOf(() => compareRoster(v1, foreign))).toBe('RosterForeignGroup');
    expect(codeOf(() => acceptRoster(foreign, v2))).toBe('RosterForeignGroup');
  });
});
