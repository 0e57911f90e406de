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
  | 'WrongRole';

/** A typed PKI failure with a message a person can act on. */
export class PkiError extends Error {
  override readonly name = 'PkiError';
  constructor(
    readonly code: PkiErrorCode,
    message: string,
  ) {
    super(message);
  }
}
