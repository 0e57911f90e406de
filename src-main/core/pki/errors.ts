export type PkiErrorCode =
  | 'InvalidName'
  | 'WrongPassword'
  | 'CorruptBundle'
  | 'MissingKey'
  | 'MissingCertificate'
  | 'KeyMismatch'
  | 'BadCertificate'
  | 'NotIssuedByCa'
  | 'IssuerNotCa'
  | 'Expired'
  | 'NotYetValid'
  | 'BadKeyUsage'
  | 'WrongRole'
  /** A bundle without a verifying MAC, with data outside it, or with an unencrypted key. */
  | 'BundleIntegrity'
  /** RSA below 2048 bits or a public exponent other than 65537. */
  | 'WeakKey'
  /** The bundle's group CA is not the one the user said to expect (`--expect-ca`). */
  | 'UnexpectedCa';

/** A typed PKI failure with a message a person can act on; `cause` keeps the underlying error. */
export class PkiError extends Error {
  override readonly name = 'PkiError';
  constructor(
    readonly code: PkiErrorCode,
    message: string,
    options?: { cause?: unknown },
  ) {
    super(message, options);
  }
}
