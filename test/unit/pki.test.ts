import { execFileSync } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import { existsSync, mkdtempSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import forge from 'node-forge';
import { beforeAll, describe, expect, it } from 'vitest';
import { oaepEncrypt, verifyPss } from '../../src-main/core/crypto/index.js';
import {
  Certificate,
  CertificateValidator,
  LocalIdentity,
  MIN_KDF_ITERATIONS,
  PkiError,
  assertValidIdentityName,
  createGroupCa,
  fingerprintHex,
  formatFingerprint,
  isValidIdentityName,
  issueCertificate,
  readBundle,
  validateCertificate,
  writeBundle,
  type Credential,
  type PkiErrorCode,
} from '../../src-main/core/pki/index.js';
import { withValidity } from '../helpers/group.js';

const PASSWORD = 'correct horse battery staple';
const ITERATIONS = MIN_KDF_ITERATIONS;
const OPENSSL = '/usr/bin/openssl';

function pkiErrorOf(fn: () => unknown): PkiError {
  try {
    fn();
  } catch (err) {
    expect(err).toBeInstanceOf(PkiError);
    return err as PkiError;
  }
  throw new Error('expected a PkiError, nothing was thrown');
}

function expectPkiError(fn: () => unknown, code: PkiErrorCode): void {
  expect(pkiErrorOf(fn).code).toBe(code);
}

/**
 * A certificate issued by `ca` with forge directly, so tests can produce what issueCertificate
 * never would (a bad name, missing key usages).
 */
function forgeIssue(
  ca: Credential,
  cn: string,
  extensions: Record<string, unknown>[],
  keyPem = ca.privateKeyPem,
): Certificate {
  const caCert = forge.pki.certificateFromPem(ca.certificate.pem);
  const cert = forge.pki.createCertificate();
  cert.publicKey = forge.pki.setRsaPublicKey(
    (forge.pki.privateKeyFromPem(keyPem) as forge.pki.rsa.PrivateKey).n,
    (forge.pki.privateKeyFromPem(keyPem) as forge.pki.rsa.PrivateKey).e,
  );
  cert.serialNumber = '01';
  cert.validity.notBefore = new Date(Date.now() - 60_000);
  cert.validity.notAfter = new Date(Date.now() + 86_400_000);
  cert.setSubject([{ name: 'commonName', value: cn }]);
  cert.setIssuer(caCert.subject.attributes);
  cert.setExtensions(extensions);
  cert.sign(forge.pki.privateKeyFromPem(ca.privateKeyPem), forge.md.sha256.create());
  return Certificate.fromPem(forge.pki.certificateToPem(cert));
}

let ca: Credential;
let otherCa: Credential;
let alice: Credential;
let relay: Credential;
let aliceBundle: Buffer;

beforeAll(() => {
  ca = createGroupCa({ name: 'Unit Test CA' });
  otherCa = createGroupCa({ name: 'Unit Test CA' }); // same name on purpose: names prove nothing
  alice = issueCertificate(ca, { name: 'alice', role: 'member' });
  relay = issueCertificate(ca, { name: 'relay', role: 'relay' });
  aliceBundle = writeBundle(alice, ca.certificate, PASSWORD, { kdfIterations: ITERATIONS });
});

describe('group CA certificate', () => {
  it('is a CA allowed to sign certificates and CRLs only', () => {
    const c = ca.certificate;
    expect(c.isCa).toBe(true);
    expect(c.role).toBe('ca');
    expect(c.keyUsage).toEqual({
      digitalSignature: false,
      keyEncipherment: false,
      keyCertSign: true,
      cRLSign: true,
    });
    expect(c.x509.ca).toBe(true);
    expect(c.name).toBe('Unit Test CA');
    expect(c.issuerName).toBe('Unit Test CA');
    expect(c.keyBits).toBe(2048);
    // Self-signed.
    expect(c.x509.verify(c.publicKey)).toBe(true);
  });

  it('marks basicConstraints and keyUsage critical', () => {
    const text = forge.pki.certificateFromPem(ca.certificate.pem);
    const bc = text.getExtension('basicConstraints') as { critical?: boolean } | null;
    const ku = text.getExtension('keyUsage') as { critical?: boolean } | null;
    expect(bc?.critical).toBe(true);
    expect(ku?.critical).toBe(true);
  });

  it('rejects an empty or over-long CA name', () => {
    expectPkiError(() => createGroupCa({ name: '' }), 'InvalidName');
    expectPkiError(() => createGroupCa({ name: 'x'.repeat(65) }), 'InvalidName');
  });
});

describe('issued certificates', () => {
  it('gives a member clientAuth, digitalSignature and keyEncipherment, and no CA rights', () => {
    const c = alice.certificate;
    expect(c.name).toBe('alice');
    expect(c.issuerName).toBe('Unit Test CA');
    expect(c.role).toBe('member');
    expect(c.clientAuth).toBe(true);
    expect(c.serverAuth).toBe(false);
    expect(c.isCa).toBe(false);
    expect(c.x509.ca).toBe(false);
    expect(c.keyUsage).toEqual({
      digitalSignature: true,
      keyEncipherment: true,
      keyCertSign: false,
      cRLSign: false,
    });
    expect(c.x509.checkIssued(ca.certificate.x509)).toBe(true);
    expect(c.x509.verify(ca.certificate.publicKey)).toBe(true);
  });

  it('gives the relay serverAuth (not clientAuth)', () => {
    const c = relay.certificate;
    expect(c.role).toBe('relay');
    expect(c.serverAuth).toBe(true);
    expect(c.clientAuth).toBe(false);
    expect(c.keyUsage?.digitalSignature).toBe(true);
    expect(c.keyUsage?.keyEncipherment).toBe(true);
  });

  it('uses random, distinct, positive serial numbers', () => {
    const serials = [ca, otherCa, alice, relay].map((c) => c.certificate.serialHex);
    expect(new Set(serials).size).toBe(serials.length);
    for (const s of serials) {
      expect(s).toMatch(/^[0-9a-f]+$/);
      expect(s.length).toBeGreaterThanOrEqual(30); // ~128 random bits
      expect(parseInt(s.slice(0, 2), 16)).toBeLessThan(0x80);
    }
  });

  it('never outlives its CA and is backdated only slightly', () => {
    const shortCa = createGroupCa({ validityDays: 30 });
    const m = issueCertificate(shortCa, { name: 'bob', role: 'member', validityDays: 825 });
    expect(m.certificate.notAfter.getTime()).toBeLessThanOrEqual(shortCa.certificate.notAfter.getTime());
    const skew = Date.now() - alice.certificate.notBefore.getTime();
    expect(skew).toBeGreaterThan(0);
    expect(skew).toBeLessThan(10 * 60_000);
  });

  it('refuses to issue from a participant certificate or an expired CA', () => {
    expectPkiError(() => issueCertificate(alice, { name: 'bob', role: 'member' }), 'IssuerNotCa');
    const expiredCa: Credential = {
      privateKeyPem: ca.privateKeyPem,
      certificate: Object.create(ca.certificate, {
        notAfter: { value: new Date(Date.now() - 1000) },
      }) as Certificate,
    };
    expectPkiError(() => issueCertificate(expiredCa, { name: 'bob', role: 'member' }), 'Expired');
  });

  it('refuses out-of-range validity and unsupported key sizes', () => {
    expectPkiError(
      () => issueCertificate(ca, { name: 'bob', role: 'member', validityDays: 0 }),
      'BadCertificate',
    );
    expectPkiError(
      () => issueCertificate(ca, { name: 'bob', role: 'member', validityDays: 1.5 }),
      'BadCertificate',
    );
    expectPkiError(
      // @ts-expect-error 1024 is deliberately outside KeyBits
      () => issueCertificate(ca, { name: 'bob', role: 'member', keyBits: 1024 }),
      'BadCertificate',
    );
  });

  it('issues 3072-bit keys on request', () => {
    const big = issueCertificate(ca, { name: 'carol', role: 'member', keyBits: 3072 });
    expect(big.certificate.keyBits).toBe(3072);
    expect(big.certificate.publicKey.asymmetricKeyDetails?.modulusLength).toBe(3072);
    validateCertificate(big.certificate, ca.certificate, { role: 'member' });
  });
});

describe('identity names', () => {
  it.each([['a'], ['alice'], ['Bob_2'], ['relay-eu.1'], ['x'.repeat(64)]])('accepts %s', (name) => {
    expect(isValidIdentityName(name)).toBe(true);
    expect(() => assertValidIdentityName(name)).not.toThrow();
  });

  it.each([
    ['empty', ''],
    ['65 characters', 'x'.repeat(65)],
    ['a space', 'alice smith'],
    ['leading space', ' alice'],
    ['a newline', 'alice\n'],
    ['unicode letters', 'zoë'],
    ['a homoglyph', 'аlice'], // Cyrillic а
    ['a slash', 'alice/bob'],
    ['a backslash', 'alice\\bob'],
    ['a NUL', 'alice\0'],
    ['a colon', 'a:b'],
  ])('rejects a name with %s', (_why, name) => {
    expect(isValidIdentityName(name)).toBe(false);
    expectPkiError(() => assertValidIdentityName(name), 'InvalidName');
    expectPkiError(() => issueCertificate(ca, { name, role: 'member' }), 'InvalidName');
  });
});

describe('PKCS#12 bundles', () => {
  it('round-trips certificate, CA and a working private key', () => {
    const loaded = readBundle(aliceBundle, PASSWORD);
    expect(loaded.certificate.fingerprintHex).toBe(alice.certificate.fingerprintHex);
    expect(loaded.ca.fingerprintHex).toBe(ca.certificate.fingerprintHex);
    const id = LocalIdentity.fromBundle(loaded, 'member');
    const data = Buffer.from('proof of possession');
    expect(verifyPss(alice.certificate.publicKey, data, id.sign(data))).toBe(true);
    const secret = randomBytes(32);
    expect(id.decrypt(oaepEncrypt(alice.certificate.publicKey, secret))).toEqual(secret);
    expect(id.groupId).toBe(ca.certificate.fingerprintHex);
  });

  it('reads the organiser CA bundle as its own holder', () => {
    const caBundle = writeBundle(ca, ca.certificate, PASSWORD, { kdfIterations: ITERATIONS });
    const loaded = readBundle(caBundle, PASSWORD);
    expect(loaded.certificate.isCa).toBe(true);
    expect(loaded.ca.fingerprintHex).toBe(ca.certificate.fingerprintHex);
  });

  it('never exposes the private key through JSON', () => {
    const id = LocalIdentity.fromBundleFile(aliceBundle, PASSWORD);
    const json = JSON.stringify(id);
    expect(json).not.toMatch(/PRIVATE|BEGIN/);
    expect(JSON.parse(json)).toEqual({ name: 'alice', fingerprint: alice.certificate.fingerprintHex });
  });

  it('checks the role a bundle is opened for', () => {
    expectPkiError(() => LocalIdentity.fromBundleFile(aliceBundle, PASSWORD, 'relay'), 'WrongRole');
    const relayBundle = writeBundle(relay, ca.certificate, PASSWORD, { kdfIterations: ITERATIONS });
    expectPkiError(() => LocalIdentity.fromBundleFile(relayBundle, PASSWORD, 'member'), 'WrongRole');
    expect(LocalIdentity.fromBundleFile(relayBundle, PASSWORD, 'relay').name).toBe('relay');
  });

  it('reports a wrong password as WrongPassword', () => {
    expectPkiError(() => readBundle(aliceBundle, 'wrong password'), 'WrongPassword');
    expectPkiError(() => readBundle(aliceBundle, ''), 'WrongPassword');
  });

  it('refuses an empty password or an out-of-range KDF cost when writing', () => {
    expectPkiError(
      () => writeBundle(alice, ca.certificate, '', { kdfIterations: ITERATIONS }),
      'WrongPassword',
    );
    expect(() => writeBundle(alice, ca.certificate, PASSWORD, { kdfIterations: 1000 })).toThrow(PkiError);
  });

  it('reports random bytes, truncation, emptiness and huge files as CorruptBundle', () => {
    expectPkiError(() => readBundle(randomBytes(2000), PASSWORD), 'CorruptBundle');
    expectPkiError(() => readBundle(Buffer.alloc(0), PASSWORD), 'CorruptBundle');
    expectPkiError(() => readBundle(Buffer.alloc(300 * 1024), PASSWORD), 'CorruptBundle');
    for (const cut of [1, 16, Math.floor(aliceBundle.length / 2), aliceBundle.length - 1]) {
      expectPkiError(() => readBundle(aliceBundle.subarray(0, cut), PASSWORD), 'CorruptBundle');
    }
    const pem = Buffer.from(alice.certificate.pem);
    expectPkiError(() => readBundle(pem, PASSWORD), 'CorruptBundle');
  });

  it('never throws anything but PkiError for corrupted bundles', () => {
    // Single-byte corruptions at spread-out positions: each must be a typed error (or, for a
    // byte the format ignores, an intact bundle), never a raw forge/OpenSSL exception.
    const step = Math.max(1, Math.floor(aliceBundle.length / 40));
    for (let i = 0; i < aliceBundle.length; i += step) {
      const bad = Buffer.from(aliceBundle);
      bad[i] = (bad[i] as number) ^ 0x5a;
      try {
        const loaded = readBundle(bad, PASSWORD);
        expect(loaded.certificate.fingerprintHex).toBe(alice.certificate.fingerprintHex);
      } catch (err) {
        expect(err, `byte ${i}`).toBeInstanceOf(PkiError);
      }
    }
  });

  it('reports a PKCS#12 without a private key as MissingKey', () => {
    const asn1 = forge.pkcs12.toPkcs12Asn1(
      null,
      [forge.pki.certificateFromPem(alice.certificate.pem)],
      PASSWORD,
      {
        algorithm: 'aes256',
        count: ITERATIONS,
      },
    );
    const der = Buffer.from(forge.asn1.toDer(asn1).getBytes(), 'binary');
    expectPkiError(() => readBundle(der, PASSWORD), 'MissingKey');
  });

  it('reports a key without its certificate as KeyMismatch', () => {
    // The bundle carries alice's key but only bob's certificate and the CA.
    const bob = issueCertificate(ca, { name: 'bob', role: 'member' });
    const asn1 = forge.pkcs12.toPkcs12Asn1(
      forge.pki.privateKeyFromPem(alice.privateKeyPem) as forge.pki.rsa.PrivateKey,
      [bob.certificate.pem, ca.certificate.pem].map((p) => forge.pki.certificateFromPem(p)),
      PASSWORD,
      { algorithm: 'aes256', count: ITERATIONS },
    );
    const der = Buffer.from(forge.asn1.toDer(asn1).getBytes(), 'binary');
    expectPkiError(() => readBundle(der, PASSWORD), 'KeyMismatch');
  });

  it('reports a bundle without its CA as MissingCertificate', () => {
    const asn1 = forge.pkcs12.toPkcs12Asn1(
      forge.pki.privateKeyFromPem(alice.privateKeyPem) as forge.pki.rsa.PrivateKey,
      [forge.pki.certificateFromPem(alice.certificate.pem)],
      PASSWORD,
      { algorithm: 'aes256', count: ITERATIONS },
    );
    const der = Buffer.from(forge.asn1.toDer(asn1).getBytes(), 'binary');
    expectPkiError(() => readBundle(der, PASSWORD), 'MissingCertificate');
  });

  it('reports a certificate that does not chain to the bundled CA as NotIssuedByCa', () => {
    const mixed = writeBundle(alice, otherCa.certificate, PASSWORD, { kdfIterations: ITERATIONS });
    expectPkiError(() => readBundle(mixed, PASSWORD), 'NotIssuedByCa');
  });

  describe('checkValidityPeriod: false (what inspect uses)', () => {
    const YEAR = 365 * 86_400_000;
    const expired = () =>
      withValidity(ca, alice, new Date(Date.now() - 3 * YEAR), new Date(Date.now() - 2 * YEAR));
    const future = () =>
      withValidity(ca, alice, new Date(Date.now() + YEAR), new Date(Date.now() + 2 * YEAR));

    it('reads an expired or not yet valid bundle, which the default read refuses', () => {
      for (const [cred, code] of [
        [expired(), 'Expired'],
        [future(), 'NotYetValid'],
      ] as const) {
        const p12 = writeBundle(cred, ca.certificate, PASSWORD, { kdfIterations: ITERATIONS });
        expectPkiError(() => readBundle(p12, PASSWORD), code);
        expectPkiError(() => readBundle(p12, PASSWORD, { checkValidityPeriod: true }), code);
        // Everything that uses a bundle keeps the full check.
        expectPkiError(() => LocalIdentity.fromBundleFile(p12, PASSWORD, 'member'), code);
        const loaded = readBundle(p12, PASSWORD, { checkValidityPeriod: false });
        expect(loaded.certificate.fingerprintHex).toBe(cred.certificate.fingerprintHex);
        expect(loaded.certificate.notAfter.getTime()).toBe(cred.certificate.notAfter.getTime());
        expect(loaded.ca.fingerprintHex).toBe(ca.certificate.fingerprintHex);
      }
    });

    it('still requires the certificate to be issued by the bundled CA and to match the key', () => {
      const foreign = writeBundle(expired(), otherCa.certificate, PASSWORD, { kdfIterations: ITERATIONS });
      expectPkiError(() => readBundle(foreign, PASSWORD, { checkValidityPeriod: false }), 'NotIssuedByCa');
      const bob = issueCertificate(ca, { name: 'bob', role: 'member' });
      const oldBob = withValidity(ca, bob, new Date(Date.now() - 3 * YEAR), new Date(Date.now() - 2 * YEAR));
      const asn1 = forge.pkcs12.toPkcs12Asn1(
        forge.pki.privateKeyFromPem(alice.privateKeyPem) as forge.pki.rsa.PrivateKey,
        [oldBob.certificate.pem, ca.certificate.pem].map((p) => forge.pki.certificateFromPem(p)),
        PASSWORD,
        { algorithm: 'aes256', count: ITERATIONS },
      );
      const der = Buffer.from(forge.asn1.toDer(asn1).getBytes(), 'binary');
      expectPkiError(() => readBundle(der, PASSWORD, { checkValidityPeriod: false }), 'KeyMismatch');
      expectPkiError(
        () => readBundle(aliceBundle, 'wrong password', { checkValidityPeriod: false }),
        'WrongPassword',
      );
    });

    it('is not a way around validation for CertificateValidator', () => {
      const validator = new CertificateValidator(ca.certificate);
      // Extra fields are ignored: the validator always checks the validity window.
      const options = { role: 'member' as const, checkValidityPeriod: false };
      expectPkiError(() => validator.validate(expired().certificate, options), 'Expired');
      expect(() =>
        validateCertificate(expired().certificate, ca.certificate, { checkValidityPeriod: false }),
      ).not.toThrow();
    });
  });
});

describe('validateCertificate', () => {
  it('accepts a member and a relay in their roles', () => {
    expect(() => validateCertificate(alice.certificate, ca.certificate, { role: 'member' })).not.toThrow();
    expect(() => validateCertificate(relay.certificate, ca.certificate, { role: 'relay' })).not.toThrow();
    expect(() => validateCertificate(alice.certificate, ca.certificate)).not.toThrow();
  });

  it('rejects a certificate from another CA with the same name', () => {
    expectPkiError(() => validateCertificate(alice.certificate, otherCa.certificate), 'NotIssuedByCa');
  });

  it('rejects a certificate whose issuer name matches but whose signature is by another key', () => {
    // Signed by otherCa's key, issuer name = ca's: only the signature check can catch it.
    const forged = forgeIssue(
      { certificate: ca.certificate, privateKeyPem: otherCa.privateKeyPem },
      'mallory',
      [
        { name: 'basicConstraints', cA: false },
        { name: 'keyUsage', digitalSignature: true, keyEncipherment: true },
        { name: 'extKeyUsage', clientAuth: true },
      ],
      alice.privateKeyPem,
    );
    expectPkiError(() => validateCertificate(forged, ca.certificate), 'NotIssuedByCa');
  });

  it('rejects expired and not-yet-valid certificates', () => {
    const c = alice.certificate;
    expectPkiError(
      () => validateCertificate(c, ca.certificate, { now: new Date(c.notAfter.getTime() + 1000) }),
      'Expired',
    );
    expectPkiError(
      () => validateCertificate(c, ca.certificate, { now: new Date(c.notBefore.getTime() - 1000) }),
      'NotYetValid',
    );
    expect(() =>
      validateCertificate(c, ca.certificate, { now: new Date(c.notAfter.getTime() - 1000) }),
    ).not.toThrow();
  });

  it('rejects the wrong role', () => {
    expectPkiError(
      () => validateCertificate(relay.certificate, ca.certificate, { role: 'member' }),
      'WrongRole',
    );
    expectPkiError(
      () => validateCertificate(alice.certificate, ca.certificate, { role: 'relay' }),
      'WrongRole',
    );
  });

  it('rejects a CA certificate presented as a participant', () => {
    expectPkiError(
      () => validateCertificate(ca.certificate, ca.certificate, { role: 'member' }),
      'BadKeyUsage',
    );
  });

  it('rejects a participant certificate used as the CA', () => {
    expectPkiError(() => validateCertificate(relay.certificate, alice.certificate), 'IssuerNotCa');
  });

  it('rejects certificates without the key usages a participant needs', () => {
    const noKu = forgeIssue(ca, 'dave', [{ name: 'extKeyUsage', clientAuth: true }], alice.privateKeyPem);
    expectPkiError(() => validateCertificate(noKu, ca.certificate), 'BadKeyUsage');
    const signOnly = forgeIssue(
      ca,
      'dave',
      [
        { name: 'keyUsage', digitalSignature: true },
        { name: 'extKeyUsage', clientAuth: true },
      ],
      alice.privateKeyPem,
    );
    expectPkiError(() => validateCertificate(signOnly, ca.certificate), 'BadKeyUsage');
  });

  it('rejects a validly signed certificate whose name is not an identity', () => {
    const badName = forgeIssue(
      ca,
      'alice/../bob',
      [
        { name: 'keyUsage', digitalSignature: true, keyEncipherment: true },
        { name: 'extKeyUsage', clientAuth: true },
      ],
      alice.privateKeyPem,
    );
    expectPkiError(() => validateCertificate(badName, ca.certificate), 'InvalidName');
  });

  it('CertificateValidator caches successes per role and never caches failures', () => {
    const v = new CertificateValidator(ca.certificate);
    expect(v.validate(alice.certificate, { role: 'member' })).toBe(alice.certificate);
    expect(v.validate(alice.certificate, { role: 'member' })).toBe(alice.certificate);
    // A cached member success must not leak into a relay check.
    expectPkiError(() => v.validate(alice.certificate, { role: 'relay' }), 'WrongRole');
    expectPkiError(() => v.validate(alice.certificate, { role: 'relay' }), 'WrongRole');
    // Expiry still applies to a cached entry.
    expectPkiError(
      () =>
        v.validate(alice.certificate, {
          role: 'member',
          now: new Date(alice.certificate.notAfter.getTime() + 1),
        }),
      'Expired',
    );
    expect(v.validateDer(relay.certificate.der, { role: 'relay' }).name).toBe('relay');
    expectPkiError(() => v.validateDer(randomBytes(100)), 'BadCertificate');
  });
});

describe('Certificate parsing and fingerprints', () => {
  it('refuses non-certificates with BadCertificate', () => {
    expectPkiError(() => Certificate.fromDer(randomBytes(500)), 'BadCertificate');
    expectPkiError(() => Certificate.fromDer(Buffer.alloc(0)), 'BadCertificate');
    expectPkiError(() => Certificate.fromPem('hello'), 'BadCertificate');
    expectPkiError(() => Certificate.fromPem(alice.privateKeyPem), 'BadCertificate');
  });

  it('gives one certificate exactly one fingerprint: trailing bytes and non-canonical DER are refused', () => {
    const der = alice.certificate.der;
    expectPkiError(() => Certificate.fromDer(Buffer.concat([der, Buffer.of(0)])), 'BadCertificate');
    // The outer SEQUENCE's length re-encoded in a longer (BER, non-DER) form: same certificate,
    // different bytes, hence a second fingerprint if it were accepted.
    expect(der[1]).toBe(0x82);
    const longForm = Buffer.concat([Buffer.of(0x30, 0x83, 0x00), der.subarray(2)]);
    expectPkiError(() => Certificate.fromDer(longForm), 'BadCertificate');
  });

  it('round-trips PEM and DER to the same certificate', () => {
    const fromPem = Certificate.fromPem(alice.certificate.pem);
    const fromDer = Certificate.fromDer(alice.certificate.der);
    expect(fromPem.fingerprintHex).toBe(alice.certificate.fingerprintHex);
    expect(fromDer.der.equals(alice.certificate.der)).toBe(true);
  });

  it('formats fingerprints as 64 raw lowercase hex and 16 upper-case groups of 4', () => {
    const c = alice.certificate;
    expect(c.fingerprintHex).toMatch(/^[0-9a-f]{64}$/);
    expect(c.fingerprint.length).toBe(32);
    expect(fingerprintHex(c.fingerprint)).toBe(c.fingerprintHex);
    expect(c.fingerprintDisplay).toMatch(/^[0-9A-F]{4}( [0-9A-F]{4}){15}$/);
    expect(c.fingerprintDisplay.replaceAll(' ', '').toLowerCase()).toBe(c.fingerprintHex);
    expect(formatFingerprint(c.fingerprintHex)).toBe(c.fingerprintDisplay);
    expect(formatFingerprint(c.fingerprint)).toBe(c.fingerprintDisplay);
  });

  it.skipIf(!existsSync(OPENSSL))('agrees with `openssl x509 -fingerprint -sha256`', () => {
    const dir = mkdtempSync(join(tmpdir(), 'scx-pki-'));
    for (const c of [ca.certificate, alice.certificate, relay.certificate]) {
      const file = join(dir, `${c.name}.pem`);
      writeFileSync(file, c.pem);
      const out = execFileSync(OPENSSL, ['x509', '-in', file, '-noout', '-fingerprint', '-sha256'], {
        encoding: 'utf8',
      });
      // "sha256 Fingerprint=AB:CD:..." (the prefix's case differs between OpenSSL versions)
      const hex = out.trim().split('=')[1]?.replaceAll(':', '').toLowerCase();
      expect(hex).toBe(c.fingerprintHex);
    }
  });
});
