import { createHash } from 'node:crypto';

/** SHA-256 over the certificate's DER encoding. */
export function fingerprintOf(der: Uint8Array): Buffer {
  return createHash('sha256').update(der).digest();
}

/** Raw lowercase hex, 64 characters: for machines and JSON. */
export function fingerprintHex(fingerprint: Uint8Array): string {
  return Buffer.from(fingerprint).toString('hex');
}

/** Upper-case hex in groups of four, for people comparing it aloud or side by side. */
export function formatFingerprint(fingerprint: Uint8Array | string): string {
  const hex = typeof fingerprint === 'string' ? fingerprint : fingerprintHex(fingerprint);
  return (hex.toUpperCase().match(/.{1,4}/g) ?? []).join(' ');
}
