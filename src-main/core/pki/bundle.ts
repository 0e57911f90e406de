/**
 * Password-protected PKCS#12 bundles (.p12), written and read with node-forge.
 *
 * Parameters: the private key is a PKCS#8 shrouded key bag under PBES2 (PBKDF2-HMAC-SHA256,
 * AES-256-CBC, 16-byte salt); the file's integrity MAC is HMAC-SHA1 with the PKCS#12 KDF, the only
 * MAC node-forge writes. Both use the same iteration count. node-forge derives keys in JavaScript
 * (~5 us per iteration on our machines), so the count is a trade between brute-force cost and the
 * seconds a person waits when importing; see DEFAULT_KDF_ITERATIONS.
 */
import { createPrivateKey, createPublicKey } from 'node:crypto';
import forge from 'node-forge';
import { Certificate } from './certificate.js';
import { PkiError } from './errors.js';
import type { Credential } from './issue.js';
import { assertStrongKey } from './key-strength.js';
import { openPfx } from './pfx.js';
import { validateCertificate } from './validate.js';

/** ~1 s to write or read a bundle here; `--kdf-iterations` raises it. */
export const DEFAULT_KDF_ITERATIONS = 200_000;
export const MIN_KDF_ITERATIONS = 10_000;
export const MAX_KDF_ITERATIONS = 10_000_000;
/** Bundles are a few KiB; anything this large is not one of ours. */
export const MAX_BUNDLE_BYTES = 256 * 1024;

export interface WriteBundleOptions {
  kdfIterations?: number;
}

export function writeBundle(
  credential: Credential,
  ca: Certificate,
  password: string,
  options: WriteBundleOptions = {},
): Buffer {
  const count = options.kdfIterations ?? DEFAULT_KDF_ITERATIONS;
  if (!Number.isInteger(count) || count < MIN_KDF_ITERATIONS || count > MAX_KDF_ITERATIONS) {
    throw new PkiError(
      'CorruptBundle',
      `KDF iterations must be an integer from ${MIN_KDF_ITERATIONS} to ${MAX_KDF_ITERATIONS}`,
    );
  }
  if (password.length === 0) throw new PkiError('WrongPassword', 'a bundle password must not be empty');
  const key = forge.pki.privateKeyFromPem(credential.privateKeyPem);
  const chain = [forge.pki.certificateFromPem(credential.certificate.pem)];
  if (ca.fingerprintHex !== credential.certificate.fingerprintHex)
    chain.push(forge.pki.certificateFromPem(ca.pem));
  const asn1 = forge.pkcs12.toPkcs12Asn1(key, chain, password, {
    algorithm: 'aes256',
    count,
    saltSize: 16,
    friendlyName: credential.certificate.name,
    generateLocalKeyId: true,
    // Passed through to the PBES2 key encryption; not in @types/node-forge.
    ...{ prfAlgorithm: 'sha256' },
  });
  return Buffer.from(forge.asn1.toDer(asn1).getBytes(), 'binary');
}

export interface LoadedBundle {
  certificate: Certificate;
  ca: Certificate;
  privateKeyPem: string;
}

/** Every bag of the (MAC-verified) PFX, whatever SafeContents it sits in. */
function allBags(p12: forge.pkcs12.Pkcs12Pfx): forge.pkcs12.Bag[] {
  return p12.safeContents.flatMap((contents) => contents.safeBags);
}

export interface ReadBundleOptions {
  /**
   * Default true: the holder's certificate (and the CA) must be within their validity period.
   * False lets `securechat-x inspect` show WHEN a bundle expired; everything else still holds (the
   * certificate matches the key and was issued by the bundled CA). Anything that uses the bundle
   * to talk to others (LocalIdentity, the relay, the client, the app) keeps the full check.
   */
  checkValidityPeriod?: boolean;
}

/**
 * Reads a bundle written by writeBundle (or any PKCS#12 with one key, its certificate and the CA).
 * The file's MAC must verify (pfx.ts), the key must be the one PBES2/PKCS#8-shrouded key bag, the
 * holder's certificate must chain to the bundled CA and match the key, every key must be strong
 * (key-strength.ts), and (unless `checkValidityPeriod: false`) the certificate must be valid now.
 * The single way a bundle is opened: the CLI, the relay child and the app's PKI worker all call it.
 */
export function readBundle(
  data: Uint8Array,
  password: string,
  options: ReadBundleOptions = {},
): LoadedBundle {
  if (data.length === 0 || data.length > MAX_BUNDLE_BYTES) {
    throw new PkiError('CorruptBundle', 'this file is not a certificate bundle (empty or far too large)');
  }
  const p12 = openPfx(data, password, { maxIterations: MAX_KDF_ITERATIONS });
  const bags = allBags(p12);
  // A plain keyBag would let anyone who can write the file choose the key without the password.
  if (bags.some((b) => b.type === forge.pki.oids.keyBag)) {
    throw new PkiError('BundleIntegrity', 'this bundle holds an unencrypted private key; it is refused');
  }
  const keyBags = bags.filter((b) => b.type === forge.pki.oids.pkcs8ShroudedKeyBag);
  if (keyBags.length > 1) {
    throw new PkiError(
      'BundleIntegrity',
      `this bundle holds ${keyBags.length} private keys; a bundle holds exactly one`,
    );
  }
  const key = keyBags[0]?.key;
  if (!key) throw new PkiError('MissingKey', 'the bundle holds no private key');

  const certs: Certificate[] = [];
  for (const bag of bags) {
    if (bag.type !== forge.pki.oids.certBag) continue;
    if (!bag.cert) throw new PkiError('BadCertificate', 'the bundle holds a certificate that is not RSA');
    certs.push(Certificate.fromPem(forge.pki.certificateToPem(bag.cert)));
  }
  const privateKeyPem = forge.pki.privateKeyToPem(key);
  const keySpki = createPublicKey(createPrivateKey(privateKeyPem)).export({ type: 'spki', format: 'der' });
  const holder = certs.find((c) => c.publicKey.export({ type: 'spki', format: 'der' }).equals(keySpki));
  if (!holder) throw new PkiError('KeyMismatch', 'no certificate in the bundle matches its private key');

  if (holder.isCa) {
    // The organiser's CA bundle: the CA is its own holder.
    assertStrongKey(holder, `the group CA "${holder.name}"`);
    return { certificate: holder, ca: holder, privateKeyPem };
  }
  const cas = certs.filter((c) => c !== holder && c.isCa);
  const ca = cas[0];
  if (!ca) throw new PkiError('MissingCertificate', 'the bundle does not contain its group CA certificate');
  // Which CA a member trusts must not depend on bag order.
  if (cas.length > 1) throw new PkiError('BundleIntegrity', 'this bundle holds more than one CA certificate');
  validateCertificate(holder, ca, { checkValidityPeriod: options.checkValidityPeriod ?? true });
  return { certificate: holder, ca, privateKeyPem };
}
