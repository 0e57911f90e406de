/**
 * Signed X25519 prekeys: a good one is accepted, each defect is refused with its own code, the wire
 * form round-trips, and the rotation and erasure rules hold at their boundaries.
 */
import { createPrivateKey } from 'node:crypto';
import fc from 'fast-check';
import { describe, expect, it } from 'vitest';
import { hpkeOpen, hpkeSeal, signPss } from '../../src-main/core/crypto/index.js';
import {
  DEFAULT_PREKEY_LIFETIME_MS,
  DEFAULT_PREKEY_ROTATION_MS,
  PREKEY_SIGNATURE_DOMAIN,
  PrekeyError,
  createGroupCa,
  createPrekey,
  issueCertificate,
  prekeyErasable,
  prekeyFromWire,
  prekeyRotationDue,
  prekeySigningBytes,
  prekeyToWire,
  signPrekey,
  verifyPrekey,
  type Credential,
  type LocalIdentity,
  type Prekey,
  type PrekeyErrorCode,
  type PrekeySigner,
  type SignedPrekey,
} from '../../src-main/core/pki/index.js';

// LocalIdentity is what signs prekeys in the app: it must fit PrekeySigner (a compile-time check).
const _identityIsASigner: (id: LocalIdentity) => PrekeySigner = (id) => id;

const ca = createGroupCa({ name: 'Prekey Test CA' });
const alice = issueCertificate(ca, { name: 'alice', role: 'member' });
const bob = issueCertificate(ca, { name: 'bob', role: 'member' });

function signerOf(credential: Credential): PrekeySigner {
  const key = createPrivateKey(credential.privateKeyPem);
  return { sign: (data) => signPss(key, data) };
}

const NOW = Date.UTC(2026, 11, 3, 12, 0, 0);
const HOUR = 60 * 60 * 1000;

function freshSigned(overrides: Partial<Prekey> = {}, by: Credential = alice): SignedPrekey {
  const { prekey, privateKey } = createPrekey('alice', 5, NOW - HOUR);
  privateKey.fill(0);
  return signPrekey({ ...prekey, ...overrides }, signerOf(by));
}

function prekeyErrorOf(fn: () => unknown): PrekeyError {
  try {
    fn();
  } catch (err) {
    expect(err).toBeInstanceOf(PrekeyError);
    return err as PrekeyError;
  }
  throw new Error('expected a PrekeyError, nothing was thrown');
}

function expectCode(fn: () => unknown, code: PrekeyErrorCode): void {
  expect(prekeyErrorOf(fn).code).toBe(code);
}

describe('signed prekeys', () => {
  const good = freshSigned();

  it('accepts a good one, and its key is one HPKE can seal to', () => {
    expect(() => verifyPrekey(good, alice.certificate, NOW)).not.toThrow();
    const { prekey, privateKey } = createPrekey('alice', 1, NOW);
    const signed = signPrekey(prekey, signerOf(alice));
    verifyPrekey(signed, alice.certificate, NOW);
    const sealed = hpkeSeal(signed.publicKey, Buffer.from('info'), Buffer.from('aad'), Buffer.from('hi'));
    expect(
      hpkeOpen(privateKey, sealed.enc, Buffer.from('info'), Buffer.from('aad'), sealed.ciphertext).toString(),
    ).toBe('hi');
  });

  it('gets the default lifetime of two rotation periods', () => {
    const { prekey } = createPrekey('alice', 1, NOW);
    expect(prekey.notAfter - prekey.notBefore).toBe(DEFAULT_PREKEY_LIFETIME_MS);
    expect(DEFAULT_PREKEY_LIFETIME_MS).toBe(2 * DEFAULT_PREKEY_ROTATION_MS);
  });

  it('signs domain-separated bytes with every field in them', () => {
    const bytes = prekeySigningBytes(good);
    expect(bytes.subarray(0, PREKEY_SIGNATURE_DOMAIN.length).equals(PREKEY_SIGNATURE_DOMAIN)).toBe(true);
    const variants: Prekey[] = [
      { ...good, member: 'alicf' },
      { ...good, serial: good.serial + 1 },
      { ...good, notBefore: good.notBefore + 1 },
      { ...good, notAfter: good.notAfter + 1 },
      { ...good, publicKey: Buffer.from(good.publicKey).fill(7, 0, 1) },
    ];
    for (const v of variants) expect(prekeySigningBytes(v).equals(bytes)).toBe(false);
  });

  it('length-prefixes the member name, so no two prekeys share an encoding', () => {
    fc.assert(
      fc.property(
        fc.stringMatching(/^[A-Za-z0-9._-]{1,64}$/),
        fc.stringMatching(/^[A-Za-z0-9._-]{1,64}$/),
        fc.integer({ min: 1, max: 1e12 }),
        fc.integer({ min: 1, max: 1e12 }),
        (m1, m2, s1, s2) => {
          fc.pre(m1 !== m2 || s1 !== s2);
          const a = prekeySigningBytes({ ...good, member: m1, serial: s1 });
          const b = prekeySigningBytes({ ...good, member: m2, serial: s2 });
          expect(a.equals(b)).toBe(false);
        },
      ),
      { numRuns: 100 },
    );
  });

  describe('refuses', () => {
    it('PrekeySignature: a changed field after signing', () => {
      expectCode(
        () => verifyPrekey({ ...good, notAfter: good.notAfter + HOUR }, alice.certificate, NOW),
        'PrekeySignature',
      );
      const otherKey = Buffer.from(good.publicKey);
      otherKey[0] = (otherKey[0] as number) ^ 1;
      expectCode(
        () => verifyPrekey({ ...good, publicKey: otherKey }, alice.certificate, NOW),
        'PrekeySignature',
      );
      expectCode(() => verifyPrekey({ ...good, serial: 6 }, alice.certificate, NOW), 'PrekeySignature');
    });

    it('PrekeySignature: a flipped signature bit, or a signature by another key', () => {
      const sig = Buffer.from(good.signature);
      sig[10] = (sig[10] as number) ^ 0x20;
      expectCode(() => verifyPrekey({ ...good, signature: sig }, alice.certificate, NOW), 'PrekeySignature');
      // "alice" in the prekey, but signed with bob's key.
      const forged = freshSigned({}, bob);
      expectCode(() => verifyPrekey(forged, alice.certificate, NOW), 'PrekeySignature');
    });

    it("PrekeyIdentity: a prekey for another member than the certificate's", () => {
      const bobs = freshSigned({ member: 'bob' }, bob);
      verifyPrekey(bobs, bob.certificate, NOW);
      expectCode(() => verifyPrekey(bobs, alice.certificate, NOW), 'PrekeyIdentity');
    });

    it('PrekeyIdentity: a previous prekey of another member', () => {
      const bobs = freshSigned({ member: 'bob', serial: 1 }, bob);
      expectCode(() => verifyPrekey(good, alice.certificate, NOW, { previous: bobs }), 'PrekeyIdentity');
    });

    it('PrekeyNotYetValid: before notBefore, valid from notBefore itself', () => {
      expectCode(() => verifyPrekey(good, alice.certificate, good.notBefore - 1), 'PrekeyNotYetValid');
      expect(() => verifyPrekey(good, alice.certificate, good.notBefore)).not.toThrow();
    });

    it('PrekeyExpired: at and after notAfter, valid just before', () => {
      expect(() => verifyPrekey(good, alice.certificate, good.notAfter - 1)).not.toThrow();
      expectCode(() => verifyPrekey(good, alice.certificate, good.notAfter), 'PrekeyExpired');
      expectCode(
        () => verifyPrekey(good, alice.certificate, good.notAfter + DEFAULT_PREKEY_ROTATION_MS),
        'PrekeyExpired',
      );
    });

    it('PrekeyRollback: an older serial than one already accepted', () => {
      const newer = freshSigned({ serial: 9 });
      expectCode(() => verifyPrekey(good, alice.certificate, NOW, { previous: newer }), 'PrekeyRollback');
      // A newer serial than the previous one, or the very same prekey again, is fine.
      verifyPrekey(newer, alice.certificate, NOW, { previous: good });
      verifyPrekey(good, alice.certificate, NOW, { previous: good });
    });

    it('PrekeyConflict: the accepted serial again with another key', () => {
      const twin = freshSigned({ serial: good.serial });
      expect(twin.publicKey.equals(good.publicKey)).toBe(false);
      verifyPrekey(twin, alice.certificate, NOW);
      expectCode(() => verifyPrekey(twin, alice.certificate, NOW, { previous: good }), 'PrekeyConflict');
    });

    describe('PrekeyMalformed', () => {
      const cases: [string, Partial<SignedPrekey>][] = [
        ['a 31-byte public key', { publicKey: Buffer.alloc(31, 1) }],
        ['a 33-byte public key', { publicKey: Buffer.alloc(33, 1) }],
        ['an empty member', { member: '' }],
        ['a member with a space', { member: 'al ice' }],
        ['a 65-character member', { member: 'a'.repeat(65) }],
        ['serial 0', { serial: 0 }],
        ['a fractional serial', { serial: 1.5 }],
        ['an unsafe serial', { serial: 2 ** 53 }],
        ['notAfter equal to notBefore', { notAfter: NOW - HOUR }],
        ['notAfter before notBefore', { notAfter: NOW - 2 * HOUR }],
        ['a negative notBefore', { notBefore: -1 }],
        ['a short signature', { signature: Buffer.alloc(255) }],
        ['a long signature', { signature: Buffer.alloc(257) }],
        ['an empty signature', { signature: Buffer.alloc(0) }],
      ];
      it.each(cases)('%s', (_what, change) => {
        expectCode(() => verifyPrekey({ ...good, ...change }, alice.certificate, NOW), 'PrekeyMalformed');
      });

      it('and refuses to sign one', () => {
        expectCode(
          () => signPrekey({ ...good, publicKey: Buffer.alloc(16) }, signerOf(alice)),
          'PrekeyMalformed',
        );
        expectCode(() => createPrekey('alice', 0, NOW), 'PrekeyMalformed');
        expectCode(() => createPrekey('alice', 1, NOW, 0), 'PrekeyMalformed');
      });
    });
  });

  describe('wire form', () => {
    it('round-trips through JSON and still verifies', () => {
      const wire = JSON.parse(JSON.stringify(prekeyToWire(good))) as unknown;
      const back = prekeyFromWire(wire);
      expect(back).toEqual(good);
      verifyPrekey(back, alice.certificate, NOW);
    });

    it('refuses off-schema input as PrekeyMalformed, with the schema error as cause', () => {
      const wire = prekeyToWire(good);
      const bad: unknown[] = [
        null,
        'prekey',
        { ...wire, extra: 1 },
        { ...wire, publicKey: Buffer.alloc(31).toString('base64') },
        { ...wire, publicKey: `${wire.publicKey.slice(0, -1)}!` },
        { ...wire, signature: Buffer.alloc(1025).toString('base64') },
        { ...wire, serial: 0 },
        { ...wire, serial: '5' },
        { ...wire, notAfter: -1 },
        { ...wire, member: 'not a name' },
        (({ signature: _s, ...rest }) => rest)(wire),
      ];
      for (const raw of bad) {
        const e = prekeyErrorOf(() => prekeyFromWire(raw));
        expect(e.code).toBe('PrekeyMalformed');
        expect(e.cause).toBeDefined();
      }
    });
  });
});

describe('rotation', () => {
  const prekey: Prekey = {
    member: 'alice',
    serial: 1,
    publicKey: Buffer.alloc(32, 9),
    notBefore: NOW,
    notAfter: NOW + DEFAULT_PREKEY_LIFETIME_MS,
  };

  it('is due one rotation period (7 days by default) after notBefore', () => {
    expect(prekeyRotationDue(prekey, NOW)).toBe(false);
    expect(prekeyRotationDue(prekey, NOW + DEFAULT_PREKEY_ROTATION_MS - 1)).toBe(false);
    expect(prekeyRotationDue(prekey, NOW + DEFAULT_PREKEY_ROTATION_MS)).toBe(true);
    expect(DEFAULT_PREKEY_ROTATION_MS).toBe(7 * 24 * HOUR);
  });

  it('follows a configured period', () => {
    expect(prekeyRotationDue(prekey, NOW + HOUR - 1, HOUR)).toBe(false);
    expect(prekeyRotationDue(prekey, NOW + HOUR, HOUR)).toBe(true);
  });

  it('is due at expiry when the prekey is shorter-lived than the period', () => {
    const short = { ...prekey, notAfter: NOW + HOUR };
    expect(prekeyRotationDue(short, NOW + HOUR - 1)).toBe(false);
    expect(prekeyRotationDue(short, NOW + HOUR)).toBe(true);
  });

  it('refuses a nonsensical period', () => {
    expect(() => prekeyRotationDue(prekey, NOW, -1)).toThrow(RangeError);
    expect(() => prekeyRotationDue(prekey, NOW, Number.NaN)).toThrow(RangeError);
  });
});

describe('erasure of a retired private prekey', () => {
  const retentionMs = 3 * 24 * HOUR;

  it('never while its successor is not in use', () => {
    expect(prekeyErasable({ retentionMs }, NOW + 1000 * retentionMs)).toBe(false);
  });

  it('not before the retention window has passed since the successor came into use', () => {
    expect(prekeyErasable({ successorInUseSince: NOW, retentionMs }, NOW)).toBe(false);
    expect(prekeyErasable({ successorInUseSince: NOW, retentionMs }, NOW + retentionMs - 1)).toBe(false);
  });

  it('from then on', () => {
    expect(prekeyErasable({ successorInUseSince: NOW, retentionMs }, NOW + retentionMs)).toBe(true);
    expect(prekeyErasable({ successorInUseSince: NOW, retentionMs }, NOW + 2 * retentionMs)).toBe(true);
  });

  it('matches the rule for any times', () => {
    fc.assert(
      fc.property(
        fc.option(fc.integer({ min: 0, max: 2 ** 45 }), { nil: undefined }),
        fc.integer({ min: 0, max: 2 ** 40 }),
        fc.integer({ min: 0, max: 2 ** 46 }),
        (since, retention, now) => {
          const expected = since !== undefined && now >= since + retention;
          expect(prekeyErasable({ successorInUseSince: since, retentionMs: retention }, now)).toBe(expected);
        },
      ),
    );
  });

  it('refuses a nonsensical retention', () => {
    expect(() => prekeyErasable({ successorInUseSince: NOW, retentionMs: -1 }, NOW)).toThrow(RangeError);
  });
});
