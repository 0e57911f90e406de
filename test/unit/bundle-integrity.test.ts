/**
 * Tamper-proof bundles: readBundle refuses any PKCS#12 whose contents are not all covered by a MAC
 * that verifies under the password, or whose key is not the one shrouded key bag; a wrong password
 * stays WrongPassword. Files are crafted from outside (test/helpers/pfx-craft.ts).
 */
import { createPublicKey } from 'node:crypto';
import forge from 'node-forge';
import { beforeAll, describe, expect, it } from 'vitest';
import {
  LocalIdentity,
  MIN_KDF_ITERATIONS,
  PkiError,
  createGroupCa,
  issueCertificate,
  readBundle,
  writeBundle,
  type Credential,
  type PkiErrorCode,
} from '../../src-main/core/pki/index.js';
import {
  authSafeOf,
  bagType,
  buildPfx,
  certBag,
  dataSafe,
  pfxParts,
  plainBagsOf,
  plainKeyBag,
  shroudedKeyBagOf,
  swappedCaBundle,
  withFlippedMac,
  withMacIterations,
  withoutMac,
} from '../helpers/pfx-craft.js';

const PASSWORD = 'correct horse battery staple';
const ITERATIONS = MIN_KDF_ITERATIONS;

function codeOf(fn: () => unknown): PkiErrorCode {
  try {
    fn();
  } catch (err) {
    expect(err).toBeInstanceOf(PkiError);
    return (err as PkiError).code;
  }
  throw new Error('expected a PkiError, nothing was thrown');
}

describe('bundle integrity', () => {
  let ca: Credential;
  let alice: Credential;
  let aliceBundle: Buffer;
  let attackerCa: Credential;
  let alicePublicPem: string;

  beforeAll(() => {
    ca = createGroupCa({ name: 'Real Group CA' });
    alice = issueCertificate(ca, { name: 'alice', role: 'member' });
    aliceBundle = writeBundle(alice, ca.certificate, PASSWORD, { kdfIterations: ITERATIONS });
    attackerCa = createGroupCa({ name: 'Real Group CA' });
    alicePublicPem = createPublicKey(alice.privateKeyPem).export({ type: 'spki', format: 'pem' }) as string;
  });

  it('reads an untouched bundle (the crafting helpers see the structure forge writes)', () => {
    expect(readBundle(aliceBundle, PASSWORD).certificate.fingerprintHex).toBe(
      alice.certificate.fingerprintHex,
    );
    expect(pfxParts(aliceBundle).macData).toBeDefined();
    expect(plainBagsOf(aliceBundle).map(bagType)).toContain(forge.pki.oids.pkcs8ShroudedKeyBag);
  });

  it('refuses the reported attack: alice key bag, attacker CA and certificate for her key, no MAC', () => {
    const forged = swappedCaBundle(aliceBundle, alicePublicPem, attackerCa, 'alice');
    expect(codeOf(() => readBundle(forged, PASSWORD))).toBe('BundleIntegrity');
    expect(codeOf(() => readBundle(forged, PASSWORD, { checkValidityPeriod: false }))).toBe(
      'BundleIntegrity',
    );
    expect(codeOf(() => LocalIdentity.fromBundleFile(forged, PASSWORD, 'member'))).toBe('BundleIntegrity');
    // Whatever password is typed: there is no MAC to check it against.
    expect(codeOf(() => readBundle(forged, 'some other password'))).toBe('BundleIntegrity');
  });

  it('refuses an untouched bundle whose MAC was removed', () => {
    expect(codeOf(() => readBundle(withoutMac(aliceBundle), PASSWORD))).toBe('BundleIntegrity');
  });

  it('refuses flipped MAC bytes as BundleIntegrity with the right password, WrongPassword with a wrong one', () => {
    const flipped = withFlippedMac(aliceBundle);
    expect(codeOf(() => readBundle(flipped, PASSWORD))).toBe('BundleIntegrity');
    expect(codeOf(() => readBundle(flipped, 'not the password'))).toBe('WrongPassword');
  });

  it('still reports a wrong password on an untouched bundle as WrongPassword', () => {
    expect(codeOf(() => readBundle(aliceBundle, 'not the password'))).toBe('WrongPassword');
  });

  it('refuses the attacker CA added inside the authSafe under the original MAC', () => {
    const { macData } = pfxParts(aliceBundle);
    const forged = buildPfx([...authSafeOf(aliceBundle), dataSafe([certBag(attackerCa.certificate.pem)])], {
      macData,
    });
    expect(codeOf(() => readBundle(forged, PASSWORD))).toBe('BundleIntegrity');
    expect(codeOf(() => readBundle(forged, 'not the password'))).toBe('WrongPassword');
  });

  it('refuses a certificate bag appended after the MAC, outside what it covers', () => {
    const { macData } = pfxParts(aliceBundle);
    const forged = buildPfx(authSafeOf(aliceBundle), {
      macData,
      trailing: [dataSafe([certBag(attackerCa.certificate.pem)])],
    });
    expect(codeOf(() => readBundle(forged, PASSWORD))).toBe('BundleIntegrity');
  });

  it('refuses trailing bytes after the PFX', () => {
    const forged = Buffer.concat([aliceBundle, Buffer.from([0x30, 0x00])]);
    expect(codeOf(() => readBundle(forged, PASSWORD))).toBe('CorruptBundle');
  });

  it('refuses a plain (unencrypted) keyBag, even under a MAC that verifies', () => {
    const bags = [certBag(alice.certificate.pem), certBag(ca.certificate.pem)];
    const plain = buildPfx([dataSafe([...bags, plainKeyBag(alice.privateKeyPem)])], {
      mac: { password: PASSWORD },
    });
    expect(codeOf(() => readBundle(plain, PASSWORD))).toBe('BundleIntegrity');
    expect(
      codeOf(() => readBundle(buildPfx([dataSafe([...bags, plainKeyBag(alice.privateKeyPem)])]), PASSWORD)),
    ).toBe('BundleIntegrity');
  });

  it('refuses two key bags, even under a MAC that verifies', () => {
    const bob = issueCertificate(ca, { name: 'bob', role: 'member' });
    const bobBundle = writeBundle(bob, ca.certificate, PASSWORD, { kdfIterations: ITERATIONS });
    const two = buildPfx(
      [
        dataSafe([certBag(alice.certificate.pem), certBag(ca.certificate.pem)]),
        dataSafe([shroudedKeyBagOf(aliceBundle), shroudedKeyBagOf(bobBundle)]),
      ],
      { mac: { password: PASSWORD } },
    );
    expect(codeOf(() => readBundle(two, PASSWORD))).toBe('BundleIntegrity');
  });

  it('accepts a hand-built bundle with a correct MAC (the MAC check is not a format check)', () => {
    const rebuilt = buildPfx(
      [
        dataSafe([certBag(alice.certificate.pem), certBag(ca.certificate.pem)]),
        dataSafe([shroudedKeyBagOf(aliceBundle)]),
      ],
      { mac: { password: PASSWORD } },
    );
    expect(readBundle(rebuilt, PASSWORD).ca.fingerprintHex).toBe(ca.certificate.fingerprintHex);
  });

  it('refuses a MAC that asks for an absurd iteration count before doing the work', () => {
    const costly = withMacIterations(aliceBundle, 2_000_000_000);
    const code = codeOf(() => readBundle(costly, PASSWORD));
    expect(code).toBe('BundleIntegrity');
  });
});
