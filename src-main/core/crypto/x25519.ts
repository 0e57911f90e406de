/**
 * X25519 keys as raw bytes (RFC 7748), the form prekeys travel in, and the Diffie-Hellman over
 * them: Node's own implementation, with the checks HPKE (hpke.ts) needs around it: exact sizes,
 * typed errors instead of OpenSSL exceptions, and refusal of small-order peer keys.
 */
import {
  createPrivateKey,
  createPublicKey,
  diffieHellman,
  generateKeyPairSync,
  type KeyObject,
} from 'node:crypto';
import { CryptoError } from './errors.js';

/** Raw X25519 keys, public and private. */
export const X25519_KEY_BYTES = 32;

/** The DER (PKCS#8) header of an X25519 private key: the fallback import, see privateKeyFromRaw. */
const PKCS8_X25519_PREFIX = Buffer.from('302e020100300506032b656e04220420', 'hex');

/**
 * Raw keys go in and out of KeyObjects as JWK, not DER: on Node 20's OpenSSL 3 a PKCS#8 import
 * runs ~1,400/s and an SPKI one ~4,000/s (its decoder framework), JWK ~17,000/s and ~98,000/s,
 * which would otherwise cap every open. A private JWK must carry `x`, but Node builds the key from
 * `d` alone and derives the public half itself; `x` here is a placeholder, and the public key is
 * always re-derived from the KeyObject (the RFC vectors' pkRm check pins that down).
 */
const JWK_X_PLACEHOLDER = Buffer.alloc(X25519_KEY_BYTES).toString('base64url');

export function requireBytes(
  what: string,
  value: unknown,
  bound: { exact?: number; max?: number; min?: number },
  code: CryptoError['code'],
): Uint8Array {
  if (!(value instanceof Uint8Array)) throw new CryptoError(code, `${what} must be bytes`);
  if (bound.exact !== undefined && value.length !== bound.exact) {
    throw new CryptoError(code, `${what} must be exactly ${bound.exact} bytes, not ${value.length}`);
  }
  if (bound.max !== undefined && value.length > bound.max) {
    throw new CryptoError(code, `${what} must be at most ${bound.max} bytes, not ${value.length}`);
  }
  if (bound.min !== undefined && value.length < bound.min) {
    throw new CryptoError(code, `${what} must be at least ${bound.min} bytes, not ${value.length}`);
  }
  return value;
}

export function privateKeyFromRaw(raw: Uint8Array): KeyObject {
  requireBytes('an X25519 private key', raw, { exact: X25519_KEY_BYTES }, 'BadKey');
  try {
    return privateKeyViaJwk(raw);
  } catch {
    // A runtime that checks `x` against `d` (Electron's Node is built on BoringSSL) refuses the
    // placeholder: import the slower DER form there rather than fail every open.
  }
  try {
    return privateKeyViaPkcs8(raw);
  } catch (err) {
    throw new CryptoError('BadKey', 'not a usable X25519 private key', { cause: err });
  }
}

/** The fast import (see JWK_X_PLACEHOLDER). Exported for the test that both imports agree. */
export function privateKeyViaJwk(raw: Uint8Array): KeyObject {
  const d = Buffer.from(raw.buffer, raw.byteOffset, raw.byteLength).toString('base64url');
  return createPrivateKey({ key: { kty: 'OKP', crv: 'X25519', d, x: JWK_X_PLACEHOLDER }, format: 'jwk' });
}

/** The fallback import: PKCS#8 DER, the fixed header then the raw key. */
export function privateKeyViaPkcs8(raw: Uint8Array): KeyObject {
  const der = Buffer.concat([PKCS8_X25519_PREFIX, raw]);
  try {
    return createPrivateKey({ key: der, format: 'der', type: 'pkcs8' });
  } finally {
    der.fill(0);
  }
}

export function publicKeyFromRaw(raw: Uint8Array, what: string, code: CryptoError['code']): KeyObject {
  requireBytes(what, raw, { exact: X25519_KEY_BYTES }, code);
  try {
    const x = Buffer.from(raw.buffer, raw.byteOffset, raw.byteLength).toString('base64url');
    return createPublicKey({ key: { kty: 'OKP', crv: 'X25519', x }, format: 'jwk' });
  } catch (err) {
    throw new CryptoError(code, `${what} is not a usable X25519 public key`, { cause: err });
  }
}

function jwkField(key: KeyObject, field: 'x' | 'd'): Buffer {
  const value = key.export({ format: 'jwk' })[field];
  if (typeof value !== 'string') throw new CryptoError('BadKey', `X25519 key has no "${field}"`);
  const raw = Buffer.from(value, 'base64url');
  if (raw.length !== X25519_KEY_BYTES) throw new CryptoError('BadKey', 'X25519 key of the wrong size');
  return raw;
}

export function rawPublicKey(key: KeyObject): Buffer {
  return jwkField(key, 'x');
}

export function rawPrivateKey(key: KeyObject): Buffer {
  return jwkField(key, 'd');
}

/**
 * X25519, refusing a small-order peer key. RFC 9180 §7.1.4 requires the all-zero check; OpenSSL
 * already fails such a derivation, the explicit test keeps it true on any build (BoringSSL in
 * Electron included). `code` is the caller's: a bad recipient key for a sender, a bad enc (that
 * is, a failed decryption) for a recipient.
 */
export function dh(privateKey: KeyObject, publicKey: KeyObject, code: CryptoError['code']): Buffer {
  let shared: Buffer;
  try {
    shared = diffieHellman({ privateKey, publicKey });
  } catch (err) {
    throw new CryptoError(code, 'X25519 failed: the peer key is of small order', { cause: err });
  }
  let acc = 0;
  for (const byte of shared) acc |= byte;
  if (acc === 0)
    throw new CryptoError(code, 'X25519 gave the all-zero value: the peer key is of small order');
  return shared;
}

export interface PrekeyPair {
  /** Raw 32-byte X25519 public key (RFC 7748 u-coordinate). */
  publicKey: Buffer;
  /** Raw 32-byte X25519 private key: erase it (fill(0)) once the prekey retires. */
  privateKey: Buffer;
}

/** A fresh X25519 key pair, raw bytes, for a prekey or any HPKE recipient. */
export function generatePrekeyPair(): PrekeyPair {
  const { publicKey, privateKey } = generateKeyPairSync('x25519');
  return { publicKey: rawPublicKey(publicKey), privateKey: rawPrivateKey(privateKey) };
}

/** The public half of a raw X25519 private key. */
export function x25519PublicKeyOf(privateKeyRaw: Uint8Array): Buffer {
  return rawPublicKey(createPublicKey(privateKeyFromRaw(privateKeyRaw)));
}
