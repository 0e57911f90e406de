/**
 * A parsed, immutable X.509 certificate. Parsing happens once: the DER is read with node-forge
 * (extensions) and Node's X509Certificate (public key, signature checks on OpenSSL).
 */
import { X509Certificate, type KeyObject } from 'node:crypto';
import forge from 'node-forge';
import { PkiError } from './errors.js';
import { fingerprintHex, fingerprintOf, formatFingerprint } from './fingerprint.js';

export type CertificateRole = 'ca' | 'member' | 'relay' | 'unknown';

export interface KeyUsage {
  digitalSignature: boolean;
  keyEncipherment: boolean;
  keyCertSign: boolean;
  cRLSign: boolean;
}

/**
 * A name attribute as text. forge hands back the raw bytes of the ASN.1 string: UTF8String (what
 * issue.ts writes, so 'Équipe Zoë 日本' round-trips) is decoded; PrintableString and IA5String are
 * ASCII already.
 */
function nameField(name: forge.pki.Certificate['subject'], shortName: string): string | undefined {
  const field = name.getField(shortName) as { value?: unknown; valueTagClass?: number } | null;
  if (!field || typeof field.value !== 'string') return undefined;
  if (field.valueTagClass !== forge.asn1.Type.UTF8) return field.value;
  try {
    return forge.util.decodeUtf8(field.value);
  } catch (err) {
    throw new PkiError('BadCertificate', 'certificate name is not valid UTF-8', { cause: err });
  }
}

export class Certificate {
  readonly der: Buffer;
  readonly name: string;
  readonly issuerName: string;
  readonly fingerprint: Buffer;
  readonly fingerprintHex: string;
  readonly serialHex: string;
  readonly notBefore: Date;
  readonly notAfter: Date;
  readonly publicKey: KeyObject;
  readonly keyBits: number;
  readonly publicExponent: bigint;
  readonly isCa: boolean;
  readonly keyUsage: KeyUsage | undefined;
  readonly clientAuth: boolean;
  readonly serverAuth: boolean;
  readonly x509: X509Certificate;

  private constructor(der: Buffer) {
    this.der = der;
    let cert: forge.pki.Certificate;
    try {
      this.x509 = new X509Certificate(der);
      cert = forge.pki.certificateFromAsn1(
        forge.asn1.fromDer(forge.util.createBuffer(der.toString('binary'))),
      );
    } catch (err) {
      throw new PkiError('BadCertificate', `not a readable X.509 certificate: ${(err as Error).message}`, {
        cause: err,
      });
    }
    // Fingerprints are identities: a re-encoding of the same certificate (e.g. a long-form length)
    // would parse to the same key under a second fingerprint. Only canonical DER is accepted.
    if (!this.x509.raw.equals(der)) {
      throw new PkiError('BadCertificate', 'certificate is not in canonical DER encoding');
    }
    const cn = nameField(cert.subject, 'CN');
    if (cn === undefined) throw new PkiError('BadCertificate', 'certificate has no common name');
    this.name = cn;
    this.issuerName = nameField(cert.issuer, 'CN') ?? '';
    this.fingerprint = fingerprintOf(der);
    this.fingerprintHex = fingerprintHex(this.fingerprint);
    this.serialHex = cert.serialNumber;
    this.notBefore = cert.validity.notBefore;
    this.notAfter = cert.validity.notAfter;
    this.publicKey = this.x509.publicKey;
    const details = this.publicKey.asymmetricKeyDetails;
    if (this.publicKey.asymmetricKeyType !== 'rsa' || !details?.modulusLength) {
      throw new PkiError('BadCertificate', 'certificate key is not RSA');
    }
    this.keyBits = details.modulusLength;
    this.publicExponent = details.publicExponent ?? 0n;

    const bc = cert.getExtension('basicConstraints') as { cA?: boolean } | null;
    this.isCa = bc?.cA === true;
    const ku = cert.getExtension('keyUsage') as Partial<KeyUsage> | null;
    this.keyUsage = ku
      ? {
          digitalSignature: ku.digitalSignature === true,
          keyEncipherment: ku.keyEncipherment === true,
          keyCertSign: ku.keyCertSign === true,
          cRLSign: ku.cRLSign === true,
        }
      : undefined;
    const eku = cert.getExtension('extKeyUsage') as { clientAuth?: boolean; serverAuth?: boolean } | null;
    this.clientAuth = eku?.clientAuth === true;
    this.serverAuth = eku?.serverAuth === true;
  }

  static fromDer(der: Uint8Array): Certificate {
    return new Certificate(Buffer.from(der));
  }

  static fromPem(pem: string): Certificate {
    let der: Buffer;
    try {
      const msg = forge.pem.decode(pem).find((m) => m.type === 'CERTIFICATE');
      if (!msg) throw new Error('no CERTIFICATE block');
      der = Buffer.from(msg.body, 'binary');
    } catch (err) {
      throw new PkiError('BadCertificate', `not a PEM certificate: ${(err as Error).message}`, {
        cause: err,
      });
    }
    return new Certificate(der);
  }

  get pem(): string {
    return this.x509.toString();
  }

  get role(): CertificateRole {
    if (this.isCa) return 'ca';
    if (this.serverAuth) return 'relay';
    if (this.clientAuth) return 'member';
    return 'unknown';
  }

  /** Grouped upper-case hex for people. */
  get fingerprintDisplay(): string {
    return formatFingerprint(this.fingerprint);
  }
}
