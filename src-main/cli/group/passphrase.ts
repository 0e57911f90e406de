/**
 * Generated bundle passwords (`group create --generate-passwords`): 20 bytes from
 * crypto.randomBytes = 160 bits, written as 32 characters of Crockford's base32 (digits and
 * lowercase letters without i, l, o, u, so nothing is misread) in 8 groups of 4, e.g.
 * "7k2m-q9xd-...". Every character carries exactly 5 bits, so no bias and nothing to pad.
 */
import { randomBytes } from 'node:crypto';

const ALPHABET = '0123456789abcdefghjkmnpqrstvwxyz';
export const PASSPHRASE_BITS = 160;

export function generatePassphrase(): string {
  const bytes = randomBytes(PASSPHRASE_BITS / 8);
  let bits = 0;
  let value = 0;
  let out = '';
  for (const byte of bytes) {
    value = (value << 8) | byte;
    bits += 8;
    while (bits >= 5) {
      bits -= 5;
      out += ALPHABET[(value >> bits) & 31];
    }
    value &= (1 << bits) - 1;
  }
  return (out.match(/.{4}/g) ?? []).join('-');
}
