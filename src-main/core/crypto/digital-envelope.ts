/**
 * Digital envelope: a fresh AES-256-GCM key wrapped with the recipient's RSA-OAEP key.
 * The associated data is bound to both the wrapped key (as the OAEP label) and the payload,
 * so an envelope cut from one context cannot be replayed into another.
 */
import type { KeyObject } from 'node:crypto';
import {
  AES_KEY_BYTES,
  aesGcmDecrypt,
  aesGcmEncrypt,
  oaepDecrypt,
  oaepEncrypt,
  randomBytes,
} from './primitives.js';

export interface DigitalEnvelope {
  wrappedKey: Buffer;
  iv: Buffer;
  ciphertext: Buffer;
}

export function sealEnvelope(recipient: KeyObject, plaintext: Uint8Array, aad: Uint8Array): DigitalEnvelope {
  const key = randomBytes(AES_KEY_BYTES);
  try {
    const wrappedKey = oaepEncrypt(recipient, key, aad);
    const { iv, ciphertext } = aesGcmEncrypt(key, plaintext, aad);
    return { wrappedKey, iv, ciphertext };
  } finally {
    key.fill(0);
  }
}

export function openEnvelope(privateKey: KeyObject, envelope: DigitalEnvelope, aad: Uint8Array): Buffer {
  const key = oaepDecrypt(privateKey, envelope.wrappedKey, aad);
  try {
    return aesGcmDecrypt(key, envelope.iv, envelope.ciphertext, aad);
  } finally {
    key.fill(0);
  }
}
