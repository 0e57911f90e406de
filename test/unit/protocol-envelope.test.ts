import { constants, createPrivateKey, randomBytes, verify, type KeyObject } from 'node:crypto';
import fc from 'fast-check';
import { beforeAll, describe, expect, it } from 'vitest';
import { signPss, signPssAsync } from '../../src-main/core/crypto/index.js';
import {
  createGroupCa,
  fingerprintOf,
  issueCertificate,
  type Credential,
} from '../../src-main/core/pki/index.js';
import {
  ERROR_CODES,
  MESSAGE_TYPES,
  PROTOCOL_VERSION,
  ProtocolError,
  SIGNATURE_LABEL,
  attachSignature,
  buildUnsigned,
  decodeBody,
  encodeJsonBody,
  openMessage,
  readHeader,
  sealMessage,
  sealMessageAsync,
  type BodyOf,
  type EnvelopeHeader,
  type MessageType,
  type ProtocolErrorCode,
  type SenderRef,
} from '../../src-main/core/protocol/index.js';

// ---- arbitraries for valid bodies of every message type ----

const nameArb = fc.stringMatching(/^[A-Za-z0-9._-]{1,64}$/);
const bytesArb = (min: number, max: number): fc.Arbitrary<Buffer> =>
  fc.uint8Array({ minLength: min, maxLength: max }).map((u) => Buffer.from(u));
const fpHexArb = bytesArb(32, 32).map((b) => b.toString('hex'));
const epochArb = fc.maxSafeNat().map((n) => Math.max(1, n));
const counterArb = fc.maxSafeNat();
const membersArb = fc.array(nameArb, { minLength: 2, maxLength: 6 });
/** Printable text (no control characters) of minLength..maxLength UTF-16 units. */
const textArb = (minLength: number, maxLength: number): fc.Arbitrary<string> =>
  fc
    .string({ minLength, maxLength, unit: 'binary' })
    .filter((s) => s.length <= maxLength && !/\p{Cc}/u.test(s));

const BODY_ARBS: { [T in MessageType]: fc.Arbitrary<BodyOf<T>> } = {
  HELLO: fc.record({
    challenge: bytesArb(32, 32),
    relay: nameArb,
    maxFrameBytes: fc.integer({ min: 1024, max: 64 * 1024 * 1024 }),
  }),
  CONNECTION: fc.record({ challenge: bytesArb(32, 32), relayFingerprint: fpHexArb }),
  PRESENCE: fc.record({
    sessions: fc.array(bytesArb(16, 16), { minLength: 1, maxLength: 4 }),
    version: counterArb,
    members: fc.array(fc.record({ name: nameArb, fingerprint: fpHexArb }), { maxLength: 5 }),
  }),
  CERT_REQUEST: fc.record({ names: fc.array(nameArb, { minLength: 1, maxLength: 5 }) }),
  CERT_RESPONSE: fc.record({
    session: bytesArb(32, 32),
    certificates: fc.array(fc.record({ name: nameArb, certificate: bytesArb(1, 900) }), { maxLength: 3 }),
    unknown: fc.array(nameArb, { maxLength: 3 }),
  }),
  NONCE_REQUEST: fc.record({
    epoch: epochArb,
    membershipVersion: counterArb,
    rosterVersion: counterArb,
    members: membersArb,
    challenge: bytesArb(1, 1024),
  }),
  NONCE_RESPONSE: fc.record({ epoch: epochArb, sealed: bytesArb(1, 1024) }),
  KEY_DISTRIBUTION: fc.record({
    epoch: epochArb,
    wrappedKey: bytesArb(1, 512),
    iv: bytesArb(12, 12),
    ciphertext: bytesArb(16, 2000),
  }),
  ENCRYPTED_TEXT: fc.record({
    epoch: epochArb,
    seq: epochArb,
    iv: bytesArb(12, 12),
    ciphertext: bytesArb(16, 2000),
  }),
  DISCONNECT: fc.record({ reason: fc.string({ maxLength: 100, unit: 'binary' }) }),
  ERROR: fc.record({
    session: bytesArb(32, 32),
    code: fc.constantFrom(...ERROR_CODES),
    message: fc.string({ maxLength: 250, unit: 'binary' }), // <= 500 UTF-16 units
    fatal: fc.boolean(),
  }),
  REKEY_REQUEST: fc.record({
    minEpoch: epochArb,
    reason: fc.constantFrom('requested' as const, 'stale-epoch' as const, 'key-missing' as const),
  }),
  HEARTBEAT: fc.record({ session: bytesArb(32, 32) }),
  ROSTER: fc.record({
    groupId: fpHexArb,
    name: textArb(1, 64),
    version: epochArb,
    issuedAt: counterArb,
    members: fc.array(fc.record({ name: nameArb, certificate: bytesArb(1, 900) }), { maxLength: 3 }),
    relays: fc.array(fc.record({ name: nameArb, certificate: bytesArb(1, 900) }), {
      minLength: 1,
      maxLength: 2,
    }),
    removed: fc.array(
      fc.record({ name: nameArb, fingerprint: fpHexArb, removedAt: counterArb, reason: textArb(0, 200) }),
      { maxLength: 3 },
    ),
  }),
  SYNC: fc.record(
    {
      streamId: fc.oneof(
        fc.constant(''),
        bytesArb(16, 16).map((b) => b.toString('hex')),
      ),
      afterOffset: counterArb,
      ownBroadcasts: fc.boolean(),
    },
    { requiredKeys: ['streamId', 'afterOffset'] },
  ),
  GAP: fc.record({
    session: bytesArb(32, 32),
    streamId: bytesArb(16, 16).map((b) => b.toString('hex')),
    reason: fc.constantFrom('lost-log' as const, 'retention' as const, 'ahead' as const),
    firstOffset: counterArb,
    lastOffset: counterArb,
  }),
  PREKEY: fc.record({ prekey: prekeyArb() }),
  PREKEYS: fc.record({ session: bytesArb(32, 32), prekeys: fc.array(prekeyArb(), { maxLength: 4 }) }),
};

function prekeyArb(): fc.Arbitrary<BodyOf<'PREKEY'>['prekey']> {
  return fc.record({
    member: nameArb,
    serial: epochArb,
    publicKey: bytesArb(32, 32),
    notBefore: counterArb,
    notAfter: counterArb,
    signature: bytesArb(0, 512),
  });
}

const ALL_TYPES = Object.keys(MESSAGE_TYPES) as MessageType[];

// ---- fixtures ----

let ca: Credential;
let alice: Credential;
let aliceKey: KeyObject;
let mallory: Credential;
let malloryKey: KeyObject;
let byFingerprint: Map<string, KeyObject>;

const sign = (data: Buffer): Buffer => signPss(aliceKey, data);
const certSender = (): SenderRef => ({ kind: 'certificate', der: alice.certificate.der });
const fpSender = (): SenderRef => ({ kind: 'fingerprint', fingerprint: alice.certificate.fingerprint });

/** How a receiver resolves senders: only certificates it has validated, by fingerprint. */
function resolveKnown(header: EnvelopeHeader): KeyObject {
  const fp =
    header.sender.kind === 'certificate' ? fingerprintOf(header.sender.der) : header.sender.fingerprint;
  const key = byFingerprint.get(fp.toString('hex'));
  if (!key) throw new ProtocolError('UnknownSender', 'sender is not a known member');
  return key;
}
/** A receiver that already knows who must have sent the frame (e.g. the relay, on one connection). */
const resolveAlice = (): KeyObject => alice.certificate.publicKey;

beforeAll(() => {
  ca = createGroupCa();
  alice = issueCertificate(ca, { name: 'alice', role: 'member' });
  mallory = issueCertificate(ca, { name: 'mallory', role: 'member' });
  aliceKey = createPrivateKey(alice.privateKeyPem);
  malloryKey = createPrivateKey(mallory.privateKeyPem);
  byFingerprint = new Map([
    [alice.certificate.fingerprintHex, alice.certificate.publicKey],
    [mallory.certificate.fingerprintHex, mallory.certificate.publicKey],
  ]);
});

/** Runs fn and returns the ProtocolError it throws; fails on success or any other exception. */
function protocolErrorOf(fn: () => unknown): ProtocolError {
  let thrown: unknown;
  try {
    fn();
  } catch (err) {
    thrown = err;
  }
  if (thrown === undefined) throw new Error('expected a ProtocolError, the call succeeded');
  if (!(thrown instanceof ProtocolError)) throw thrown;
  return thrown;
}

describe('envelope layout', () => {
  it('writes the documented header and reads it back', () => {
    const body = { epoch: 3, sealed: Buffer.alloc(256, 9) };
    const env = sealMessage('NONCE_RESPONSE', fpSender(), 'bob', body, sign);
    expect(env[0]).toBe(PROTOCOL_VERSION);
    expect(env[1]).toBe(MESSAGE_TYPES.NONCE_RESPONSE);
    expect(env[2]).toBe(2); // sender = fingerprint
    expect(env.readUInt16BE(3)).toBe(32);
    expect(env[5 + 32]).toBe(3); // target length
    expect(env.toString('latin1', 38, 41)).toBe('bob');
    const h = readHeader(env);
    expect(h.type).toBe('NONCE_RESPONSE');
    expect(h.target).toBe('bob');
    expect(h.sender).toEqual(fpSender());
    expect(h.signature.length).toBe(256);
    expect(h.body.equals(encodeJsonBody(body))).toBe(true);
    expect(h.signed.equals(env.subarray(0, env.length - 2 - 256))).toBe(true);
    expect(decodeBody('NONCE_RESPONSE', h.body)).toEqual(body);
  });

  it('signs the domain label followed by every byte before the signature', () => {
    const env = sealMessage('DISCONNECT', certSender(), '', { reason: 'bye' }, sign);
    const h = readHeader(env);
    const pss = {
      key: alice.certificate.publicKey,
      padding: constants.RSA_PKCS1_PSS_PADDING,
      saltLength: 32,
    };
    expect(verify('sha256', Buffer.concat([SIGNATURE_LABEL, h.signed]), pss, h.signature)).toBe(true);
    // Without the label the same signature is worthless: no cross-protocol reuse.
    expect(verify('sha256', h.signed, pss, h.signature)).toBe(false);
  });

  it('refuses to build a frame for an invalid target', () => {
    expect(
      protocolErrorOf(() => buildUnsigned('DISCONNECT', fpSender(), 'bad name', { reason: '' })).code,
    ).toBe('BadFrame');
  });

  it('async sealing produces an envelope that opens', async () => {
    const env = await sealMessageAsync(
      'REKEY_REQUEST',
      fpSender(),
      'bob',
      { minEpoch: 2, reason: 'requested' },
      (d) => signPssAsync(aliceKey, d),
    );
    expect(openMessage(env, resolveKnown).body).toEqual({ minEpoch: 2, reason: 'requested' });
  });
});

describe('sealMessage / openMessage round trip', () => {
  it.each(ALL_TYPES)('round-trips %s bodies (property)', (type) => {
    fc.assert(
      fc.property(
        BODY_ARBS[type],
        fc.boolean(),
        fc.option(nameArb, { nil: undefined }),
        (body, full, target) => {
          const sender = full ? certSender() : fpSender();
          const env = sealMessage(type, sender, target ?? '', body as BodyOf<typeof type>, sign);
          const msg = openMessage(env, resolveKnown);
          expect(msg.type).toBe(type);
          expect(msg.header.target).toBe(target ?? '');
          expect(msg.header.sender.kind).toBe(sender.kind);
          expect(msg.body).toEqual(body);
        },
      ),
      { numRuns: 15 },
    );
  });

  it('round-trips every body through the JSON codec without RSA (property, many runs)', () => {
    for (const type of ALL_TYPES) {
      fc.assert(
        fc.property(BODY_ARBS[type], (body) => {
          expect(decodeBody(type, encodeJsonBody(body))).toEqual(body);
        }),
        { numRuns: 150 },
      );
    }
  });
});

describe('signature checks', () => {
  it('rejects a frame signed by someone else than the named sender', () => {
    const env = sealMessage('DISCONNECT', fpSender(), '', { reason: 'x' }, (d) => signPss(malloryKey, d));
    expect(protocolErrorOf(() => openMessage(env, resolveKnown)).code).toBe('BadSignature');
  });

  it('binds the target: a relay cannot redirect a signed frame to another member', () => {
    const body = { epoch: 1, sealed: Buffer.alloc(256, 1) };
    const toBob = sealMessage('NONCE_RESPONSE', fpSender(), 'bob', body, sign);
    const sig = readHeader(toBob).signature;
    const toCarol = attachSignature(buildUnsigned('NONCE_RESPONSE', fpSender(), 'carl', body), sig);
    expect(protocolErrorOf(() => openMessage(toCarol, resolveKnown)).code).toBe('BadSignature');
    const toEveryone = attachSignature(buildUnsigned('NONCE_RESPONSE', fpSender(), '', body), sig);
    expect(protocolErrorOf(() => openMessage(toEveryone, resolveKnown)).code).toBe('BadSignature');
  });

  it('binds the type: the same body and signature under another type fail', () => {
    const body = { reason: 'x' };
    const env = sealMessage('DISCONNECT', fpSender(), '', body, sign);
    const swapped = Buffer.from(env);
    swapped[1] = MESSAGE_TYPES.ERROR;
    expect(protocolErrorOf(() => openMessage(swapped, resolveKnown)).code).toBe('BadSignature');
  });

  it('verifies before parsing: a garbage body with a bad signature is BadSignature, with a good one SchemaViolation', () => {
    const unsigned = buildUnsigned('ENCRYPTED_TEXT', fpSender(), '', Buffer.from('{not json'));
    const forged = attachSignature(unsigned, Buffer.alloc(256, 1));
    expect(protocolErrorOf(() => openMessage(forged, resolveKnown)).code).toBe('BadSignature');
    const signed = attachSignature(unsigned, sign(Buffer.concat([SIGNATURE_LABEL, unsigned])));
    expect(protocolErrorOf(() => openMessage(signed, resolveKnown)).code).toBe('SchemaViolation');
  });

  it('passes the key resolver’s errors through unchanged', () => {
    const env = sealMessage('DISCONNECT', fpSender(), '', { reason: 'x' }, sign);
    const err = protocolErrorOf(() =>
      openMessage(env, () => {
        throw new ProtocolError('UnknownSender', 'nobody');
      }),
    );
    expect(err.code).toBe('UnknownSender');
  });
});

describe('tampering with a signed envelope', () => {
  // One envelope per sender kind, each with a target and a body, signed once.
  const ALLOWED_FIXED_KEY: ProtocolErrorCode[] = [
    'BadSignature',
    'BadFrame',
    'UnknownType',
    'UnsupportedVersion',
  ];
  const ALLOWED_LOOKUP: ProtocolErrorCode[] = [...ALLOWED_FIXED_KEY, 'UnknownSender'];
  let envelopes: Buffer[];

  beforeAll(() => {
    envelopes = [
      sealMessage(
        'CONNECTION',
        certSender(),
        'relay',
        { challenge: randomBytes(32), relayFingerprint: alice.certificate.fingerprintHex },
        sign,
      ),
      sealMessage(
        'ENCRYPTED_TEXT',
        fpSender(),
        'bob',
        { epoch: 7, seq: 42, iv: randomBytes(12), ciphertext: randomBytes(64) },
        sign,
      ),
    ];
    for (const env of envelopes) expect(openMessage(env, resolveKnown).header.signature.length).toBe(256);
  });

  it('flipping every bit pattern of every single byte never opens (exhaustive over positions)', () => {
    for (const env of envelopes) {
      for (let i = 0; i < env.length; i++) {
        const bad = Buffer.from(env);
        bad[i] = (bad[i] as number) ^ 0xff;
        const a = protocolErrorOf(() => openMessage(bad, resolveAlice));
        expect(ALLOWED_FIXED_KEY, `byte ${i}: ${a.code}`).toContain(a.code);
        const b = protocolErrorOf(() => openMessage(bad, resolveKnown));
        expect(ALLOWED_LOOKUP, `byte ${i}: ${b.code}`).toContain(b.code);
      }
    }
  });

  it('any non-zero XOR mask on any byte never opens (property)', () => {
    fc.assert(
      fc.property(
        fc.nat({ max: envelopes.length - 1 }),
        fc.nat(),
        fc.integer({ min: 1, max: 255 }),
        (which, pos, mask) => {
          const env = envelopes[which] as Buffer;
          const bad = Buffer.from(env);
          const i = pos % env.length;
          bad[i] = (bad[i] as number) ^ mask;
          const err = protocolErrorOf(() => openMessage(bad, resolveKnown));
          expect(ALLOWED_LOOKUP).toContain(err.code);
        },
      ),
      { numRuns: 200 },
    );
  });

  it('truncating or extending a signed envelope never opens', () => {
    for (const env of envelopes) {
      for (const len of [0, 1, 5, 10, 40, env.length - 257, env.length - 1]) {
        const err = protocolErrorOf(() => openMessage(env.subarray(0, len), resolveAlice));
        expect(['BadFrame', 'BadSignature']).toContain(err.code);
      }
      const longer = Buffer.concat([env, Buffer.of(0)]);
      expect(protocolErrorOf(() => openMessage(longer, resolveAlice)).code).toBe('BadFrame');
    }
  });
});

describe('arbitrary input', () => {
  const inputArb = fc.oneof(
    fc.uint8Array({ maxLength: 600 }),
    // Start like a real envelope so the fuzzer reaches the length checks behind the first bytes.
    fc
      .tuple(
        fc.constantFrom(1, 1, 1, 0, 2),
        fc.integer({ min: 0, max: 14 }),
        fc.constantFrom(1, 2, 0, 3),
        fc.uint8Array({ maxLength: 600 }),
      )
      .map(([v, t, k, rest]) => Uint8Array.from([v, t, k, ...rest])),
    fc
      .tuple(
        fc.nat({ max: 100 }),
        fc.nat({ max: 70 }),
        fc.nat({ max: 300 }),
        fc.nat({ max: 300 }),
        fc.nat({ max: 2000 }),
      )
      .map(([senderLen, targetLen, bodyLen, sigLen, seed]) => {
        const b = Buffer.alloc(5 + senderLen + 1 + targetLen + 4 + bodyLen + 2 + sigLen, seed % 256);
        b[0] = 1;
        b[1] = 1 + (seed % 12);
        b[2] = senderLen === 32 ? 2 : 1;
        b.writeUInt16BE(senderLen, 3);
        b[5 + senderLen] = targetLen;
        b.fill(0x61, 6 + senderLen, 6 + senderLen + targetLen);
        b.writeUInt32BE(bodyLen, 6 + senderLen + targetLen);
        b.writeUInt16BE(sigLen, 10 + senderLen + targetLen + bodyLen);
        return new Uint8Array(b);
      }),
  );

  it('readHeader throws only ProtocolError (property)', () => {
    fc.assert(
      fc.property(inputArb, (bytes) => {
        try {
          const h = readHeader(Buffer.from(bytes));
          expect(h.signed.length + 2 + h.signature.length).toBe(bytes.length);
        } catch (err) {
          if (!(err instanceof ProtocolError)) throw err;
          expect(err.fatal).toBe(false);
        }
      }),
      { numRuns: 3000 },
    );
  });

  it('openMessage throws only ProtocolError and never opens noise (property)', () => {
    fc.assert(
      fc.property(inputArb, fc.boolean(), (bytes, lookup) => {
        const err = protocolErrorOf(() =>
          openMessage(Buffer.from(bytes), lookup ? resolveKnown : resolveAlice),
        );
        expect(err.fatal).toBe(false);
      }),
      { numRuns: 1000 },
    );
  });

  it('decodeBody throws only ProtocolError(SchemaViolation) for arbitrary JSON and bytes (property)', () => {
    fc.assert(
      fc.property(
        fc.constantFrom(...ALL_TYPES),
        fc.oneof(
          fc.jsonValue().map((v) => Buffer.from(JSON.stringify(v) ?? 'null')),
          fc.uint8Array({ maxLength: 200 }).map((u) => Buffer.from(u)),
        ),
        (type, body) => {
          try {
            decodeBody(type, body);
          } catch (err) {
            if (!(err instanceof ProtocolError)) throw err;
            expect(err.code).toBe('SchemaViolation');
          }
        },
      ),
      { numRuns: 2000 },
    );
  });
});
