import { createPrivateKey, createPublicKey, generateKeyPairSync, type KeyObject } from 'node:crypto';
import fc from 'fast-check';
import { describe, expect, it } from 'vitest';
import {
  AES_KEY_BYTES,
  CryptoError,
  GCM_IV_BYTES,
  GCM_TAG_BYTES,
  aesGcmDecrypt,
  aesGcmEncrypt,
  hkdfSha256,
  oaepDecrypt,
  oaepEncrypt,
  openEnvelope,
  randomBytes,
  sealEnvelope,
  signPss,
  signPssAsync,
  verifyPss,
  type DigitalEnvelope,
} from '../../src-main/core/crypto/index.js';

interface KeyPair {
  privateKey: KeyObject;
  publicKey: KeyObject;
}

function rsaKeyPair(bits = 2048): KeyPair {
  const { privateKey } = generateKeyPairSync('rsa', { modulusLength: bits });
  return { privateKey, publicKey: createPublicKey(privateKey) };
}

// Key generation dominates the cost of this file: two pairs serve every test.
const alice = rsaKeyPair();
const mallory = rsaKeyPair();

function flipBit(buf: Buffer, index: number, bit = 0): Buffer {
  const out = Buffer.from(buf);
  out[index] = (out[index] as number) ^ (1 << bit);
  return out;
}

/** Asserts `fn` throws a CryptoError with `code` (and nothing else: no raw OpenSSL error). */
function expectCryptoError(fn: () => unknown, code: CryptoError['code']): void {
  let thrown: unknown;
  try {
    fn();
  } catch (err) {
    thrown = err;
  }
  expect(thrown).toBeInstanceOf(CryptoError);
  expect((thrown as CryptoError).code).toBe(code);
}

describe('RSA-PSS signatures', () => {
  const data = Buffer.from('SecureChat-X test message');

  it('verifies its own signature', () => {
    const sig = signPss(alice.privateKey, data);
    expect(sig.length).toBe(256);
    expect(verifyPss(alice.publicKey, data, sig)).toBe(true);
  });

  it('is randomised (PSS salt) yet every signature verifies', () => {
    const a = signPss(alice.privateKey, data);
    const b = signPss(alice.privateKey, data);
    expect(a.equals(b)).toBe(false);
    expect(verifyPss(alice.publicKey, data, b)).toBe(true);
  });

  it('async signing produces a valid signature', async () => {
    const sig = await signPssAsync(alice.privateKey, data);
    expect(verifyPss(alice.publicKey, data, sig)).toBe(true);
  });

  it('rejects a signature checked with the wrong public key', () => {
    const sig = signPss(mallory.privateKey, data);
    expect(verifyPss(alice.publicKey, data, sig)).toBe(false);
  });

  it('rejects tampered data and tampered signatures', () => {
    const sig = signPss(alice.privateKey, data);
    expect(verifyPss(alice.publicKey, flipBit(data, 0), sig)).toBe(false);
    expect(verifyPss(alice.publicKey, Buffer.concat([data, Buffer.of(0)]), sig)).toBe(false);
    for (const i of [0, 1, 128, 254, 255]) {
      expect(verifyPss(alice.publicKey, data, flipBit(sig, i, 7))).toBe(false);
    }
  });

  it('returns false (never throws) for malformed signatures', () => {
    expect(verifyPss(alice.publicKey, data, Buffer.alloc(0))).toBe(false);
    expect(verifyPss(alice.publicKey, data, Buffer.alloc(255, 1))).toBe(false);
    expect(verifyPss(alice.publicKey, data, Buffer.alloc(257, 1))).toBe(false);
    // An integer >= n is not a signature.
    expect(verifyPss(alice.publicKey, data, Buffer.alloc(256, 0xff))).toBe(false);
  });

  it('uses salt length = digest length (32), as docs/protocol.md specifies', async () => {
    const { constants, verify } = await import('node:crypto');
    const sig = signPss(alice.privateKey, data);
    const withSalt = (saltLength: number): boolean =>
      verify(
        'sha256',
        data,
        { key: alice.publicKey, padding: constants.RSA_PKCS1_PSS_PADDING, saltLength },
        sig,
      );
    expect(withSalt(32)).toBe(true);
    expect(withSalt(20)).toBe(false);
  });
});

describe('RSA-OAEP (SHA-256)', () => {
  const secret = randomBytes(32);

  it('round-trips without a label', () => {
    const ct = oaepEncrypt(alice.publicKey, secret);
    expect(ct.length).toBe(256);
    expect(oaepDecrypt(alice.privateKey, ct).equals(secret)).toBe(true);
  });

  it('round-trips with a label', () => {
    const label = Buffer.from('SecureChat-X/v1 nonce-request\x00g\x001');
    const ct = oaepEncrypt(alice.publicKey, secret, label);
    expect(oaepDecrypt(alice.privateKey, ct, label).equals(secret)).toBe(true);
  });

  it('is randomised: the same plaintext encrypts differently', () => {
    expect(oaepEncrypt(alice.publicKey, secret).equals(oaepEncrypt(alice.publicKey, secret))).toBe(false);
  });

  it('fails with DecryptFailed for a wrong, missing or extra label', () => {
    const label = Buffer.from('context A');
    const ct = oaepEncrypt(alice.publicKey, secret, label);
    expectCryptoError(() => oaepDecrypt(alice.privateKey, ct, Buffer.from('context B')), 'DecryptFailed');
    expectCryptoError(() => oaepDecrypt(alice.privateKey, ct), 'DecryptFailed');
    const unlabelled = oaepEncrypt(alice.publicKey, secret);
    expectCryptoError(() => oaepDecrypt(alice.privateKey, unlabelled, label), 'DecryptFailed');
  });

  it('fails with DecryptFailed for the wrong private key or tampered ciphertext', () => {
    const ct = oaepEncrypt(alice.publicKey, secret);
    expectCryptoError(() => oaepDecrypt(mallory.privateKey, ct), 'DecryptFailed');
    expectCryptoError(() => oaepDecrypt(alice.privateKey, flipBit(ct, 100)), 'DecryptFailed');
    expectCryptoError(() => oaepDecrypt(alice.privateKey, ct.subarray(1)), 'DecryptFailed');
    expectCryptoError(() => oaepDecrypt(alice.privateKey, Buffer.alloc(0)), 'DecryptFailed');
  });

  it('refuses a ciphertext without its leading zero byte (OpenSSL alone would read it as the same number)', () => {
    let ct = oaepEncrypt(alice.publicKey, secret);
    for (let i = 0; ct[0] !== 0 && i < 20_000; i++) ct = oaepEncrypt(alice.publicKey, secret);
    expect(ct[0]).toBe(0);
    expect(oaepDecrypt(alice.privateKey, ct).equals(secret)).toBe(true);
    expectCryptoError(() => oaepDecrypt(alice.privateKey, ct.subarray(1)), 'DecryptFailed');
  });

  it('refuses a plaintext too long for the key with BadInput', () => {
    // 2048-bit OAEP-SHA256 holds at most 256 - 2*32 - 2 = 190 bytes.
    expect(oaepEncrypt(alice.publicKey, Buffer.alloc(190)).length).toBe(256);
    expectCryptoError(() => oaepEncrypt(alice.publicKey, Buffer.alloc(191)), 'BadInput');
  });
});

describe('AES-256-GCM', () => {
  const key = randomBytes(AES_KEY_BYTES);
  const aad = Buffer.from('SecureChat-X/v1 chat\x00group\x00epoch-1');
  const plaintext = Buffer.from('{"text":"hello","sentAt":1}');

  it('round-trips and appends a 16-byte tag', () => {
    const { iv, ciphertext } = aesGcmEncrypt(key, plaintext, aad);
    expect(iv.length).toBe(GCM_IV_BYTES);
    expect(ciphertext.length).toBe(plaintext.length + GCM_TAG_BYTES);
    expect(aesGcmDecrypt(key, iv, ciphertext, aad).equals(plaintext)).toBe(true);
  });

  it('draws a fresh IV per message unless one is given', () => {
    const a = aesGcmEncrypt(key, plaintext, aad);
    const b = aesGcmEncrypt(key, plaintext, aad);
    expect(a.iv.equals(b.iv)).toBe(false);
    const iv = Buffer.alloc(GCM_IV_BYTES, 7);
    expect(aesGcmEncrypt(key, plaintext, aad, iv).iv.equals(iv)).toBe(true);
  });

  it('encrypts an empty plaintext to just the tag', () => {
    const { iv, ciphertext } = aesGcmEncrypt(key, Buffer.alloc(0), aad);
    expect(ciphertext.length).toBe(GCM_TAG_BYTES);
    expect(aesGcmDecrypt(key, iv, ciphertext, aad).length).toBe(0);
  });

  it('fails with DecryptFailed when the AAD, IV, ciphertext, tag or key is changed', () => {
    const { iv, ciphertext } = aesGcmEncrypt(key, plaintext, aad);
    const tagStart = ciphertext.length - GCM_TAG_BYTES;
    expectCryptoError(() => aesGcmDecrypt(key, iv, ciphertext, flipBit(aad, 3)), 'DecryptFailed');
    expectCryptoError(() => aesGcmDecrypt(key, iv, ciphertext, Buffer.alloc(0)), 'DecryptFailed');
    expectCryptoError(() => aesGcmDecrypt(key, flipBit(iv, 0), ciphertext, aad), 'DecryptFailed');
    expectCryptoError(() => aesGcmDecrypt(key, iv, flipBit(ciphertext, 0), aad), 'DecryptFailed');
    expectCryptoError(() => aesGcmDecrypt(key, iv, flipBit(ciphertext, tagStart), aad), 'DecryptFailed');
    expectCryptoError(
      () => aesGcmDecrypt(key, iv, flipBit(ciphertext, ciphertext.length - 1, 7), aad),
      'DecryptFailed',
    );
    expectCryptoError(() => aesGcmDecrypt(randomBytes(32), iv, ciphertext, aad), 'DecryptFailed');
  });

  it('detects a single flipped bit anywhere (property)', () => {
    const { iv, ciphertext } = aesGcmEncrypt(key, plaintext, aad);
    const whole = Buffer.concat([iv, ciphertext, aad]);
    fc.assert(
      fc.property(fc.nat({ max: whole.length - 1 }), fc.nat({ max: 7 }), (index, bit) => {
        const t = flipBit(whole, index, bit);
        const tIv = t.subarray(0, iv.length);
        const tCt = t.subarray(iv.length, iv.length + ciphertext.length);
        const tAad = t.subarray(iv.length + ciphertext.length);
        expectCryptoError(() => aesGcmDecrypt(key, tIv, tCt, tAad), 'DecryptFailed');
      }),
      { numRuns: 300 },
    );
  });

  it('rejects inputs of the wrong shape with typed errors', () => {
    const { iv, ciphertext } = aesGcmEncrypt(key, plaintext, aad);
    expectCryptoError(() => aesGcmEncrypt(randomBytes(16), plaintext, aad), 'BadKey');
    expectCryptoError(() => aesGcmDecrypt(randomBytes(16), iv, ciphertext, aad), 'BadKey');
    expectCryptoError(() => aesGcmEncrypt(key, plaintext, aad, Buffer.alloc(16)), 'BadInput');
    expectCryptoError(() => aesGcmDecrypt(key, Buffer.alloc(16), ciphertext, aad), 'DecryptFailed');
    expectCryptoError(() => aesGcmDecrypt(key, iv, ciphertext.subarray(0, 15), aad), 'DecryptFailed');
    // A truncated tag must never be accepted as a shorter tag.
    expectCryptoError(() => aesGcmDecrypt(key, iv, ciphertext.subarray(0, -4), aad), 'DecryptFailed');
  });
});

describe('HKDF-SHA256', () => {
  const hex = (s: string): Buffer => Buffer.from(s, 'hex');

  it('matches RFC 5869 test case 1', () => {
    const okm = hkdfSha256(
      hex('0b0b0b0b0b0b0b0b0b0b0b0b0b0b0b0b0b0b0b0b0b0b'),
      hex('000102030405060708090a0b0c'),
      hex('f0f1f2f3f4f5f6f7f8f9'),
      42,
    );
    expect(okm.toString('hex')).toBe(
      '3cb25f25faacd57a90434f64d0362f2a2d2d0a90cf1a5a4c5db02d56ecc4c5bf34007208d5b887185865',
    );
  });

  it('matches RFC 5869 test case 3 (empty salt and info)', () => {
    const okm = hkdfSha256(
      hex('0b0b0b0b0b0b0b0b0b0b0b0b0b0b0b0b0b0b0b0b0b0b'),
      Buffer.alloc(0),
      Buffer.alloc(0),
      42,
    );
    expect(okm.toString('hex')).toBe(
      '8da4e775a563c18f715f802a063c5a31b8a11f5c5ee1879ec3454e5f3c738d2d9d201395faa4b61a96c8',
    );
  });

  it('separates outputs by info and salt', () => {
    const ikm = randomBytes(64);
    const salt = randomBytes(32);
    const a = hkdfSha256(ikm, salt, Buffer.from('SecureChat-X/v1 group-key'), 32);
    const b = hkdfSha256(ikm, salt, Buffer.from('SecureChat-X/v1 safety-number'), 32);
    const c = hkdfSha256(ikm, randomBytes(32), Buffer.from('SecureChat-X/v1 group-key'), 32);
    expect(a.length).toBe(32);
    expect(a.equals(b)).toBe(false);
    expect(a.equals(c)).toBe(false);
  });
});

describe('digital envelope', () => {
  const aad = Buffer.from('SecureChat-X/v1 key-distribution\x00group\x001\x00alice\x00bob');
  const payload = randomBytes(300);

  it('seals and opens', () => {
    const env = sealEnvelope(alice.publicKey, payload, aad);
    expect(env.wrappedKey.length).toBe(256);
    expect(env.iv.length).toBe(GCM_IV_BYTES);
    expect(openEnvelope(alice.privateKey, env, aad).equals(payload)).toBe(true);
  });

  it('uses a fresh content key every time', () => {
    const a = sealEnvelope(alice.publicKey, payload, aad);
    const b = sealEnvelope(alice.publicKey, payload, aad);
    expect(a.ciphertext.equals(b.ciphertext)).toBe(false);
    expect(a.wrappedKey.equals(b.wrappedKey)).toBe(false);
  });

  it('fails with DecryptFailed for the wrong AAD (context) or the wrong recipient key', () => {
    const env = sealEnvelope(alice.publicKey, payload, aad);
    expectCryptoError(
      () => openEnvelope(alice.privateKey, env, flipBit(aad, aad.length - 1)),
      'DecryptFailed',
    );
    expectCryptoError(() => openEnvelope(mallory.privateKey, env, aad), 'DecryptFailed');
  });

  it('fails with DecryptFailed when any part is tampered with or swapped between envelopes', () => {
    const env = sealEnvelope(alice.publicKey, payload, aad);
    const other = sealEnvelope(alice.publicKey, payload, aad);
    const variants: DigitalEnvelope[] = [
      { ...env, wrappedKey: flipBit(env.wrappedKey, 10) },
      { ...env, iv: flipBit(env.iv, 0) },
      { ...env, ciphertext: flipBit(env.ciphertext, 5) },
      { ...env, wrappedKey: other.wrappedKey },
      { ...env, ciphertext: env.ciphertext.subarray(0, 10) },
    ];
    for (const v of variants)
      expectCryptoError(() => openEnvelope(alice.privateKey, v, aad), 'DecryptFailed');
  });

  it('works with a 3072-bit recipient key', () => {
    const big = rsaKeyPair(3072);
    const env = sealEnvelope(big.publicKey, payload, aad);
    expect(env.wrappedKey.length).toBe(384);
    expect(
      openEnvelope(createPrivateKey(big.privateKey.export({ type: 'pkcs8', format: 'pem' })), env, aad),
    ).toEqual(payload);
  });
});
