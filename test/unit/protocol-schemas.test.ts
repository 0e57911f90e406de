import { describe, expect, it } from 'vitest';
import {
  BODY_SCHEMAS,
  ChatPlaintextSchema,
  KeyMaterialSchema,
  LIMITS,
  ProtocolError,
  decodeBody,
  decodeJsonBody,
  type MessageType,
} from '../../src-main/core/protocol/index.js';

const b64 = (n: number, fill = 1): string => Buffer.alloc(n, fill).toString('base64');
const hex64 = 'ab'.repeat(32);

const PREKEY_WIRE = {
  member: 'alice',
  serial: 3,
  publicKey: b64(32, 7),
  notBefore: 1_700_000_000_000,
  notAfter: 1_700_600_000_000,
  signature: b64(256, 9),
};

/** A valid wire (JSON) body for each type, as a plain object to mutate in tests. */
const VALID: Record<MessageType, Record<string, unknown>> = {
  HELLO: { challenge: b64(32), relay: 'relay', maxFrameBytes: 1048576 },
  CONNECTION: { challenge: b64(32), relayFingerprint: hex64 },
  PRESENCE: { sessions: [b64(16, 5)], version: 3, members: [{ name: 'alice', fingerprint: hex64 }] },
  CERT_REQUEST: { names: ['alice', 'bob'] },
  CERT_RESPONSE: {
    session: b64(32, 5),
    certificates: [{ name: 'alice', certificate: b64(700) }],
    unknown: ['zed'],
  },
  NONCE_REQUEST: {
    epoch: 1,
    membershipVersion: 0,
    rosterVersion: 1,
    members: ['alice', 'bob'],
    challenge: b64(256),
  },
  NONCE_RESPONSE: { epoch: 1, sealed: b64(256) },
  KEY_DISTRIBUTION: { epoch: 2, wrappedKey: b64(256), iv: b64(12), ciphertext: b64(300) },
  ENCRYPTED_TEXT: { epoch: 2, seq: 1, iv: b64(12), ciphertext: b64(40) },
  DISCONNECT: { reason: 'bye' },
  ERROR: { session: b64(32, 5), code: 'RateLimited', message: 'slow down', fatal: false },
  REKEY_REQUEST: { minEpoch: 4, reason: 'stale-epoch' },
  HEARTBEAT: { session: b64(32, 5) },
  ROSTER: {
    groupId: hex64,
    name: 'Équipe Zoë 日本',
    version: 2,
    issuedAt: 1_700_000_000_000,
    members: [{ name: 'alice', certificate: b64(700) }],
    relays: [{ name: 'relay', certificate: b64(700, 2) }],
    removed: [{ name: 'carol', fingerprint: hex64, removedAt: 1_700_000_000_000, reason: 'lost laptop' }],
  },
  SYNC: { streamId: 'cd'.repeat(16), afterOffset: 120 },
  GAP: {
    session: b64(32, 5),
    streamId: 'cd'.repeat(16),
    reason: 'retention',
    firstOffset: 500,
    lastOffset: 900,
  },
  PREKEY: { prekey: PREKEY_WIRE },
  PREKEYS: { session: b64(32, 5), prekeys: [PREKEY_WIRE] },
};
const TYPES = Object.keys(VALID) as MessageType[];

function decode(type: MessageType, value: unknown): unknown {
  return decodeBody(type, Buffer.from(JSON.stringify(value)));
}

function rejects(type: MessageType, value: unknown): ProtocolError {
  try {
    decode(type, value);
  } catch (err) {
    expect(err).toBeInstanceOf(ProtocolError);
    expect((err as ProtocolError).code).toBe('SchemaViolation');
    expect((err as ProtocolError).fatal).toBe(false);
    return err as ProtocolError;
  }
  throw new Error(`${type} accepted ${JSON.stringify(value).slice(0, 200)}`);
}

const withField = (type: MessageType, field: string, value: unknown): Record<string, unknown> => ({
  ...VALID[type],
  [field]: value,
});

describe('body schemas', () => {
  it.each(TYPES)('accept a valid %s body and decode byte fields to Buffers', (type) => {
    const body = decode(type, VALID[type]) as Record<string, unknown>;
    for (const [k, v] of Object.entries(VALID[type])) {
      if (typeof v === 'string' && ['challenge', 'sealed', 'wrappedKey', 'iv', 'ciphertext'].includes(k)) {
        expect(Buffer.isBuffer(body[k])).toBe(true);
        expect((body[k] as Buffer).toString('base64')).toBe(v);
      }
    }
  });

  it.each(TYPES)('reject unknown fields in %s', (type) => {
    rejects(type, withField(type, 'extra', 1));
    rejects(type, withField(type, 'constructor', {}));
  });

  it('rejects a __proto__ key instead of merging it', () => {
    const raw = `{"reason":"x","__proto__":{"polluted":true}}`;
    expect(() => decodeBody('DISCONNECT', Buffer.from(raw))).toThrow(ProtocolError);
    expect(({} as Record<string, unknown>).polluted).toBeUndefined();
  });

  it('rejects unknown fields in nested objects', () => {
    rejects('PRESENCE', { version: 1, members: [{ name: 'a', fingerprint: hex64, admin: true }] });
    rejects('CERT_RESPONSE', { certificates: [{ name: 'a', certificate: b64(5), chain: [] }], unknown: [] });
  });

  it.each(TYPES)('reject %s bodies with a missing field', (type) => {
    for (const field of Object.keys(VALID[type])) {
      rejects(type, Object.fromEntries(Object.entries(VALID[type]).filter(([k]) => k !== field)));
    }
  });

  it('rejects bodies that are not UTF-8 JSON objects', () => {
    for (const raw of [
      Buffer.alloc(0),
      Buffer.from('null'),
      Buffer.from('[]'),
      Buffer.from('"x"'),
      Buffer.from('{'),
    ]) {
      expect(() => decodeBody('DISCONNECT', raw)).toThrow(ProtocolError);
    }
    // Invalid UTF-8 (a lone continuation byte) must not be silently replaced.
    const bad = Buffer.concat([Buffer.from('{"reason":"'), Buffer.of(0x80), Buffer.from('"}')]);
    expect(() => decodeBody('DISCONNECT', bad)).toThrow(/UTF-8 JSON/);
  });

  it('rejects oversize arrays', () => {
    const names = Array.from({ length: LIMITS.members + 1 }, (_, i) => `m${i}`);
    rejects('CERT_REQUEST', { names });
    rejects('NONCE_REQUEST', { ...VALID.NONCE_REQUEST, members: names });
    rejects('CERT_RESPONSE', { certificates: [], unknown: names });
    rejects('PRESENCE', { version: 1, members: names.map((name) => ({ name, fingerprint: hex64 })) });
    expect(() => decode('CERT_REQUEST', { names: names.slice(0, LIMITS.members) })).not.toThrow();
  });

  it('rejects arrays below their minimum', () => {
    rejects('CERT_REQUEST', { names: [] });
    rejects('NONCE_REQUEST', { ...VALID.NONCE_REQUEST, members: ['alice'] });
  });

  it('rejects oversize strings', () => {
    rejects('DISCONNECT', { reason: 'x'.repeat(LIMITS.reasonChars + 1) });
    expect(() => decode('DISCONNECT', { reason: 'x'.repeat(LIMITS.reasonChars) })).not.toThrow();
    rejects('ERROR', { ...VALID.ERROR, message: 'x'.repeat(LIMITS.errorMessageChars + 1) });
    rejects('CERT_REQUEST', { names: ['x'.repeat(65)] });
  });

  it('rejects invalid identity names and fingerprints', () => {
    for (const name of ['', 'a b', 'a/b', 'zoë', 'x'.repeat(65)]) rejects('CERT_REQUEST', { names: [name] });
    rejects('HELLO', { ...VALID.HELLO, relay: 'relay\n' });
    rejects('CONNECTION', { ...VALID.CONNECTION, relayFingerprint: hex64.toUpperCase() });
    rejects('CONNECTION', { ...VALID.CONNECTION, relayFingerprint: hex64.slice(2) });
    rejects('CONNECTION', { ...VALID.CONNECTION, relayFingerprint: 'AB:'.repeat(32) });
  });

  it('rejects wrong byte lengths', () => {
    rejects('HELLO', { ...VALID.HELLO, challenge: b64(31) });
    rejects('HELLO', { ...VALID.HELLO, challenge: b64(33) });
    rejects('CONNECTION', { ...VALID.CONNECTION, challenge: b64(0) });
    rejects('ENCRYPTED_TEXT', { ...VALID.ENCRYPTED_TEXT, iv: b64(11) });
    rejects('ENCRYPTED_TEXT', { ...VALID.ENCRYPTED_TEXT, iv: b64(13) });
    rejects('ENCRYPTED_TEXT', { ...VALID.ENCRYPTED_TEXT, ciphertext: b64(15) }); // shorter than a tag
    rejects('NONCE_RESPONSE', { ...VALID.NONCE_RESPONSE, sealed: '' });
    rejects('CERT_RESPONSE', { certificates: [{ name: 'a', certificate: '' }], unknown: [] });
  });

  it('enforces byte maxima exactly, not just to the next base64 group', () => {
    const max = LIMITS.rsaBlockBytes;
    expect(() => decode('NONCE_RESPONSE', { epoch: 1, sealed: b64(max) })).not.toThrow();
    rejects('NONCE_RESPONSE', { epoch: 1, sealed: b64(max + 1) });
    rejects('NONCE_RESPONSE', { epoch: 1, sealed: b64(max + 2) });
    rejects('NONCE_RESPONSE', { epoch: 1, sealed: b64(max + 3) });
    rejects('CERT_RESPONSE', {
      certificates: [{ name: 'a', certificate: b64(LIMITS.certificateBytes + 1) }],
      unknown: [],
    });
  });

  it('rejects non-canonical base64', () => {
    const canonical = b64(32); // 44 chars, one '=' of padding
    expect(canonical.endsWith('=')).toBe(true);
    // Non-zero padding bits: decodes to the same bytes, but is a second encoding of them.
    const lastChar = canonical[42] as string;
    const alphabet = 'ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/';
    const sibling = alphabet[alphabet.indexOf(lastChar) + 1] as string;
    const padBits = canonical.slice(0, 42) + sibling + '=';
    expect(Buffer.from(padBits, 'base64').equals(Buffer.alloc(32, 1))).toBe(true);
    for (const s of [
      padBits,
      canonical.slice(0, 43), // missing padding
      canonical.slice(0, 20) + '\n' + canonical.slice(20),
      ' ' + canonical,
      canonical.replace(/A/g, '-'), // URL-safe alphabet
      canonical + '=',
      '====',
    ]) {
      rejects('CONNECTION', { ...VALID.CONNECTION, challenge: s });
    }
  });

  it('rejects numbers out of range or of the wrong kind', () => {
    for (const epoch of [0, -1, 1.5, '1', null, 2 ** 53]) {
      rejects('ENCRYPTED_TEXT', { ...VALID.ENCRYPTED_TEXT, epoch });
    }
    // JSON.parse turns an overflowing literal into Infinity.
    const huge = JSON.stringify({ ...VALID.ENCRYPTED_TEXT, epoch: 1 }).replace('"epoch":1', '"epoch":1e400');
    expect(() => decodeBody('ENCRYPTED_TEXT', Buffer.from(huge))).toThrow(ProtocolError);
    rejects('ENCRYPTED_TEXT', { ...VALID.ENCRYPTED_TEXT, seq: 0 });
    rejects('PRESENCE', { ...VALID.PRESENCE, version: -1 });
    rejects('HELLO', { ...VALID.HELLO, maxFrameBytes: 1023 });
    rejects('HELLO', { ...VALID.HELLO, maxFrameBytes: 64 * 1024 * 1024 + 1 });
  });

  it('rejects values outside the enums and wrong primitive types', () => {
    rejects('ERROR', { ...VALID.ERROR, code: 'Whatever' });
    rejects('ERROR', { ...VALID.ERROR, fatal: 'false' });
    rejects('REKEY_REQUEST', { ...VALID.REKEY_REQUEST, reason: 'because' });
    rejects('DISCONNECT', { reason: 5 });
    rejects('CERT_REQUEST', { names: 'alice' });
  });

  it('names the offending field in the error', () => {
    const err = rejects('ENCRYPTED_TEXT', { ...VALID.ENCRYPTED_TEXT, iv: b64(11) });
    expect(err.message).toMatch(/ENCRYPTED_TEXT body rejected at iv/);
  });

  it('covers every message type', () => {
    expect(new Set(Object.keys(BODY_SCHEMAS))).toEqual(new Set(TYPES));
  });
});

describe('payload schemas inside encrypted bodies', () => {
  const material = {
    groupId: hex64,
    epoch: 1,
    initiator: 'alice',
    rosterVersion: 3,
    members: ['alice', 'bob', 'carol'],
    contributors: ['alice', 'bob'],
    nonces: [b64(32), b64(32, 2)],
  };
  const decodeWith = (schema: typeof KeyMaterialSchema | typeof ChatPlaintextSchema, v: unknown): unknown =>
    decodeJsonBody(schema, Buffer.from(JSON.stringify(v)), 'payload');

  it('accepts valid key material and chat plaintext', () => {
    const m = decodeWith(KeyMaterialSchema, material) as { nonces: Buffer[] };
    expect(m.nonces.every((n) => Buffer.isBuffer(n) && n.length === 32)).toBe(true);
    // A member alone online: one member, one contributor, one nonce (v2).
    const alone = { ...material, members: ['alice'], contributors: ['alice'], nonces: [b64(32)] };
    expect(() => decodeWith(KeyMaterialSchema, alone)).not.toThrow();
    expect(decodeWith(ChatPlaintextSchema, { text: 'hi', sentAt: 1 })).toEqual({ text: 'hi', sentAt: 1 });
  });

  it('rejects malformed key material and chat plaintext', () => {
    for (const bad of [
      { ...material, nonces: [] },
      { ...material, nonces: [b64(32), b64(31)] },
      { ...material, members: [] },
      { ...material, contributors: [] },
      { ...material, rosterVersion: -1 },
      {
        groupId: hex64,
        epoch: 1,
        initiator: 'alice',
        members: ['alice', 'bob'],
        nonces: [b64(32), b64(32, 2)],
      },
      { ...material, groupId: 'x' },
      { ...material, extra: true },
    ]) {
      expect(() => decodeWith(KeyMaterialSchema, bad)).toThrow(ProtocolError);
    }
    for (const bad of [
      { text: '', sentAt: 1 },
      { text: 'x'.repeat(LIMITS.textChars + 1), sentAt: 1 },
      { text: 'x' },
    ]) {
      expect(() => decodeWith(ChatPlaintextSchema, bad)).toThrow(ProtocolError);
    }
  });
});
