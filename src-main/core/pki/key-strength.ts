import type { Certificate } from './certificate.js';
import { PkiError } from './errors.js';

/**
 * Every certificate of a group (CA, member, relay) holds RSA with at least this many bits: 1024-bit
 * RSA is within reach of a well-funded attacker, and NIST SP 800-57 retired it in 2013.
 */
export const MIN_RSA_BITS = 2048;
/**
 * The only public exponent accepted. Small exponents (e = 3) have a history of signature-forgery
 * and broadcast attacks when padding is checked loosely; 65537 is what every generator here uses.
 */
export const RSA_PUBLIC_EXPONENT = 65537n;

/** Throws WeakKey unless the certificate's key is RSA >= MIN_RSA_BITS with e = 65537. */
export function assertStrongKey(cert: Certificate, what = `the certificate of "${cert.name}"`): void {
  if (cert.keyBits < MIN_RSA_BITS) {
    throw new PkiError(
      'WeakKey',
      `${what} has a ${cert.keyBits}-bit RSA key; at least ${MIN_RSA_BITS} bits are required`,
    );
  }
  if (cert.publicExponent !== RSA_PUBLIC_EXPONENT) {
    throw new PkiError(
      'WeakKey',
      `${what} has RSA public exponent ${cert.publicExponent}; only ${RSA_PUBLIC_EXPONENT} is accepted`,
    );
  }
}
