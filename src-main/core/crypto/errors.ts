/** Every failure of a cryptographic check surfaces as this one typed error, never as an OpenSSL exception. */
export class CryptoError extends Error {
  override readonly name = 'CryptoError';
  constructor(
    readonly code: 'DecryptFailed' | 'BadKey' | 'BadInput',
    message: string,
    options?: { cause?: unknown },
  ) {
    super(message, options);
  }
}
