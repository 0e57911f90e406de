import { Certificate } from './certificate.js';
import { PkiError } from './errors.js';
import { isValidIdentityName } from './identity-name.js';
import { assertStrongKey } from './key-strength.js';

export interface ValidateOptions {
  /** The role the certificate must have been issued for. */
  role?: 'member' | 'relay';
  now?: Date;
}

export interface CertificateCheckOptions extends ValidateOptions {
  /**
   * Default true. False skips only the validity windows (of the certificate and of the CA), so a
   * tool can show an expired certificate; issuer, signature, key usage and name are still checked.
   * Never for a certificate that is about to be used: CertificateValidator always checks them.
   */
  checkValidityPeriod?: boolean;
}

/**
 * Checks a peer certificate against the group CA: issuer is a CA allowed to sign certificates,
 * both keys are strong (RSA >= 2048, e = 65537), the signature is the CA's, the validity window
 * holds, and the key usages fit a chat participant.
 * Throws a PkiError naming the first check that failed.
 */
export function validateCertificate(
  cert: Certificate,
  ca: Certificate,
  options: CertificateCheckOptions = {},
): void {
  const now = options.now ?? new Date();
  const checkValidity = options.checkValidityPeriod ?? true;
  if (!ca.isCa || !ca.keyUsage?.keyCertSign) {
    throw new PkiError('IssuerNotCa', `"${ca.name}" is not a certificate authority`);
  }
  assertStrongKey(ca, `the group CA "${ca.name}"`);
  if (cert.isCa) throw new PkiError('BadKeyUsage', `"${cert.name}" is a CA certificate, not a participant`);
  if (!cert.x509.checkIssued(ca.x509) || !cert.x509.verify(ca.publicKey)) {
    throw new PkiError(
      'NotIssuedByCa',
      `the certificate of "${cert.name}" was not issued by the group CA "${ca.name}"`,
    );
  }
  // Even one the CA really signed: the CA must not be able to vouch for a breakable key.
  assertStrongKey(cert);
  if (checkValidity && now < cert.notBefore) {
    throw new PkiError(
      'NotYetValid',
      `the certificate of "${cert.name}" is valid from ${cert.notBefore.toISOString()}`,
    );
  }
  if (checkValidity && now > cert.notAfter) {
    throw new PkiError(
      'Expired',
      `the certificate of "${cert.name}" expired on ${cert.notAfter.toISOString()}`,
    );
  }
  if (checkValidity && (now < ca.notBefore || now > ca.notAfter)) {
    throw new PkiError('Expired', `the group CA certificate "${ca.name}" is outside its validity period`);
  }
  if (!cert.keyUsage?.digitalSignature || !cert.keyUsage.keyEncipherment) {
    throw new PkiError(
      'BadKeyUsage',
      `the certificate of "${cert.name}" does not allow signing and key encipherment`,
    );
  }
  if (!isValidIdentityName(cert.name)) {
    throw new PkiError(
      'InvalidName',
      `the certificate's name "${cert.name.slice(0, 80)}" is not a valid identity`,
    );
  }
  if (options.role === 'member' && !cert.clientAuth) {
    throw new PkiError('WrongRole', `"${cert.name}" holds a relay certificate, not a member certificate`);
  }
  if (options.role === 'relay' && !cert.serverAuth) {
    throw new PkiError('WrongRole', `"${cert.name}" does not hold a relay (serverAuth) certificate`);
  }
}

/**
 * Caches successful validations by fingerprint, so the same member's certificate is checked once
 * per CA rather than on every PRESENCE or CERT_RESPONSE. Failures are never cached.
 */
export class CertificateValidator {
  private readonly valid = new Map<string, { cert: Certificate; until: number }>();

  constructor(readonly ca: Certificate) {}

  validate(cert: Certificate, options: ValidateOptions = {}): Certificate {
    const key = `${options.role ?? ''}:${cert.fingerprintHex}`;
    const now = options.now ?? new Date();
    const hit = this.valid.get(key);
    if (hit && now.getTime() <= hit.until && now >= hit.cert.notBefore) return hit.cert;
    // Only the two fields of ValidateOptions: the validity window is always checked here.
    validateCertificate(cert, this.ca, { role: options.role, now });
    this.valid.set(key, { cert, until: Math.min(cert.notAfter.getTime(), this.ca.notAfter.getTime()) });
    return cert;
  }

  validateDer(der: Uint8Array, options: ValidateOptions = {}): Certificate {
    return this.validate(Certificate.fromDer(der), options);
  }
}
