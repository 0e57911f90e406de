/** Flags shared by `group create` and `group add-member`. */
import { DEFAULT_KDF_ITERATIONS, MAX_KDF_ITERATIONS, MIN_KDF_ITERATIONS } from '../../core/pki/bundle.js';
import { KEY_BITS, type KeyBits } from '../../core/pki/issue.js';
import { integerOption, usageError } from '../args.js';

export const SHARED_OPTIONS = {
  'key-bits': { type: 'string' },
  'validity-days': { type: 'string' },
  'kdf-iterations': { type: 'string' },
  'password-file': { type: 'string' },
  'ca-password-file': { type: 'string' },
  force: { type: 'boolean', default: false },
  help: { type: 'boolean', short: 'h', default: false },
} as const;

export const SHARED_HELP = `  --key-bits 2048|3072|4096  RSA key size (default 2048)
  --validity-days N          certificate lifetime in days (default 825)
  --kdf-iterations N         PBKDF2 iterations protecting the bundles (default ${DEFAULT_KDF_ITERATIONS},
                             ${MIN_KDF_ITERATIONS}-${MAX_KDF_ITERATIONS}; more = slower to guess, slower to open)
  --password-file FILE       read the bundle password from FILE's first line (else SECURECHAT_PASSWORD)
  --ca-password-file FILE    read the CA bundle's password from FILE's first line (else
                             SECURECHAT_CA_PASSWORD; if neither is given, the bundle password is
                             used for ca.p12 too, with a warning)
  --force                    replace existing files
  -h, --help                 show this help`;

/** A new password guards private keys; refuse the trivially guessable. */
export const MIN_NEW_PASSWORD_CHARS = 8;

export const DEFAULT_VALIDITY_DAYS = 825;
/** The CA outlives its certificates so members can be added later. */
export const MIN_CA_VALIDITY_DAYS = 3650;

export interface SharedValues {
  'key-bits'?: string;
  'validity-days'?: string;
  'kdf-iterations'?: string;
}

export interface IssuingOptions {
  keyBits: KeyBits;
  validityDays: number;
  kdfIterations: number;
}

export function issuingOptions(command: string, values: SharedValues): IssuingOptions {
  const rawBits = values['key-bits'];
  const keyBits = KEY_BITS.find((b) => String(b) === rawBits) ?? (rawBits === undefined ? 2048 : undefined);
  if (keyBits === undefined)
    throw usageError(command, `--key-bits must be 2048, 3072 or 4096, not "${rawBits}"`);
  return {
    keyBits,
    validityDays: integerOption(command, 'validity-days', values['validity-days'], {
      min: 1,
      max: 36_500,
      fallback: DEFAULT_VALIDITY_DAYS,
    }),
    kdfIterations: integerOption(command, 'kdf-iterations', values['kdf-iterations'], {
      min: MIN_KDF_ITERATIONS,
      max: MAX_KDF_ITERATIONS,
      fallback: DEFAULT_KDF_ITERATIONS,
    }),
  };
}
