/**
 * Non-Latin group names round-trip: CN and O are written as UTF8String and read back decoded, and
 * the CA's subject is copied byte for byte into the issuer of its certificates (so they still chain,
 * for us and for OpenSSL).
 */
import { execFileSync } from 'node:child_process';
import { existsSync, mkdtempSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import forge from 'node-forge';
import { describe, expect, it } from 'vitest';
import {
  MIN_KDF_ITERATIONS,
  createGroupCa,
  issueCertificate,
  readBundle,
  validateCertificate,
  writeBundle,
} from '../../src-main/core/pki/index.js';

const OPENSSL = '/usr/bin/openssl';
const NAME = 'Équipe Zoë 日本';

describe('certificate names', () => {
  it('keeps a non-Latin CA name intact through issuing, bundles and validation', () => {
    const ca = createGroupCa({ name: NAME });
    expect(ca.certificate.name).toBe(NAME);
    const alice = issueCertificate(ca, { name: 'alice', role: 'member' });
    expect(alice.certificate.issuerName).toBe(NAME);
    expect(() => validateCertificate(alice.certificate, ca.certificate, { role: 'member' })).not.toThrow();
    const loaded = readBundle(
      writeBundle(alice, ca.certificate, 'pw pw pw pw', { kdfIterations: MIN_KDF_ITERATIONS }),
      'pw pw pw pw',
    );
    expect(loaded.ca.name).toBe(NAME);
    expect(loaded.certificate.issuerName).toBe(NAME);
  });

  it('writes CN and O as UTF8String, and the issuer as the exact bytes of the CA subject', () => {
    const ca = createGroupCa({ name: NAME });
    const alice = issueCertificate(ca, { name: 'alice', role: 'member' });
    const caCert = forge.pki.certificateFromPem(ca.certificate.pem);
    for (const attr of caCert.subject.attributes) {
      expect(attr.valueTagClass as number).toBe(forge.asn1.Type.UTF8);
    }
    const subjectDer = (pem: string, part: 'subject' | 'issuer'): string => {
      const tbs = forge.pki.certificateToAsn1(forge.pki.certificateFromPem(pem)).value[0] as forge.asn1.Asn1;
      const fields = tbs.value as forge.asn1.Asn1[];
      // TBSCertificate: [0] version, serial, signature, issuer, validity, subject, ...
      return forge.asn1.toDer(fields[part === 'issuer' ? 3 : 5] as forge.asn1.Asn1).toHex();
    };
    expect(subjectDer(alice.certificate.pem, 'issuer')).toBe(subjectDer(ca.certificate.pem, 'subject'));
  });

  it.skipIf(!existsSync(OPENSSL))('reads the same name with openssl -nameopt utf8', () => {
    const ca = createGroupCa({ name: NAME });
    const dir = mkdtempSync(join(tmpdir(), 'scx-names-'));
    writeFileSync(join(dir, 'ca.pem'), ca.certificate.pem);
    const out = execFileSync(
      OPENSSL,
      ['x509', '-in', join(dir, 'ca.pem'), '-noout', '-subject', '-nameopt', 'utf8'],
      {
        encoding: 'utf8',
      },
    );
    expect(out).toContain(`CN=${NAME}`);
    expect(out).toContain('O=SecureChat-X group');
  });
});
