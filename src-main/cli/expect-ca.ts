/**
 * `--expect-ca SHA256HEX` for `chat` and `relay`: the user states which group CA they expect (the
 * fingerprint the organiser handed out with ca.pem), so a bundle with another CA is refused before
 * it is used, instead of the user having to notice a different fingerprint.
 */
import type { Certificate } from '../core/pki/certificate.js';
import { PkiError } from '../core/pki/errors.js';
import { formatFingerprint } from '../core/pki/fingerprint.js';
import { CliError } from './cli-error.js';

/**
 * The 64 lowercase hex digits of a fingerprint as people copy it: `inspect`'s grouped form, the
 * raw form, or OpenSSL's colon-separated one. Anything else is a usage error (exit 2).
 */
export function parseExpectedCa(command: string, raw: string | undefined): string | undefined {
  if (raw === undefined) return undefined;
  const hex = raw.replace(/[\s:]/g, '').toLowerCase();
  if (!/^[0-9a-f]{64}$/.test(hex)) {
    throw new CliError(
      `--expect-ca must be a SHA-256 fingerprint (64 hex digits, ':' or spaces allowed), not "${raw.slice(0, 120)}" (see securechat-x ${command} --help)`,
      2,
    );
  }
  return hex;
}

/** Throws UnexpectedCa unless `ca` is the expected group CA; nothing to check without one. */
export function checkExpectedCa(ca: Certificate, expectedHex: string | undefined): void {
  if (expectedHex === undefined || ca.fingerprintHex === expectedHex) return;
  throw new PkiError(
    'UnexpectedCa',
    `this bundle's group CA "${ca.name}" has fingerprint ${ca.fingerprintDisplay}, not the expected ` +
      `${formatFingerprint(expectedHex)}; it is not from the group you expect, so it was not used`,
  );
}
