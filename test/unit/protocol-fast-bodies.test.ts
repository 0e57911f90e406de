/**
 * The fast paths of src-main/core/protocol/fast-bodies.ts never accept what the schema refuses, and
 * return what the schema returns when they accept: random bodies, valid and broken, through both.
 */
import fc from 'fast-check';
import { describe, expect, it } from 'vitest';
import { fastChatPlaintext, fastEncryptedText } from '../../src-main/core/protocol/fast-bodies.js';
import { BODY_SCHEMAS, ChatPlaintextSchema, LIMITS } from '../../src-main/core/protocol/schemas.js';

const b64 = (n: number, fill = 7) => Buffer.alloc(n, fill).toString('base64');

/** Strings that are base64 of various lengths, or almost: padding bits, alphabet, whitespace. */
const base64ish = fc.oneof(
  fc.integer({ min: 0, max: 40 }).map((n) => b64(n)),
  fc.integer({ min: 1, max: 40 }).map((n) => b64(n).slice(0, -1)),
  fc.integer({ min: 1, max: 40 }).map((n) => ` ${b64(n)}`),
  fc.integer({ min: 3, max: 40 }).map((n) => b64(n).replace(/A/g, '-')),
  fc.constant(b64(32).slice(0, 42) + 'I='), // non-zero padding bits
  fc.constant(b64(LIMITS.chatCiphertextBytes)),
  fc.constant(b64(LIMITS.chatCiphertextBytes + 1)),
  fc.string({ maxLength: 24 }),
);
const number = fc.oneof(
  fc.integer({ min: -2, max: 5 }),
  fc.constantFrom(Number.MAX_SAFE_INTEGER, Number.MAX_SAFE_INTEGER + 1, 1.5, -0),
  fc.double(),
);
const value = fc.oneof(number, base64ish, fc.constant(null), fc.boolean(), fc.constant([]));

/** An object built from `keys` (some dropped, some extra), each field a valid value or any value. */
function objects(fields: Record<string, fc.Arbitrary<unknown>>): fc.Arbitrary<unknown> {
  const entries = Object.entries(fields).map(([k, valid]) =>
    fc.oneof({ weight: 4, arbitrary: valid }, { weight: 1, arbitrary: value }).map((v) => [k, v] as const),
  );
  return fc
    .tuple(
      fc.tuple(...entries),
      fc.array(fc.integer({ min: 0, max: 9 }), { minLength: entries.length, maxLength: entries.length }),
      fc.option(fc.constantFrom('extra', '__proto__', 'text')),
    )
    .map(([pairs, drop, extra]) => {
      const o: Record<string, unknown> = {};
      pairs.forEach(([k, v], i) => {
        if (drop[i] !== 0) o[k] = v; // about one field in ten is left out
      });
      if (extra !== null) Object.defineProperty(o, extra, { value: 1, enumerable: true });
      return JSON.parse(JSON.stringify(o)) as unknown;
    });
}

function agrees<T>(fast: (raw: unknown) => T | undefined, schema: { safeParse(raw: unknown): unknown }) {
  return (raw: unknown) => {
    const quick = fast(raw);
    const full = schema.safeParse(raw) as { success: boolean; data?: unknown };
    if (quick !== undefined) {
      expect(full.success, JSON.stringify(raw).slice(0, 200)).toBe(true);
      expect(quick).toEqual(full.data);
    }
    return full.success;
  };
}

describe('fast body checks', () => {
  it('ENCRYPTED_TEXT: accepts a subset of what the schema accepts, with the same value', () => {
    let accepted = 0;
    const check = agrees(fastEncryptedText, BODY_SCHEMAS.ENCRYPTED_TEXT);
    fc.assert(
      fc.property(
        objects({
          epoch: fc.integer({ min: 1, max: 1000 }),
          seq: fc.integer({ min: 1, max: 1000 }),
          iv: fc.constant(b64(12)),
          ciphertext: fc.integer({ min: 16, max: 300 }).map((n) => b64(n)),
        }),
        (raw) => {
          if (check(raw) && fastEncryptedText(raw) !== undefined) accepted++;
        },
      ),
      { numRuns: 2000 },
    );
    // The valid ones do take the fast path (else it would be pointless, and this test too weak).
    expect(accepted).toBeGreaterThan(20);
  });

  it('chat plaintext: accepts a subset of what the schema accepts, with the same value', () => {
    let accepted = 0;
    const check = agrees(fastChatPlaintext, ChatPlaintextSchema);
    fc.assert(
      fc.property(
        objects({
          text: fc.oneof(
            fc.string({ minLength: 0, maxLength: 30 }),
            fc.constant('x'.repeat(LIMITS.textChars + 1)),
          ),
          sentAt: fc.oneof(fc.integer({ min: 0, max: 2 ** 45 }), number),
        }),
        (raw) => {
          if (check(raw) && fastChatPlaintext(raw) !== undefined) accepted++;
        },
      ),
      { numRuns: 2000 },
    );
    expect(accepted).toBeGreaterThan(20);
  });

  it('leaves the refusals to the schema', () => {
    const ok = { epoch: 1, seq: 1, iv: b64(12), ciphertext: b64(16) };
    expect(fastEncryptedText(ok)).toEqual({
      epoch: 1,
      seq: 1,
      iv: Buffer.alloc(12, 7),
      ciphertext: Buffer.alloc(16, 7),
    });
    for (const bad of [
      { ...ok, extra: 1 },
      { ...ok, seq: 0 },
      { ...ok, epoch: 1.5 },
      { ...ok, iv: b64(11) },
      { ...ok, ciphertext: b64(15) },
      { ...ok, ciphertext: b64(16).slice(0, -1) },
      JSON.parse(
        '{"epoch":1,"seq":1,"iv":"BwcHBwcHBwcHBwcH","ciphertext":"BwcHBwcHBwcHBwcHBwcHBw==","__proto__":1}',
      ),
    ]) {
      expect(fastEncryptedText(bad), JSON.stringify(bad)).toBeUndefined();
      expect(BODY_SCHEMAS.ENCRYPTED_TEXT.safeParse(bad).success).toBe(false);
    }
    expect(fastChatPlaintext({ text: '', sentAt: 1 })).toBeUndefined();
    expect(fastChatPlaintext({ text: 'hi', sentAt: -1 })).toBeUndefined();
  });
});
