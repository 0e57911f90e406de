/**
 * The hot-path primitives, all on Node's built-in crypto (OpenSSL; BoringSSL inside Electron).
 * Keys are KeyObjects parsed once by the caller (see keys.ts); nothing here parses PEM per call.
 */
import {
  constants,
  createCipheriv,
  createDecipheriv,
  hkdfSync,
  privateDecrypt,
  publicEncrypt,
  randomBytes as nodeRandomBytes,
  sign as nodeSign,
  verify as nodeVerify,
  type KeyObject,
} from 'node:crypto';
import { CryptoError } from './errors.js';

export const AES_KEY_BYTES = 32;
export const GCM_IV_BYTES = 12;
export const GCM_TAG_BYTES = 16;

const PSS = { padding: constants.RSA_PKCS1_PSS_PADDING, saltLength: constants.RSA_PSS_SALTLEN_DIGEST };

export function randomBytes(n: number): Buffer {
  return nodeRandomBytes(n);
}

/** RSA-PSS, SHA-256, salt length = digest length. */
export function signPss(privateKey: KeyObject, data: Uint8Array): Buffer {
  return nodeSign('sha256', data, { key: privateKey, ...PSS });
}

/** The same signature computed on libuv's thread pool, so a busy sender uses every core. */
export function signPssAsync(privateKey: KeyObject, data: Uint8Array): Promise<Buffer> {
  return new Promise((resolve, reject) => {
    nodeSign('sha256', data, { key: privateKey, ...PSS }, (err, sig) => (err ? reject(err) : resolve(sig)));
  });
}

export function verifyPss(publicKey: KeyObject, data: Uint8Array, signature: Uint8Array): boolean {
  try {
    return nodeVerify('sha256', data, { key: publicKey, ...PSS }, signature);
  } catch {
    // A malformed signature (wrong length, not an integer < n) is simply not valid.
    return false;
  }
}

/** RSA-OAEP with SHA-256 for both the hash and MGF1; the optional label binds the ciphertext to a context. */
export function oaepEncrypt(publicKey: KeyObject, plaintext: Uint8Array, label?: Uint8Array): Buffer {
  try {
    return publicEncrypt(
      { key: publicKey, padding: constants.RSA_PKCS1_OAEP_PADDING, oaepHash: 'sha256', oaepLabel: label },
      plaintext,
    );
  } catch (err) {
    throw new CryptoError('BadInput', `RSA-OAEP encryption failed: ${(err as Error).message}`);
  }
}

export function oaepDecrypt(privateKey: KeyObject, ciphertext: Uint8Array, label?: Uint8Array): Buffer {
  // Exactly the modulus length: OpenSSL also takes a shorter input as the same integer, so one
  // with its leading zero byte cut off (1 in 256 ciphertexts) would decrypt.
  const modulusBits = privateKey.asymmetricKeyDetails?.modulusLength ?? 0;
  if (ciphertext.length !== Math.ceil(modulusBits / 8)) {
    throw new CryptoError('DecryptFailed', `RSA-OAEP ciphertext must be ${Math.ceil(modulusBits / 8)} bytes`);
  }
  try {
    return privateDecrypt(
      { key: privateKey, padding: constants.RSA_PKCS1_OAEP_PADDING, oaepHash: 'sha256', oaepLabel: label },
      ciphertext,
    );
  } catch {
    throw new CryptoError('DecryptFailed', 'RSA-OAEP decryption failed (wrong key, label or corrupted data)');
  }
}

export interface GcmSealed {
  iv: Buffer;
  /** Ciphertext followed by the 16-byte tag. */
  ciphertext: Buffer;
}

export function aesGcmEncrypt(
  key: Uint8Array,
  plaintext: Uint8Array,
  aad: Uint8Array,
  iv?: Uint8Array,
): GcmSealed {
  if (key.length !== AES_KEY_BYTES) throw new CryptoError('BadKey', 'AES-256-GCM needs a 32-byte key');
  const nonce = iv ? Buffer.from(iv) : nodeRandomBytes(GCM_IV_BYTES);
  if (nonce.length !== GCM_IV_BYTES) throw new CryptoError('BadInput', 'AES-GCM IV must be 12 bytes');
  const cipher = createCipheriv('aes-256-gcm', key, nonce, { authTagLength: GCM_TAG_BYTES });
  cipher.setAAD(aad);
  const body = cipher.update(plaintext);
  const final = cipher.final();
  return { iv: nonce, ciphertext: Buffer.concat([body, final, cipher.getAuthTag()]) };
}

export function aesGcmDecrypt(
  key: Uint8Array,
  iv: Uint8Array,
  ciphertext: Uint8Array,
  aad: Uint8Array,
): Buffer {
  if (key.length !== AES_KEY_BYTES) throw new CryptoError('BadKey', 'AES-256-GCM needs a 32-byte key');
  if (iv.length !== GCM_IV_BYTES || ciphertext.length < GCM_TAG_BYTES) {
    throw new CryptoError('DecryptFailed', 'AES-GCM input has the wrong shape');
  }
  try {
    const decipher = createDecipheriv('aes-256-gcm', key, iv, { authTagLength: GCM_TAG_BYTES });
    decipher.setAAD(aad);
    decipher.setAuthTag(ciphertext.subarray(ciphertext.length - GCM_TAG_BYTES));
    const body = decipher.update(ciphertext.subarray(0, ciphertext.length - GCM_TAG_BYTES));
    return Buffer.concat([body, decipher.final()]);
  } catch {
    throw new CryptoError(
      'DecryptFailed',
      'AES-GCM authentication failed (wrong key, data or associated data)',
    );
  }
}

export function hkdfSha256(ikm: Uint8Array, salt: Uint8Array, info: Uint8Array, length: number): Buffer {
  return Buffer.from(hkdfSync('sha256', ikm, salt, info, length));
}
