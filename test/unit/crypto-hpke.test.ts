/**
 * HPKE base mode, DHKEM(X25519, HKDF-SHA256) / HKDF-SHA256 / AES-256-GCM: our implementation
 * replayed against the RFC 9180 test vectors (every key-schedule value, all 257 encryptions, the
 * exports, from both sides), then its refusals and a round-trip property.
 */
import { createHmac, createPublicKey, hkdfSync, randomBytes } from 'node:crypto';
import { readFileSync } from 'node:fs';
import { resolve } from 'node:path';
import fc from 'fast-check';
import { describe, expect, it } from 'vitest';
import {
  CryptoError,
  HPKE_AEAD_ID,
  HPKE_ENC_BYTES,
  HPKE_KDF_ID,
  HPKE_KEM_ID,
  HPKE_MAX_EXPORT_BYTES,
  HPKE_MAX_INFO_BYTES,
  HPKE_MODE_BASE,
  X25519_KEY_BYTES,
  deriveX25519KeyPair,
  generatePrekeyPair,
  hpkeOpen,
  hpkeSeal,
  setupBaseR,
  setupBaseS,
  x25519PublicKeyOf,
} from '../../src-main/core/crypto/index.js';
import * as cryptoIndex from '../../src-main/core/crypto/index.js';
import { privateKeyViaJwk, privateKeyViaPkcs8 } from '../../src-main/core/crypto/x25519.js';
import {
  hkdfExpandForTesting,
  setupBaseRForTesting,
  setupBaseSWithEphemeralForTesting,
  type HpkeKeySchedule,
} from '../../src-main/core/crypto/hpke.js';

interface Vector {
  mode: number;
  kem_id: number;
  kdf_id: number;
  aead_id: number;
  info: string;
  ikmR: string;
  ikmE: string;
  skRm: string;
  skEm: string;
  pkRm: string;
  enc: string;
  shared_secret: string;
  key_schedule_context: string;
  secret: string;
  key: string;
  base_nonce: string;
  exporter_secret: string;
  encryptions: { aad: string; ct: string; pt: string }[];
  exports: { exporter_context: string; L: number; exported_value: string }[];
}

const FIXTURE = resolve(import.meta.dirname, '../fixtures/hpke-rfc9180-x25519-sha256-aes256gcm.json');
const { vectors } = JSON.parse(readFileSync(FIXTURE, 'utf8')) as { vectors: Vector[] };

const hex = (s: string): Buffer => Buffer.from(s, 'hex');
const toHex = (b: Uint8Array): string => Buffer.from(b).toString('hex');

function flipBit(buf: Uint8Array, index: number, bit = 0): Buffer {
  const out = Buffer.from(buf);
  out[index] = (out[index] as number) ^ (1 << bit);
  return out;
}

/** The CryptoError `fn` throws (and nothing else: no raw OpenSSL error). */
function cryptoErrorOf(fn: () => unknown): CryptoError {
  try {
    fn();
  } catch (err) {
    expect(err).toBeInstanceOf(CryptoError);
    return err as CryptoError;
  }
  throw new Error('expected a CryptoError, nothing was thrown');
}

function expectCode(fn: () => unknown, code: CryptoError['code']): void {
  expect(cryptoErrorOf(fn).code).toBe(code);
}

function scheduleHex(s: HpkeKeySchedule): Record<string, string> {
  return {
    shared_secret: toHex(s.sharedSecret),
    key_schedule_context: toHex(s.keyScheduleContext),
    secret: toHex(s.secret),
    key: toHex(s.key),
    base_nonce: toHex(s.baseNonce),
    exporter_secret: toHex(s.exporterSecret),
  };
}

describe('the RFC 9180 fixture', () => {
  it('holds base-mode vectors of exactly our suite, with encryptions past sequence number 255', () => {
    expect(vectors.length).toBeGreaterThanOrEqual(1);
    for (const v of vectors) {
      expect([v.mode, v.kem_id, v.kdf_id, v.aead_id]).toEqual([
        HPKE_MODE_BASE,
        HPKE_KEM_ID,
        HPKE_KDF_ID,
        HPKE_AEAD_ID,
      ]);
      expect(v.encryptions.length).toBeGreaterThan(256);
      expect(v.exports.length).toBeGreaterThan(0);
    }
  });
});

describe.each(vectors.map((v, i) => [i, v] as const))('RFC 9180 vector %i', (_index, v) => {
  const info = hex(v.info);

  it('keys: the raw private keys give the published public keys, DeriveKeyPair gives both', () => {
    expect(toHex(x25519PublicKeyOf(hex(v.skRm)))).toBe(v.pkRm);
    expect(toHex(x25519PublicKeyOf(hex(v.skEm)))).toBe(v.enc);
    const r = deriveX25519KeyPair(hex(v.ikmR));
    expect([toHex(r.privateKey), toHex(r.publicKey)]).toEqual([v.skRm, v.pkRm]);
    const e = deriveX25519KeyPair(hex(v.ikmE));
    expect([toHex(e.privateKey), toHex(e.publicKey)]).toEqual([v.skEm, v.enc]);
  });

  it('keys: the fast JWK import and the PKCS#8 fallback make the same key', () => {
    for (const sk of [v.skRm, v.skEm]) {
      const viaJwk = privateKeyViaJwk(hex(sk));
      const viaDer = privateKeyViaPkcs8(hex(sk));
      expect(viaDer.export({ format: 'jwk' }).d).toBe(Buffer.from(sk, 'hex').toString('base64url'));
      expect(createPublicKey(viaJwk).export({ format: 'jwk' }).x).toBe(
        createPublicKey(viaDer).export({ format: 'jwk' }).x,
      );
    }
  });

  const expected = {
    shared_secret: v.shared_secret,
    key_schedule_context: v.key_schedule_context,
    secret: v.secret,
    key: v.key,
    base_nonce: v.base_nonce,
    exporter_secret: v.exporter_secret,
  };

  it('sender: enc and every key-schedule value', () => {
    const { context, schedule } = setupBaseSWithEphemeralForTesting(hex(v.pkRm), info, hex(v.skEm));
    expect(toHex(context.enc)).toBe(v.enc);
    expect(scheduleHex(schedule)).toEqual(expected);
  });

  it('recipient: every key-schedule value from enc and skRm', () => {
    const { schedule } = setupBaseRForTesting(hex(v.enc), hex(v.skRm), info);
    expect(scheduleHex(schedule)).toEqual(expected);
  });

  it(`sender seals all ${v.encryptions.length} encryptions in order, byte for byte`, () => {
    const { context } = setupBaseSWithEphemeralForTesting(hex(v.pkRm), info, hex(v.skEm));
    const got = v.encryptions.map((e) => toHex(context.seal(hex(e.aad), hex(e.pt))));
    expect(got).toEqual(v.encryptions.map((e) => e.ct));
    expect(context.seq).toBe(v.encryptions.length);
  });

  it('recipient opens all of them in order', () => {
    const context = setupBaseR(hex(v.enc), hex(v.skRm), info);
    const got = v.encryptions.map((e) => toHex(context.open(hex(e.aad), hex(e.ct))));
    expect(got).toEqual(v.encryptions.map((e) => e.pt));
  });

  it('the recipient refuses encryption 1 at sequence number 0 (order matters)', () => {
    const context = setupBaseR(hex(v.enc), hex(v.skRm), info);
    const second = v.encryptions[1] as Vector['encryptions'][number];
    expectCode(() => context.open(hex(second.aad), hex(second.ct)), 'DecryptFailed');
    // A failed open does not advance the context: encryption 0 still opens.
    const first = v.encryptions[0] as Vector['encryptions'][number];
    expect(toHex(context.open(hex(first.aad), hex(first.ct)))).toBe(first.pt);
  });

  it('exports match on both sides', () => {
    const { context: sender } = setupBaseSWithEphemeralForTesting(hex(v.pkRm), info, hex(v.skEm));
    const recipient = setupBaseR(hex(v.enc), hex(v.skRm), info);
    for (const x of v.exports) {
      expect(toHex(sender.export(hex(x.exporter_context), x.L))).toBe(x.exported_value);
      expect(toHex(recipient.export(hex(x.exporter_context), x.L))).toBe(x.exported_value);
    }
  });

  it('single-shot hpkeOpen opens encryption 0', () => {
    const first = v.encryptions[0] as Vector['encryptions'][number];
    expect(toHex(hpkeOpen(hex(v.skRm), hex(v.enc), info, hex(first.aad), hex(first.ct)))).toBe(first.pt);
  });
});

describe('HKDF-Expand', () => {
  it("equals Node's hkdfSync after an HMAC extract, for any length up to 255 blocks", () => {
    fc.assert(
      fc.property(
        fc.uint8Array({ maxLength: 64 }),
        fc.uint8Array({ maxLength: 64 }),
        fc.uint8Array({ maxLength: 64 }),
        fc.integer({ min: 1, max: HPKE_MAX_EXPORT_BYTES }),
        (salt, ikm, info, length) => {
          const prk = createHmac('sha256', salt).update(ikm).digest();
          const node = Buffer.from(hkdfSync('sha256', ikm, salt, info, length));
          expect(hkdfExpandForTesting(prk, info, length).equals(node)).toBe(true);
        },
      ),
      { numRuns: 60 },
    );
  });
});

describe('hpkeSeal / hpkeOpen', () => {
  const alice = generatePrekeyPair();
  const mallory = generatePrekeyPair();
  const info = Buffer.from('securechat-x test info');
  const aad = Buffer.from('securechat-x test aad');
  const message = Buffer.from('the epoch key, say');

  it('generates raw 32-byte pairs whose halves belong together', () => {
    expect(alice.publicKey.length).toBe(X25519_KEY_BYTES);
    expect(alice.privateKey.length).toBe(X25519_KEY_BYTES);
    expect(x25519PublicKeyOf(alice.privateKey).equals(alice.publicKey)).toBe(true);
    expect(alice.publicKey.equals(mallory.publicKey)).toBe(false);
  });

  it('round-trips, with a fresh enc each time', () => {
    const a = hpkeSeal(alice.publicKey, info, aad, message);
    const b = hpkeSeal(alice.publicKey, info, aad, message);
    expect(a.enc.length).toBe(HPKE_ENC_BYTES);
    expect(a.ciphertext.length).toBe(message.length + 16);
    expect(a.enc.equals(b.enc)).toBe(false);
    expect(a.ciphertext.equals(b.ciphertext)).toBe(false);
    expect(hpkeOpen(alice.privateKey, a.enc, info, aad, a.ciphertext).equals(message)).toBe(true);
    expect(hpkeOpen(alice.privateKey, b.enc, info, aad, b.ciphertext).equals(message)).toBe(true);
  });

  it('round-trips empty plaintext, aad and info', () => {
    const empty = Buffer.alloc(0);
    const s = hpkeSeal(alice.publicKey, empty, empty, empty);
    expect(hpkeOpen(alice.privateKey, s.enc, empty, empty, s.ciphertext).length).toBe(0);
  });

  describe('refuses with DecryptFailed', () => {
    const sealed = hpkeSeal(alice.publicKey, info, aad, message);
    const open = (over: Partial<{ sk: Buffer; enc: Buffer; info: Buffer; aad: Buffer; ct: Buffer }>) => () =>
      hpkeOpen(
        over.sk ?? alice.privateKey,
        over.enc ?? sealed.enc,
        over.info ?? info,
        over.aad ?? aad,
        over.ct ?? sealed.ciphertext,
      );

    it('the untouched envelope opens (so the refusals below are about the change)', () => {
      expect(open({})().equals(message)).toBe(true);
    });
    it('the wrong recipient key', () => expectCode(open({ sk: mallory.privateKey }), 'DecryptFailed'));
    it('another info', () => expectCode(open({ info: flipBit(info, 0) }), 'DecryptFailed'));
    it('another aad', () => expectCode(open({ aad: flipBit(aad, aad.length - 1) }), 'DecryptFailed'));
    it('no aad', () => expectCode(open({ aad: Buffer.alloc(0) }), 'DecryptFailed'));
    it('any flipped bit of the ciphertext or tag', () => {
      for (let i = 0; i < sealed.ciphertext.length; i++) {
        expectCode(open({ ct: flipBit(sealed.ciphertext, i, i % 8) }), 'DecryptFailed');
      }
    });
    it('a truncated or extended ciphertext', () => {
      for (const ct of [
        Buffer.alloc(0),
        sealed.ciphertext.subarray(0, 15),
        sealed.ciphertext.subarray(0, sealed.ciphertext.length - 1),
        Buffer.concat([sealed.ciphertext, Buffer.alloc(1)]),
      ]) {
        expectCode(open({ ct }), 'DecryptFailed');
      }
    });
    it('any flipped bit of enc (even the top one X25519 ignores: enc is in the KEM context)', () => {
      for (let i = 0; i < HPKE_ENC_BYTES * 8; i++) {
        expectCode(open({ enc: flipBit(sealed.enc, i >> 3, i & 7) }), 'DecryptFailed');
      }
    });
    it('a small-order enc (RFC 9180 §7.1.4: the all-zero DH value)', () => {
      // u = 0, u = 1 and a point of order 8 (RFC 7748 §7's list of small-order points).
      for (const point of [
        '0000000000000000000000000000000000000000000000000000000000000000',
        '0100000000000000000000000000000000000000000000000000000000000000',
        'e0eb7a7c3b41b8ae1656e3faf19fc46ada098deb9c32b1fd866205165f49b800',
      ]) {
        const e = cryptoErrorOf(open({ enc: hex(point) }));
        expect(e.code).toBe('DecryptFailed');
        expect(e.message).toMatch(/small order/);
      }
    });
  });

  it('refuses to seal to a small-order recipient key (BadKey)', () => {
    expectCode(() => hpkeSeal(Buffer.alloc(32), info, aad, message), 'BadKey');
    expectCode(() => setupBaseS(hex('01'.padEnd(64, '0')), info), 'BadKey');
  });

  describe('bounds input sizes', () => {
    const sealed = hpkeSeal(alice.publicKey, info, aad, message);
    it('enc must be 32 bytes (BadInput)', () => {
      for (const n of [0, 31, 33, 64]) {
        expectCode(
          () => hpkeOpen(alice.privateKey, randomBytes(n), info, aad, sealed.ciphertext),
          'BadInput',
        );
      }
    });
    it('keys must be 32 bytes (BadKey)', () => {
      for (const n of [0, 31, 33, 48]) {
        expectCode(() => hpkeOpen(randomBytes(n), sealed.enc, info, aad, sealed.ciphertext), 'BadKey');
        expectCode(() => hpkeSeal(randomBytes(n), info, aad, message), 'BadKey');
        expectCode(() => x25519PublicKeyOf(randomBytes(n)), 'BadKey');
      }
    });
    it('keys and enc must be bytes at all', () => {
      const notBytes = 'a'.repeat(32) as unknown as Uint8Array;
      expectCode(() => hpkeSeal(notBytes, info, aad, message), 'BadKey');
      expectCode(() => hpkeOpen(notBytes, sealed.enc, info, aad, sealed.ciphertext), 'BadKey');
      expectCode(() => hpkeOpen(alice.privateKey, notBytes, info, aad, sealed.ciphertext), 'BadInput');
    });
    it('info is bounded (BadInput)', () => {
      const big = Buffer.alloc(HPKE_MAX_INFO_BYTES + 1);
      expectCode(() => hpkeSeal(alice.publicKey, big, aad, message), 'BadInput');
      expectCode(() => hpkeOpen(alice.privateKey, sealed.enc, big, aad, sealed.ciphertext), 'BadInput');
      // The bound itself is allowed.
      const atBound = Buffer.alloc(HPKE_MAX_INFO_BYTES);
      const s = hpkeSeal(alice.publicKey, atBound, aad, message);
      expect(hpkeOpen(alice.privateKey, s.enc, atBound, aad, s.ciphertext).equals(message)).toBe(true);
    });
    it('export lengths are 1-8160 bytes (BadInput)', () => {
      const context = setupBaseS(alice.publicKey, info);
      for (const n of [0, -1, 1.5, HPKE_MAX_EXPORT_BYTES + 1]) {
        expectCode(() => context.export(Buffer.alloc(0), n), 'BadInput');
      }
      expect(context.export(Buffer.alloc(0), HPKE_MAX_EXPORT_BYTES).length).toBe(HPKE_MAX_EXPORT_BYTES);
    });
    it('DeriveKeyPair wants at least 32 bytes of input (BadInput)', () => {
      expectCode(() => deriveX25519KeyPair(Buffer.alloc(31)), 'BadInput');
    });
  });

  it('an erased context refuses every further use (BadKey)', () => {
    const sender = setupBaseS(alice.publicKey, info);
    const recipient = setupBaseR(sender.enc, alice.privateKey, info);
    const ct = sender.seal(aad, message);
    sender.erase();
    recipient.erase();
    expectCode(() => sender.seal(aad, message), 'BadKey');
    expectCode(() => sender.export(Buffer.alloc(0), 32), 'BadKey');
    expectCode(() => recipient.open(aad, ct), 'BadKey');
  });

  it('keeps the injection path out of the public index', () => {
    const names = Object.keys(cryptoIndex);
    expect(names).toContain('hpkeSeal');
    expect(names.filter((n) => /ForTesting$/.test(n))).toEqual([]);
  });
});

describe('properties', () => {
  const recipient = generatePrekeyPair();

  it('seal then open returns the plaintext for any plaintext, aad and info', () => {
    fc.assert(
      fc.property(
        fc.uint8Array({ maxLength: 2048 }),
        fc.uint8Array({ maxLength: 256 }),
        fc.uint8Array({ maxLength: 256 }),
        (plaintext, aad, info) => {
          const { enc, ciphertext } = hpkeSeal(recipient.publicKey, info, aad, plaintext);
          expect(
            hpkeOpen(recipient.privateKey, enc, info, aad, ciphertext).equals(Buffer.from(plaintext)),
          ).toBe(true);
        },
      ),
      { numRuns: 100 },
    );
  });

  it('arbitrary enc and ciphertext bytes only ever fail as a CryptoError', () => {
    fc.assert(
      fc.property(
        fc.uint8Array({ minLength: 0, maxLength: 40 }),
        fc.uint8Array({ maxLength: 80 }),
        (enc, ciphertext) => {
          const e = cryptoErrorOf(() =>
            hpkeOpen(recipient.privateKey, enc, Buffer.alloc(0), Buffer.alloc(0), ciphertext),
          );
          expect(['DecryptFailed', 'BadInput']).toContain(e.code);
        },
      ),
      { numRuns: 200 },
    );
  });
});
