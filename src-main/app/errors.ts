/**
 * Typed failures of the app service, in plain words. Service methods throw AppFailure internally;
 * every public method turns any failure into `{ ok: false, error }` (see toResult).
 */
import { PkiError } from '../core/pki/errors.js';
import { StateStoreError, type StateStoreErrorCode } from '../client/state/errors.js';
import type { AppError, ErrorCode, Result } from '../../src-shared/ipc-contract.js';

export class AppFailure extends Error {
  override readonly name = 'AppFailure';
  constructor(
    readonly code: ErrorCode,
    message: string,
    readonly details?: string[],
  ) {
    super(message);
  }
}

const STATE_PREFIX = 'Your saved chat state (the key numbers this identity has used) cannot be opened';
const STATE_RESET =
  'Nothing was overwritten. To start over, remove this identity and import it again: the app then forgets which key numbers it used.';

/** Plain words for each way the member state store can fail (member-state.ts). */
const STATE_MESSAGES: Record<StateStoreErrorCode, string> = {
  StateKeyWrong: `${STATE_PREFIX}: its key does not fit (the bundle password changed since it was made, or its kept key was lost). Unlock with the earlier password if you have it. ${STATE_RESET}`,
  StateKeyUnavailable: `${STATE_PREFIX}: its key is kept by the system keystore, which is not available or cannot decrypt it (another user account or computer?). ${STATE_RESET}`,
  StateStoreCorrupt: `${STATE_PREFIX}: it is damaged. ${STATE_RESET}`,
  StateStoreTooNew: `${STATE_PREFIX}: a newer version of SecureChat-X wrote it. Update the app.`,
  StateStoreMismatch: `${STATE_PREFIX}: its folder holds another identity’s state. ${STATE_RESET}`,
  StateStoreIo: `${STATE_PREFIX}: the app cannot read or write its folder.`,
};

/** Maps anything thrown to an AppError a person can act on. Never leaks a stack trace. */
export function toAppError(err: unknown, context?: 'identity' | 'relay'): AppError {
  if (err instanceof AppFailure) {
    return err.details
      ? { code: err.code, message: err.message, details: err.details }
      : { code: err.code, message: err.message };
  }
  if (err instanceof PkiError) {
    switch (err.code) {
      case 'WrongPassword':
        return {
          code: 'WrongPassword',
          message: 'Wrong password: it does not open this certificate bundle.',
        };
      case 'BundleIntegrity':
        return {
          code: 'NotABundle',
          message:
            'This bundle was changed after it was made (its integrity check failed), so it is not used. Ask your organiser for a new one.',
        };
      case 'CorruptBundle':
      case 'MissingKey':
      case 'MissingCertificate':
      case 'KeyMismatch':
        return {
          code: 'NotABundle',
          message: `This file is not a usable SecureChat-X certificate bundle (.p12): ${err.message}.`,
        };
      case 'WrongRole':
        return {
          code: 'WrongRole',
          message:
            context === 'relay'
              ? 'This is a member bundle. Choose the relay’s bundle to start a relay.'
              : 'This bundle belongs to a relay, not to a member. Choose your own member bundle.',
        };
      case 'Expired':
        return { code: 'CertificateInvalid', message: `The certificate has expired: ${err.message}.` };
      case 'NotYetValid':
        return { code: 'CertificateInvalid', message: `The certificate is not valid yet: ${err.message}.` };
      default:
        return { code: 'CertificateInvalid', message: `The certificate cannot be used: ${err.message}.` };
    }
  }
  if (err instanceof StateStoreError) {
    // details[0] is the store's own code, for the window and for tests.
    const message = STATE_MESSAGES[err.code] + (err.code === 'StateStoreIo' ? ` (${err.message})` : '');
    return { code: 'StorageFailed', message, details: [err.code] };
  }
  const errno = (err as NodeJS.ErrnoException | undefined)?.code;
  if (errno === 'ENOENT') return { code: 'FileError', message: 'The file or folder no longer exists.' };
  if (errno === 'EACCES' || errno === 'EPERM')
    return { code: 'FileError', message: 'Permission denied: the app cannot read or write there.' };
  if (errno === 'EEXIST') return { code: 'WouldOverwrite', message: 'A file with that name already exists.' };
  if (errno === 'ENOSPC') return { code: 'FileError', message: 'The disk is full.' };
  const message = err instanceof Error ? err.message : String(err);
  return { code: 'Internal', message: `Something went wrong: ${message}` };
}

export async function toResult<T>(
  work: () => T | Promise<T>,
  context?: 'identity' | 'relay',
): Promise<Result<T>> {
  try {
    return { ok: true, value: await work() };
  } catch (err) {
    return { ok: false, error: toAppError(err, context) };
  }
}
