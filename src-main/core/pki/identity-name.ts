import { PkiError } from './errors.js';

/** Identities are certificate CNs and routing names: 1-64 of letters, digits, '.', '_', '-'. */
export const IDENTITY_NAME_PATTERN = /^[A-Za-z0-9._-]{1,64}$/;

export function isValidIdentityName(name: string): boolean {
  return IDENTITY_NAME_PATTERN.test(name);
}

export function assertValidIdentityName(name: string): void {
  if (!isValidIdentityName(name)) {
    throw new PkiError(
      'InvalidName',
      `"${name.slice(0, 80)}" is not a valid identity: use 1-64 letters, digits, '.', '_' or '-'`,
    );
  }
}
