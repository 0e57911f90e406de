/**
 * Minimum key strength: RSA >= 2048 bits with e = 65537 for every certificate of a group, even
 * ones the real group CA signed. Weak certificates are made with node-forge and with OpenSSL,
 * signed by a real group CA, and refused by validateCertificate, by the CertificateValidator the
 * relay (CONNECTION, relay/auth.ts) and the client (CERT_RESPONSE, certificate-directory.ts) use,
 * and by readBundle; a weak CA can neither be opened nor issue.
 */
import { execFileSync } from 'node:child_process';
import { generateKeyPairSync } from 'node:crypto';
import { existsSync, mkdtempSync, readFileSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import forge from 'node-forge';
import { beforeAll, describe, expect, it } from 'vitest';
import { CertificateDirectory } from '../../src-main/client/certificate-directory.js';
import {
  Certificate,
  CertificateValidator,
  LocalIdentity,
  MIN_KDF_ITERATIONS,
  PkiError,
  createGroupCa,
  issueCertificate,
  readBundle,
  validateCertificate,
  writeBundle,
  type Credential,
  type PkiErrorCode,
} from '../../src-main/core/pki/index.js';

const PASSWORD = 'correct horse battery staple';
const OPENSSL = '/usr/bin/openssl';

function codeOf(fn: () => unknown): PkiErrorCode {
  try {
    fn();
  } catch (err) {
    expect(err).toBeInstanceOf(PkiError);
    return (err as PkiError).code;
  }
  throw new Error('expected a PkiError, nothing was thrown');
}

function rsaKey(bits: number, e = 65537): string {
  const { privateKey } = generateKeyPairSync('rsa', { modulusLength: bits, publicExponent: e });
  return privateKey.export({ type: 'pkcs8', format: 'pem' }) as string;
}

/** A member certificate for `keyPem` exactly as issueCertificate would write it, signed by `ca`. */
function issueWithKey(ca: Credential, name: string, keyPem: string): Credential {
  const caCert = forge.pki.certificateFromPem(ca.certificate.pem);
  const key = forge.pki.privateKeyFromPem(keyPem) as forge.pki.rsa.PrivateKey;
  const cert = forge.pki.createCertificate();
  cert.publicKey = forge.pki.setRsaPublicKey(key.n, key.e);
  cert.serialNumber = '05';
  cert.validity.notBefore = new Date(Date.now() - 60_000);
  cert.validity.notAfter = new Date(Date.now() + 86_400_000);
  cert.setSubject([{ name: 'commonName', value: name }]);
  cert.setIssuer(caCert.subject.attributes);
  cert.setExtensions([
    { name: 'basicConstraints', cA: false, critical: true },
    { name: 'keyUsage', digitalSignature: true, keyEncipherment: true, critical: true },
    { name: 'extKeyUsage', clientAuth: true },
  ]);
  cert.sign(forge.pki.privateKeyFromPem(ca.privateKeyPem), forge.md.sha256.create());
  return { certificate: Certificate.fromPem(forge.pki.certificateToPem(cert)), privateKeyPem: keyPem };
}

/** A self-signed group CA on `keyPem`, with the extensions createGroupCa writes. */
function caWithKey(keyPem: string): Credential {
  const key = forge.pki.privateKeyFromPem(keyPem) as forge.pki.rsa.PrivateKey;
  const cert = forge.pki.createCertificate();
  cert.publicKey = forge.pki.setRsaPublicKey(key.n, key.e);
  cert.serialNumber = '07';
  cert.validity.notBefore = new Date(Date.now() - 60_000);
  cert.validity.notAfter = new Date(Date.now() + 3650 * 86_400_000);
  const subject = [{ name: 'commonName', value: 'Weak CA' }];
  cert.setSubject(subject);
  cert.setIssuer(subject);
  cert.setExtensions([
    { name: 'basicConstraints', cA: true, critical: true, pathLenConstraint: 0 },
    { name: 'keyUsage', keyCertSign: true, cRLSign: true, critical: true },
  ]);
  cert.sign(key, forge.md.sha256.create());
  return { certificate: Certificate.fromPem(forge.pki.certificateToPem(cert)), privateKeyPem: keyPem };
}

describe('minimum key strength', () => {
  let ca: Credential;
  let weak: Record<'rsa1024' | 'e3', Credential>;

  beforeAll(() => {
    ca = createGroupCa({ name: 'Key Strength CA' });
    weak = {
      rsa1024: issueWithKey(ca, 'mallory', rsaKey(1024)),
      e3: issueWithKey(ca, 'trudy', rsaKey(2048, 3)),
    };
  });

  it('the crafted certificates really are signed by the group CA (only the key is wrong)', () => {
    for (const cred of Object.values(weak)) {
      expect(cred.certificate.x509.verify(ca.certificate.publicKey)).toBe(true);
    }
    expect(weak.rsa1024.certificate.keyBits).toBe(1024);
    expect(weak.e3.certificate.publicExponent).toBe(3n);
    // A strong certificate written the same way is accepted.
    const fine = issueWithKey(ca, 'bob', rsaKey(2048));
    expect(() => validateCertificate(fine.certificate, ca.certificate, { role: 'member' })).not.toThrow();
  });

  it('validateCertificate refuses a 1024-bit and an e=3 member certificate with WeakKey', () => {
    expect(codeOf(() => validateCertificate(weak.rsa1024.certificate, ca.certificate))).toBe('WeakKey');
    expect(codeOf(() => validateCertificate(weak.e3.certificate, ca.certificate))).toBe('WeakKey');
    expect(() => validateCertificate(weak.e3.certificate, ca.certificate)).toThrow(/exponent 3/);
    expect(() => validateCertificate(weak.rsa1024.certificate, ca.certificate)).toThrow(/1024-bit/);
  });

  it('the relay and client paths (CertificateValidator, CertificateDirectory) refuse them', () => {
    const relayCred = issueCertificate(ca, { name: 'relay', role: 'relay' });
    const relay = LocalIdentity.fromBundleFile(
      writeBundle(relayCred, ca.certificate, PASSWORD, { kdfIterations: MIN_KDF_ITERATIONS }),
      PASSWORD,
      'relay',
    );
    const validator = new CertificateValidator(ca.certificate);
    const alice = issueCertificate(ca, { name: 'alice', role: 'member' });
    const directory = new CertificateDirectory(validator, alice.certificate);
    for (const cred of Object.values(weak)) {
      // What relay/auth.ts does with a CONNECTION's certificate.
      expect(codeOf(() => relay.validator.validateDer(cred.certificate.der, { role: 'member' }))).toBe(
        'WeakKey',
      );
      expect(codeOf(() => validator.validate(cred.certificate, { role: 'member' }))).toBe('WeakKey');
      directory.applyPresence([
        { name: cred.certificate.name, fingerprint: cred.certificate.fingerprintHex },
      ]);
      const accepted = directory.accept(cred.certificate.name, cred.certificate);
      expect(accepted.ok).toBe(false);
      expect(accepted.ok ? '' : accepted.reason).toMatch(/RSA/);
    }
  });

  it('readBundle refuses a bundle holding a weak certificate from the real CA', () => {
    for (const cred of Object.values(weak)) {
      const bundle = writeBundle(cred, ca.certificate, PASSWORD, { kdfIterations: MIN_KDF_ITERATIONS });
      expect(codeOf(() => readBundle(bundle, PASSWORD))).toBe('WeakKey');
      expect(codeOf(() => readBundle(bundle, PASSWORD, { checkValidityPeriod: false }))).toBe('WeakKey');
    }
  });

  it('a weak CA is refused as a bundle, as the CA of a validation, and for issuing', () => {
    for (const weakCa of [caWithKey(rsaKey(1024)), caWithKey(rsaKey(2048, 3))]) {
      const caBundle = writeBundle(weakCa, weakCa.certificate, PASSWORD, {
        kdfIterations: MIN_KDF_ITERATIONS,
      });
      expect(codeOf(() => readBundle(caBundle, PASSWORD))).toBe('WeakKey');
      expect(codeOf(() => issueCertificate(weakCa, { name: 'bob', role: 'member' }))).toBe('WeakKey');
      const member = issueWithKey(weakCa, 'bob', rsaKey(2048));
      expect(codeOf(() => validateCertificate(member.certificate, weakCa.certificate))).toBe('WeakKey');
      const bundle = writeBundle(member, weakCa.certificate, PASSWORD, { kdfIterations: MIN_KDF_ITERATIONS });
      expect(codeOf(() => readBundle(bundle, PASSWORD))).toBe('WeakKey');
    }
  });

  it.skipIf(!existsSync(OPENSSL))(
    'refuses a 1024-bit certificate that OpenSSL issued from the group CA key',
    () => {
      const dir = mkdtempSync(join(tmpdir(), 'scx-weak-'));
      writeFileSync(join(dir, 'ca.pem'), ca.certificate.pem);
      writeFileSync(join(dir, 'ca.key'), ca.privateKeyPem, { mode: 0o600 });
      writeFileSync(
        join(dir, 'ext.cnf'),
        'basicConstraints=critical,CA:FALSE\nkeyUsage=critical,digitalSignature,keyEncipherment\nextendedKeyUsage=clientAuth\n',
      );
      const run = (args: string[]) => execFileSync(OPENSSL, args, { cwd: dir, stdio: 'pipe' });
      run([
        'req',
        '-new',
        '-newkey',
        'rsa:1024',
        '-nodes',
        '-keyout',
        'm.key',
        '-subj',
        '/CN=mallory',
        '-out',
        'm.csr',
      ]);
      run([
        'x509',
        '-req',
        '-in',
        'm.csr',
        '-CA',
        'ca.pem',
        '-CAkey',
        'ca.key',
        '-days',
        '30',
        '-extfile',
        'ext.cnf',
        '-out',
        'm.pem',
      ]);
      const cert = Certificate.fromPem(readFileSync(join(dir, 'm.pem'), 'utf8'));
      expect(cert.keyBits).toBe(1024);
      expect(cert.x509.verify(ca.certificate.publicKey)).toBe(true);
      expect(codeOf(() => validateCertificate(cert, ca.certificate, { role: 'member' }))).toBe('WeakKey');
    },
  );
});
