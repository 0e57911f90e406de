/**
 * The CA-signed roster (src-main/core/roster): sign and verify, each refusal with its code.
 * Changes and acceptance: roster-changes.test.ts. Real certificates from a real group CA.
 */
import { randomBytes } from 'node:crypto';
import { beforeAll, describe, expect, it } from 'vitest';
import type { Certificate } from '../../src-main/core/pki/index.js';
import { LIMITS, decodeBody, encodeJsonBody, sealMessage } from '../../src-main/core/protocol/index.js';
import type { Roster } from '../../src-main/core/roster/index.js';
import {
  MAX_ROSTER_BYTES,
  RosterError,
  buildRoster,
  rosterSigner,
  signRoster,
  verifyRoster,
  type RosterBody,
  type RosterErrorCode,
} from '../../src-main/core/roster/index.js';
import {
  makeRosterFixtures,
  signRawRoster,
  wireBody,
  type RosterFixtures,
} from '../helpers/roster-fixtures.js';

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

describe('a signed roster', () => {
  it('verifies with the group CA and reads back every field', () => {
    expect(v1.groupId).toBe(f.ca.certificate.fingerprintHex);
    expect(v1.name).toBe('Équipe Zoë 日本');
    expect(v1.version).toBe(1);
    expect(v1.issuedAt).toBe(T0);
    expect(v1.memberNames).toEqual(['alice', 'bob', 'carol']);
    expect(v1.relayNames).toEqual(['relay']);
    expect(v1.removed).toEqual([]);
    expect(v1.ca.der.equals(f.ca.certificate.der)).toBe(true);
  });

  it('answers membership by fingerprint and name, and relays apart from members', () => {
    const alice = must(f.members.alice);
    const relay = must(f.relays.relay);
    expect(v1.isMember(alice.fingerprintHex)).toBe(true);
    expect(v1.member('alice')?.fingerprintHex).toBe(alice.fingerprintHex);
    expect(v1.isMember(must(f.reissued.alice).fingerprintHex)).toBe(false);
    expect(v1.isMember(relay.fingerprintHex)).toBe(false);
    expect(v1.isRelay(relay.fingerprintHex)).toBe(true);
    expect(v1.relay('relay')?.certificate.der.equals(relay.der)).toBe(true);
    expect(v1.member('relay')).toBeUndefined();
    expect(v1.removedEntry(alice.fingerprintHex)).toBeUndefined();
  });

  it('is immutable: frozen lists, bytes handed out as copies', () => {
    expect(Object.isFrozen(v1)).toBe(true);
    expect(Object.isFrozen(v1.members)).toBe(true);
    expect(Object.isFrozen(v1.members[0])).toBe(true);
    const bytes = v1.bytes;
    const last = bytes.length - 1;
    bytes[last] = (bytes[last] as number) ^ 1;
    expect(v1.bytes.equals(bytes)).toBe(false);
    expect(() => (v1.members as Roster['members'][number][]).push(must(v1.members[0]))).toThrow();
    expect(JSON.stringify(v1)).not.toMatch(/certificate|MII/);
  });

  it('names its CA as the sender, for inspect (without trusting it)', () => {
    expect(rosterSigner(v1.bytes).fingerprintHex).toBe(f.ca.certificate.fingerprintHex);
  });
});

describe('verifyRoster refuses', () => {
  it('a roster signed by another CA (RosterForeignGroup)', () => {
    const body = wireBody(firstBody());
    const foreign = signRawRoster({ ...body, groupId: f.other.certificate.fingerprintHex }, f.other);
    expect(codeOf(() => verifyRoster(foreign, f.ca.certificate))).toBe('RosterForeignGroup');
    // It verifies for its own CA up to the certificates, which our CA issued, not that one.
    expect(codeOf(() => verifyRoster(foreign, f.other.certificate))).toBe('RosterCertificate');
  });

  it("our CA's certificate with another key's signature (RosterSignature)", () => {
    const forged = signRawRoster(wireBody(firstBody()), f.ca, f.other);
    expect(codeOf(() => verifyRoster(forged, f.ca.certificate))).toBe('RosterSignature');
  });

  it('a body naming another group, even signed by our CA (RosterForeignGroup)', () => {
    const body = { ...wireBody(firstBody()), groupId: f.other.certificate.fingerprintHex };
    expect(codeOf(() => verifyRoster(signRawRoster(body, f.ca), f.ca.certificate))).toBe(
      'RosterForeignGroup',
    );
  });

  it.each([
    ['an unknown field', { extra: 1 }],
    ['version 0', { version: 0 }],
    ['a fractional version', { version: 1.5 }],
    ['no relay', { relays: [] }],
    ['a name over 64 characters', { name: 'x'.repeat(LIMITS.groupNameChars + 1) }],
    ['a name with a control character', { name: 'team\u001b[2J' }],
    ['an empty name', { name: '' }],
    ['a negative issue time', { issuedAt: -1 }],
    [
      'a reason over 200 characters',
      {
        removed: [
          {
            name: 'zed',
            fingerprint: 'ab'.repeat(32),
            removedAt: T0,
            reason: 'x'.repeat(LIMITS.reasonChars + 1),
          },
        ],
      },
    ],
    [
      'a reason with a newline',
      {
        removed: [
          { name: 'zed', fingerprint: 'ab'.repeat(32), removedAt: T0, reason: 'a\nroster v9: forged' },
        ],
      },
    ],
    [
      'more than 512 members',
      {
        members: Array.from({ length: LIMITS.rosterMembers + 1 }, (_, i) => ({
          name: `m${i}`,
          certificate: 'AA==',
        })),
      },
    ],
    [
      'more than 16 relays',
      {
        relays: Array.from({ length: LIMITS.rosterRelays + 1 }, (_, i) => ({
          name: `r${i}`,
          certificate: 'AA==',
        })),
      },
    ],
  ])('a body with %s (RosterSchema)', (_why, patch) => {
    const bytes = signRawRoster({ ...wireBody(firstBody()), ...patch }, f.ca);
    expect(codeOf(() => verifyRoster(bytes, f.ca.certificate))).toBe('RosterSchema');
  });

  it('a certificate listed under another name (RosterCertificate)', () => {
    const body = wireBody(firstBody());
    const members = body.members as { name: string; certificate: string }[];
    const bob = must(members.find((m) => m.name === 'bob'));
    bob.certificate = must(f.members.alice).der.toString('base64');
    const err = rosterErrorOf(() => verifyRoster(signRawRoster(body, f.ca), f.ca.certificate));
    expect(err.code).toBe('RosterCertificate');
    expect(err.message).toMatch(/lists member "bob" with the certificate of "alice"/);
  });

  it('a relay certificate as a member, a member one as a relay, one from another CA (RosterCertificate)', () => {
    for (const patch of [
      { members: [{ name: 'relay2', certificate: must(f.relays.relay2).der.toString('base64') }] },
      { relays: [{ name: 'dave', certificate: must(f.members.dave).der.toString('base64') }] },
      { members: [{ name: 'alice', certificate: f.outsider.der.toString('base64') }] },
      { members: [{ name: 'alice', certificate: randomBytes(600).toString('base64') }] },
    ]) {
      const err = rosterErrorOf(() =>
        verifyRoster(signRawRoster({ ...wireBody(firstBody()), ...patch }, f.ca), f.ca.certificate),
      );
      expect(err.code).toBe('RosterCertificate');
      expect(err.cause).toBeDefined();
    }
  });

  it('a name, a certificate or a removal listed twice (RosterDuplicate)', () => {
    const body = wireBody(firstBody());
    const members = body.members as unknown[];
    const verifyWith = (patch: Record<string, unknown>): RosterError =>
      rosterErrorOf(() => verifyRoster(signRawRoster({ ...body, ...patch }, f.ca), f.ca.certificate));
    // One name, two certificates (both really alice's).
    const twoAlices = verifyWith({
      members: [...members, { name: 'alice', certificate: must(f.reissued.alice).der.toString('base64') }],
    });
    expect(twoAlices.code).toBe('RosterDuplicate');
    expect(twoAlices.message).toMatch(/lists "alice" twice/);
    // The same entry twice.
    expect(verifyWith({ members: [...members, members[0]] }).code).toBe('RosterDuplicate');
    const removedTwice = [
      { name: 'zed', fingerprint: 'ab'.repeat(32), removedAt: T0, reason: '' },
      { name: 'zed', fingerprint: 'ab'.repeat(32), removedAt: T0 + 1, reason: 'again' },
    ];
    const removal = verifyWith({ removed: removedTwice });
    expect(removal.code).toBe('RosterDuplicate');
    expect(removal.message).toMatch(/removes the certificate of "zed" twice/);
  });

  it('a removed certificate listed as a member or relay (RosterRemovedMember)', () => {
    for (const cert of [must(f.members.bob), must(f.relays.relay)]) {
      const body = {
        ...wireBody(firstBody()),
        removed: [
          { name: cert.name, fingerprint: cert.fingerprintHex, removedAt: T0, reason: 'lost laptop' },
        ],
      };
      expect(codeOf(() => verifyRoster(signRawRoster(body, f.ca), f.ca.certificate))).toBe(
        'RosterRemovedMember',
      );
    }
  });

  it('what is not a roster: other message types, junk, nothing, too much (RosterEncoding)', () => {
    const disconnect = sealMessage(
      'DISCONNECT',
      { kind: 'certificate', der: f.ca.certificate.der },
      '',
      { reason: 'x' },
      () => Buffer.alloc(256, 1),
    );
    for (const bytes of [
      disconnect,
      randomBytes(300),
      Buffer.alloc(0),
      Buffer.alloc(1024 * 1024 + 1, 1),
      Buffer.from('-----BEGIN CERTIFICATE-----'),
    ]) {
      expect(codeOf(() => verifyRoster(bytes, f.ca.certificate))).toBe('RosterEncoding');
    }
  });

  it('a body over the size bound, even signed by our CA (RosterLimit)', () => {
    const body = wireBody(firstBody());
    const gone = (i: number): unknown => ({
      name: `gone${String(i).padStart(4, '0')}`,
      fingerprint: randomBytes(32).toString('hex'),
      removedAt: T0,
      reason: 'r'.repeat(LIMITS.reasonChars),
    });
    // Just over the body bound, still under the 1 MiB frame: the body bound is what refuses it.
    const entryBytes = JSON.stringify(gone(0)).length + 1;
    const count = Math.ceil((LIMITS.rosterBodyBytes - encodeJsonBody(body).length) / entryBytes) + 1;
    body.removed = Array.from({ length: count }, (_, i) => gone(i));
    expect(encodeJsonBody(body).length).toBeGreaterThan(LIMITS.rosterBodyBytes);
    const bytes = signRawRoster(body, f.ca);
    expect(bytes.length).toBeLessThan(MAX_ROSTER_BYTES);
    expect(codeOf(() => verifyRoster(bytes, f.ca.certificate))).toBe('RosterLimit');
    expect(codeOf(() => signRoster(decodeBody('ROSTER', encodeJsonBody(body)), f.ca))).toBe('RosterLimit');
  });
});

describe('signRoster', () => {
  it('refuses to sign what verification would refuse, with the same codes', () => {
    const base = firstBody();
    const alice = must(f.members.alice);
    const cases: [Partial<RosterBody>, RosterErrorCode][] = [
      [{ groupId: f.other.certificate.fingerprintHex }, 'RosterForeignGroup'],
      [{ members: [{ name: 'bob', certificate: alice.der }] }, 'RosterCertificate'],
      [{ relays: [] }, 'RosterSchema'],
      [
        { removed: [{ name: 'alice', fingerprint: alice.fingerprintHex, removedAt: T0, reason: '' }] },
        'RosterRemovedMember',
      ],
    ];
    for (const [patch, code] of cases)
      expect(codeOf(() => signRoster({ ...base, ...patch }, f.ca))).toBe(code);
    // Only a CA signs rosters.
    const memberCredential = { certificate: alice, privateKeyPem: f.ca.privateKeyPem };
    expect(codeOf(() => signRoster(base, memberCredential))).toBe('RosterForeignGroup');
  });
});
