/**
 * Building the group's certificates with node-forge. Key pairs come from Node's native generator
 * (OpenSSL, ~50x faster than forge's JavaScript one) and are handed to forge as PEM.
 */
import { generateKeyPair, generateKeyPairSync, randomBytes } from 'node:crypto';
import forge from 'node-forge';
import { Certificate } from './certificate.js';
import { PkiError } from './errors.js';
import { assertValidIdentityName } from './identity-name.js';
import { assertStrongKey } from './key-strength.js';

export type KeyBits = 2048 | 3072 | 4096;
export const KEY_BITS: readonly KeyBits[] = [2048, 3072, 4096];

/** A certificate with its private key, as produced here or read from a bundle. */
export interface Credential {
  certificate: Certificate;
  privateKeyPem: string;
}

/** A fresh RSA key pair as PEM (PKCS#8 private, SPKI public). */
export interface KeyPairPem {
  privateKeyPem: string;
  publicKeyPem: string;
}

export interface CaOptions {
  name?: string;
  keyBits?: KeyBits;
  validityDays?: number;
  /** A key pair from generateKeyPairPem; without one a new pair is generated synchronously. */
  keyPair?: KeyPairPem;
}

export interface IssueOptions {
  name: string;
  role: 'member' | 'relay';
  keyBits?: KeyBits;
  validityDays?: number;
  /** A key pair from generateKeyPairPem; without one a new pair is generated synchronously. */
  keyPair?: KeyPairPem;
}

const DAY_MS = 86_400_000;
/** Tolerate small clock differences between the organiser and the members. */
const BACKDATE_MS = 5 * 60_000;

function checkBits(bits: KeyBits): void {
  if (!KEY_BITS.includes(bits)) throw new PkiError('BadCertificate', `unsupported RSA key size ${bits}`);
}

/**
 * A key pair generated on libuv's thread pool, so several can be made at once on several cores
 * (group create with many members) while the event loop keeps running.
 */
export function generateKeyPairPem(bits: KeyBits = 2048): Promise<KeyPairPem> {
  checkBits(bits);
  return new Promise((resolve, reject) => {
    generateKeyPair(
      'rsa',
      {
        modulusLength: bits,
        publicKeyEncoding: { type: 'spki', format: 'pem' },
        privateKeyEncoding: { type: 'pkcs8', format: 'pem' },
      },
      (err, publicKeyPem, privateKeyPem) => {
        if (err) reject(new PkiError('BadCertificate', 'could not generate an RSA key pair', { cause: err }));
        else resolve({ privateKeyPem, publicKeyPem });
      },
    );
  });
}

function generateKeyPairPemSync(bits: KeyBits): KeyPairPem {
  const { privateKey, publicKey } = generateKeyPairSync('rsa', {
    modulusLength: bits,
    publicKeyEncoding: { type: 'spki', format: 'pem' },
    privateKeyEncoding: { type: 'pkcs8', format: 'pem' },
  });
  return { privateKeyPem: privateKey, publicKeyPem: publicKey };
}

function newKeyPair(
  bits: KeyBits,
  given?: KeyPairPem,
): { privateKeyPem: string; publicKey: forge.pki.rsa.PublicKey } {
  checkBits(bits);
  const pair = given ?? generateKeyPairPemSync(bits);
  return {
    privateKeyPem: pair.privateKeyPem,
    publicKey: forge.pki.publicKeyFromPem(pair.publicKeyPem) as forge.pki.rsa.PublicKey,
  };
}

/** A positive 128-bit serial (the top bit cleared so DER keeps it positive). */
function randomSerial(): string {
  const bytes = randomBytes(16);
  bytes[0] = (bytes[0] ?? 0) & 0x7f;
  return bytes.toString('hex');
}

function validity(cert: forge.pki.Certificate, days: number): void {
  if (!Number.isInteger(days) || days < 1 || days > 36_500) {
    throw new PkiError('BadCertificate', 'validity must be between 1 and 36500 days');
  }
  const now = Date.now();
  cert.validity.notBefore = new Date(now - BACKDATE_MS);
  cert.validity.notAfter = new Date(now + days * DAY_MS);
}

function toCertificate(cert: forge.pki.Certificate): Certificate {
  const der = forge.asn1.toDer(forge.pki.certificateToAsn1(cert)).getBytes();
  const certificate = Certificate.fromDer(Buffer.from(der, 'binary'));
  // newKeyPair only makes strong keys; this keeps it that way if that ever changes.
  assertStrongKey(certificate);
  return certificate;
}

/**
 * The UTF8String tag. @types/node-forge types valueTagClass as an asn1.Class, but forge reads and
 * writes it as the string's asn1.Type.
 */
const UTF8_TAG = forge.asn1.Type.UTF8 as number as forge.asn1.Class;

/**
 * Names as UTF8String (RFC 5280 4.1.2.4): forge's default PrintableString cannot hold 'Équipe Zoë
 * 日本' and would store the characters' low bytes. forge encodes the value to UTF-8 itself.
 */
function utf8Name(cn: string): forge.pki.CertificateField[] {
  return [
    { name: 'commonName', value: cn, valueTagClass: UTF8_TAG },
    { name: 'organizationName', value: 'SecureChat-X group', valueTagClass: UTF8_TAG },
  ];
}

/**
 * The CA's subject as the issuer of a new certificate. Parsed attributes hold the raw bytes of each
 * string, and forge would UTF-8-encode a UTF8String value a second time: decode it first so the
 * issuer name is byte for byte the CA's subject.
 */
function issuerOf(caCert: forge.pki.Certificate): forge.pki.CertificateField[] {
  return caCert.subject.attributes.map((attr) =>
    attr.valueTagClass === UTF8_TAG && typeof attr.value === 'string'
      ? { ...attr, value: forge.util.decodeUtf8(attr.value) }
      : attr,
  );
}

export function createGroupCa(options: CaOptions = {}): Credential {
  const name = options.name ?? 'SecureChat-X Group CA';
  if (name.length < 1 || name.length > 64)
    throw new PkiError('InvalidName', 'CA name must be 1-64 characters');
  const { privateKeyPem, publicKey } = newKeyPair(options.keyBits ?? 2048, options.keyPair);
  const cert = forge.pki.createCertificate();
  cert.publicKey = publicKey;
  cert.serialNumber = randomSerial();
  validity(cert, options.validityDays ?? 3650);
  const subject = utf8Name(name);
  cert.setSubject(subject);
  cert.setIssuer(subject);
  cert.setExtensions([
    { name: 'basicConstraints', cA: true, critical: true, pathLenConstraint: 0 },
    { name: 'keyUsage', keyCertSign: true, cRLSign: true, critical: true },
    { name: 'subjectKeyIdentifier' },
  ]);
  cert.sign(forge.pki.privateKeyFromPem(privateKeyPem), forge.md.sha256.create());
  return { certificate: toCertificate(cert), privateKeyPem };
}

export function issueCertificate(ca: Credential, options: IssueOptions): Credential {
  assertValidIdentityName(options.name);
  if (!ca.certificate.isCa || !ca.certificate.keyUsage?.keyCertSign) {
    throw new PkiError('IssuerNotCa', `"${ca.certificate.name}" is not a certificate authority`);
  }
  assertStrongKey(ca.certificate, `the group CA "${ca.certificate.name}"`);
  // Its certificates would be clamped to a past date: invalid from the moment they are issued.
  if (Date.now() >= ca.certificate.notAfter.getTime()) {
    throw new PkiError('Expired', `the group CA "${ca.certificate.name}" has expired; create a new group`);
  }
  const { privateKeyPem, publicKey } = newKeyPair(options.keyBits ?? 2048, options.keyPair);
  const caCert = forge.pki.certificateFromPem(ca.certificate.pem);
  const cert = forge.pki.createCertificate();
  cert.publicKey = publicKey;
  cert.serialNumber = randomSerial();
  const caNotAfter = ca.certificate.notAfter.getTime();
  validity(cert, options.validityDays ?? 825);
  // A certificate never outlives the CA that vouches for it.
  if (cert.validity.notAfter.getTime() > caNotAfter) cert.validity.notAfter = new Date(caNotAfter);
  cert.setSubject(utf8Name(options.name));
  cert.setIssuer(issuerOf(caCert));
  cert.setExtensions([
    { name: 'basicConstraints', cA: false, critical: true },
    { name: 'keyUsage', digitalSignature: true, keyEncipherment: true, critical: true },
    {
      name: 'extKeyUsage',
      clientAuth: options.role === 'member',
      serverAuth: options.role === 'relay',
    },
    { name: 'subjectKeyIdentifier' },
    { name: 'authorityKeyIdentifier', keyIdentifier: caCert.generateSubjectKeyIdentifier().getBytes() },
  ]);
  cert.sign(forge.pki.privateKeyFromPem(ca.privateKeyPem), forge.md.sha256.create());
  return { certificate: toCertificate(cert), privateKeyPem };
}
