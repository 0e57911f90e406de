/**
 * HPKE (RFC 9180) in base mode for exactly one suite: DHKEM(X25519, HKDF-SHA256), HKDF-SHA256,
 * AES-256-GCM (0x0020, 0x0001, 0x0002), the one DESIGN.md §10.8 seals prekey envelopes with.
 *
 * Written over Node's own X25519, HMAC-SHA256 and AES-GCM rather than @hpke/core: that library's
 * WebCrypto X25519 does ~1,200 seals/s on Node 20, Node's diffieHellman ~38,000/s (TOOLCHAIN.md).
 * Being our own code, it has to earn trust from the RFC's published test vectors, which
 * test/unit/crypto-hpke.test.ts replays for every field and every sequence number. No PSK or auth
 * modes and no other suite: what is not here cannot be misconfigured.
 */
import { createHmac, createPublicKey, generateKeyPairSync, type KeyObject } from 'node:crypto';
import { CryptoError } from './errors.js';
import { aesGcmDecrypt, aesGcmEncrypt } from './primitives.js';
import {
  X25519_KEY_BYTES,
  dh,
  privateKeyFromRaw,
  publicKeyFromRaw,
  rawPublicKey,
  requireBytes,
  x25519PublicKeyOf,
  type PrekeyPair,
} from './x25519.js';

export { X25519_KEY_BYTES, generatePrekeyPair, x25519PublicKeyOf, type PrekeyPair } from './x25519.js';

export const HPKE_MODE_BASE = 0x00;
export const HPKE_KEM_ID = 0x0020;
export const HPKE_KDF_ID = 0x0001;
export const HPKE_AEAD_ID = 0x0002;
/** `enc` is the sender's ephemeral X25519 public key, raw. */
export const HPKE_ENC_BYTES = X25519_KEY_BYTES;
/**
 * Bounds on caller-chosen context strings. RFC 9180 §7.2.1 lets an implementation cap them; ours
 * are small protocol labels, and a cap keeps a hostile length from reaching the KDF at all.
 */
export const HPKE_MAX_INFO_BYTES = 64 * 1024;
export const HPKE_MAX_EXPORTER_CONTEXT_BYTES = 64 * 1024;
/** HKDF-Expand's own limit, 255 blocks of SHA-256. */
export const HPKE_MAX_EXPORT_BYTES = 255 * 32;

const N_SECRET = 32;
const N_H = 32;
const N_K = 32;
const N_N = 12;
const EMPTY = Buffer.alloc(0);
const VERSION_LABEL = Buffer.from('HPKE-v1');

function u16(n: number): Buffer {
  const b = Buffer.alloc(2);
  b.writeUInt16BE(n);
  return b;
}

// The KEM's own derivations and the key schedule's are domain-separated by different suite ids.
const KEM_SUITE_ID = Buffer.concat([Buffer.from('KEM'), u16(HPKE_KEM_ID)]);
const HPKE_SUITE_ID = Buffer.concat([
  Buffer.from('HPKE'),
  u16(HPKE_KEM_ID),
  u16(HPKE_KDF_ID),
  u16(HPKE_AEAD_ID),
]);

/** RFC 9180 §4: HKDF-Extract over "HPKE-v1" || suite_id || label || ikm. */
function labeledExtract(suiteId: Buffer, salt: Uint8Array, label: string, ikm: Uint8Array): Buffer {
  // HMAC with an empty key equals HMAC with HashLen zero bytes, HKDF's default salt.
  return createHmac('sha256', salt).update(VERSION_LABEL).update(suiteId).update(label).update(ikm).digest();
}

/** HKDF-Expand (RFC 5869 §2.3). Node's hkdfSync always extracts first; the exporter needs Expand alone. */
function hkdfExpand(prk: Uint8Array, info: Uint8Array, length: number): Buffer {
  const blocks: Buffer[] = [];
  let previous = EMPTY;
  for (let i = 1, have = 0; have < length; i++) {
    previous = createHmac('sha256', prk).update(previous).update(info).update(Uint8Array.of(i)).digest();
    blocks.push(previous);
    have += previous.length;
  }
  const okm = Buffer.concat(blocks);
  const out = Buffer.from(okm.subarray(0, length));
  okm.fill(0);
  return out;
}

/** Only for tests: the Expand above, checked against Node's hkdfSync. Not in crypto/index.ts. */
export const hkdfExpandForTesting = hkdfExpand;

/** RFC 9180 §4: HKDF-Expand with info = I2OSP(L, 2) || "HPKE-v1" || suite_id || label || info. */
function labeledExpand(
  suiteId: Buffer,
  prk: Uint8Array,
  label: string,
  info: Uint8Array,
  length: number,
): Buffer {
  return hkdfExpand(
    prk,
    Buffer.concat([u16(length), VERSION_LABEL, suiteId, Buffer.from(label), info]),
    length,
  );
}

/** DHKEM's ExtractAndExpand (RFC 9180 §4.1). */
function extractAndExpand(dhValue: Buffer, kemContext: Buffer): Buffer {
  const eaePrk = labeledExtract(KEM_SUITE_ID, EMPTY, 'eae_prk', dhValue);
  try {
    return labeledExpand(KEM_SUITE_ID, eaePrk, 'shared_secret', kemContext, N_SECRET);
  } finally {
    eaePrk.fill(0);
  }
}

interface Encapsulated {
  sharedSecret: Buffer;
  enc: Buffer;
}

function encap(recipientPublicRaw: Uint8Array, ephemeral?: KeyObject): Encapsulated {
  const pkR = publicKeyFromRaw(recipientPublicRaw, 'the recipient public key', 'BadKey');
  const { privateKey: skE, publicKey } = ephemeral
    ? { privateKey: ephemeral, publicKey: createPublicKey(ephemeral) }
    : generateKeyPairSync('x25519');
  const enc = rawPublicKey(publicKey);
  const dhValue = dh(skE, pkR, 'BadKey');
  try {
    return { sharedSecret: extractAndExpand(dhValue, Buffer.concat([enc, recipientPublicRaw])), enc };
  } finally {
    dhValue.fill(0);
  }
}

function decap(enc: Uint8Array, recipientPrivateRaw: Uint8Array): Buffer {
  requireBytes('enc', enc, { exact: HPKE_ENC_BYTES }, 'BadInput');
  const skR = privateKeyFromRaw(recipientPrivateRaw);
  const pkE = publicKeyFromRaw(enc, 'enc', 'BadInput');
  const dhValue = dh(skR, pkE, 'DecryptFailed');
  try {
    return extractAndExpand(dhValue, Buffer.concat([enc, rawPublicKey(createPublicKey(skR))]));
  } finally {
    dhValue.fill(0);
  }
}

/** Every value of the key schedule, for the vectors' sake; contexts keep only key, nonce, exporter. */
export interface HpkeKeySchedule {
  sharedSecret: Buffer;
  keyScheduleContext: Buffer;
  secret: Buffer;
  key: Buffer;
  baseNonce: Buffer;
  exporterSecret: Buffer;
}

// Base mode has no PSK: psk and psk_id are empty, so psk_id_hash is a constant.
const PSK_ID_HASH = labeledExtract(HPKE_SUITE_ID, EMPTY, 'psk_id_hash', EMPTY);

function keySchedule(sharedSecret: Buffer, info: Uint8Array): HpkeKeySchedule {
  const infoHash = labeledExtract(HPKE_SUITE_ID, EMPTY, 'info_hash', info);
  const keyScheduleContext = Buffer.concat([Uint8Array.of(HPKE_MODE_BASE), PSK_ID_HASH, infoHash]);
  const secret = labeledExtract(HPKE_SUITE_ID, sharedSecret, 'secret', EMPTY);
  return {
    sharedSecret,
    keyScheduleContext,
    secret,
    key: labeledExpand(HPKE_SUITE_ID, secret, 'key', keyScheduleContext, N_K),
    baseNonce: labeledExpand(HPKE_SUITE_ID, secret, 'base_nonce', keyScheduleContext, N_N),
    exporterSecret: labeledExpand(HPKE_SUITE_ID, secret, 'exp', keyScheduleContext, N_H),
  };
}

/** What a context keeps: the AEAD key, its nonce base and counter, the exporter secret. */
class ContextState {
  #seq = 0;
  #erased = false;
  readonly #key: Buffer;
  readonly #baseNonce: Buffer;
  readonly #exporterSecret: Buffer;

  constructor(schedule: HpkeKeySchedule) {
    // Copies: the schedule's buffers belong to whoever asked for it (and are erased below).
    this.#key = Buffer.from(schedule.key);
    this.#baseNonce = Buffer.from(schedule.baseNonce);
    this.#exporterSecret = Buffer.from(schedule.exporterSecret);
  }

  get seq(): number {
    return this.#seq;
  }

  #usable(): void {
    // Zeroed keys would still "work", sealing under an all-zero key: refuse instead.
    if (this.#erased) throw new CryptoError('BadKey', 'this HPKE context has been erased');
  }

  /** base_nonce XOR I2OSP(seq, Nn) (RFC 9180 §5.2). */
  nonce(): Buffer {
    this.#usable();
    // The RFC allows 2^96 - 1 messages; a JavaScript counter stays exact up to 2^53 - 1.
    if (this.#seq >= Number.MAX_SAFE_INTEGER) {
      throw new CryptoError('BadInput', 'HPKE context message limit reached');
    }
    const nonce = Buffer.from(this.#baseNonce);
    const seq = Buffer.alloc(8);
    seq.writeBigUInt64BE(BigInt(this.#seq));
    for (let i = 0; i < 8; i++) nonce[N_N - 8 + i] = (nonce[N_N - 8 + i] as number) ^ (seq[i] as number);
    return nonce;
  }

  get key(): Buffer {
    this.#usable();
    return this.#key;
  }

  increment(): void {
    this.#seq += 1;
  }

  export(exporterContext: Uint8Array, length: number): Buffer {
    this.#usable();
    requireBytes(
      'the exporter context',
      exporterContext,
      { max: HPKE_MAX_EXPORTER_CONTEXT_BYTES },
      'BadInput',
    );
    if (!Number.isInteger(length) || length < 1 || length > HPKE_MAX_EXPORT_BYTES) {
      throw new CryptoError('BadInput', `an export length must be 1-${HPKE_MAX_EXPORT_BYTES} bytes`);
    }
    return labeledExpand(HPKE_SUITE_ID, this.#exporterSecret, 'sec', exporterContext, length);
  }

  erase(): void {
    this.#erased = true;
    this.#key.fill(0);
    this.#baseNonce.fill(0);
    this.#exporterSecret.fill(0);
  }
}

function eraseSchedule(schedule: HpkeKeySchedule): void {
  for (const value of Object.values(schedule) as Buffer[]) value.fill(0);
}

/** The sender's side of one HPKE context: seals in order, sequence numbers 0, 1, 2, … */
export class HpkeSenderContext {
  readonly #state: ContextState;

  /** @internal Made by setupBaseS. */
  constructor(
    readonly enc: Buffer,
    schedule: HpkeKeySchedule,
  ) {
    this.#state = new ContextState(schedule);
  }

  get seq(): number {
    return this.#state.seq;
  }

  /** Ciphertext followed by the 16-byte tag, at the current sequence number. */
  seal(aad: Uint8Array, plaintext: Uint8Array): Buffer {
    const { ciphertext } = aesGcmEncrypt(this.#state.key, plaintext, aad, this.#state.nonce());
    this.#state.increment();
    return ciphertext;
  }

  export(exporterContext: Uint8Array, length: number): Buffer {
    return this.#state.export(exporterContext, length);
  }

  /** Zeroes the key material; any later use throws CryptoError('BadKey'). */
  erase(): void {
    this.#state.erase();
  }
}

/** The recipient's side: opens in the sender's order; a failed open does not advance it. */
export class HpkeRecipientContext {
  readonly #state: ContextState;

  /** @internal Made by setupBaseR. */
  constructor(schedule: HpkeKeySchedule) {
    this.#state = new ContextState(schedule);
  }

  get seq(): number {
    return this.#state.seq;
  }

  /** Throws CryptoError('DecryptFailed') on any wrong key, enc, info, aad or tampered byte. */
  open(aad: Uint8Array, ciphertext: Uint8Array): Buffer {
    const nonce = this.#state.nonce();
    const plaintext = aesGcmDecrypt(this.#state.key, nonce, ciphertext, aad);
    this.#state.increment();
    return plaintext;
  }

  export(exporterContext: Uint8Array, length: number): Buffer {
    return this.#state.export(exporterContext, length);
  }

  erase(): void {
    this.#state.erase();
  }
}

/** RFC 9180 §7.1.3 DeriveKeyPair for X25519: a key pair from at least 32 bytes of secret input. */
export function deriveX25519KeyPair(ikm: Uint8Array): PrekeyPair {
  requireBytes(
    'the key derivation input',
    ikm,
    { min: X25519_KEY_BYTES, max: HPKE_MAX_INFO_BYTES },
    'BadInput',
  );
  const dkpPrk = labeledExtract(KEM_SUITE_ID, EMPTY, 'dkp_prk', ikm);
  const privateKey = labeledExpand(KEM_SUITE_ID, dkpPrk, 'sk', EMPTY, X25519_KEY_BYTES);
  dkpPrk.fill(0);
  return { publicKey: x25519PublicKeyOf(privateKey), privateKey };
}

function senderSetup(
  recipientPublicRaw: Uint8Array,
  info: Uint8Array,
  ephemeral: KeyObject | undefined,
): { context: HpkeSenderContext; schedule: HpkeKeySchedule } {
  requireBytes('info', info, { max: HPKE_MAX_INFO_BYTES }, 'BadInput');
  const { sharedSecret, enc } = encap(recipientPublicRaw, ephemeral);
  const schedule = keySchedule(sharedSecret, info);
  return { context: new HpkeSenderContext(enc, schedule), schedule };
}

function recipientSetup(
  enc: Uint8Array,
  recipientPrivateRaw: Uint8Array,
  info: Uint8Array,
): { context: HpkeRecipientContext; schedule: HpkeKeySchedule } {
  requireBytes('info', info, { max: HPKE_MAX_INFO_BYTES }, 'BadInput');
  const schedule = keySchedule(decap(enc, recipientPrivateRaw), info);
  return { context: new HpkeRecipientContext(schedule), schedule };
}

/** SetupBaseS (RFC 9180 §5.1.1) with a fresh ephemeral key: `enc` goes to the recipient with the ciphertexts. */
export function setupBaseS(recipientPublicRaw: Uint8Array, info: Uint8Array): HpkeSenderContext {
  const { context, schedule } = senderSetup(recipientPublicRaw, info, undefined);
  eraseSchedule(schedule);
  return context;
}

/** SetupBaseR (RFC 9180 §5.1.1). A small-order `enc` fails as DecryptFailed, like any wrong input. */
export function setupBaseR(
  enc: Uint8Array,
  recipientPrivateRaw: Uint8Array,
  info: Uint8Array,
): HpkeRecipientContext {
  const { context, schedule } = recipientSetup(enc, recipientPrivateRaw, info);
  eraseSchedule(schedule);
  return context;
}

export interface HpkeSealed {
  /** The 32-byte encapsulated key (the sender's ephemeral public key). */
  enc: Buffer;
  /** Ciphertext followed by the 16-byte GCM tag. */
  ciphertext: Buffer;
}

/** Single-shot seal (RFC 9180 §6.1): one message at sequence number 0. */
export function hpkeSeal(
  recipientPublicRaw: Uint8Array,
  info: Uint8Array,
  aad: Uint8Array,
  plaintext: Uint8Array,
): HpkeSealed {
  const context = setupBaseS(recipientPublicRaw, info);
  try {
    return { enc: context.enc, ciphertext: context.seal(aad, plaintext) };
  } finally {
    context.erase();
  }
}

/** Single-shot open: the plaintext, or CryptoError('DecryptFailed' | 'BadInput' | 'BadKey'). */
export function hpkeOpen(
  recipientPrivateRaw: Uint8Array,
  enc: Uint8Array,
  info: Uint8Array,
  aad: Uint8Array,
  ciphertext: Uint8Array,
): Buffer {
  const context = setupBaseR(enc, recipientPrivateRaw, info);
  try {
    return context.open(aad, ciphertext);
  } finally {
    context.erase();
  }
}

/**
 * Only for tests (the RFC vectors): SetupBaseS with a chosen ephemeral private key, and every
 * key-schedule value. A fixed ephemeral key makes every seal to a recipient share one key and
 * nonce: never call this outside a test. Deliberately not exported from crypto/index.ts.
 */
export function setupBaseSWithEphemeralForTesting(
  recipientPublicRaw: Uint8Array,
  info: Uint8Array,
  ephemeralPrivateRaw: Uint8Array,
): { context: HpkeSenderContext; schedule: HpkeKeySchedule } {
  return senderSetup(recipientPublicRaw, info, privateKeyFromRaw(ephemeralPrivateRaw));
}

/** Only for tests: SetupBaseR that also returns every key-schedule value. Not in crypto/index.ts. */
export function setupBaseRForTesting(
  enc: Uint8Array,
  recipientPrivateRaw: Uint8Array,
  info: Uint8Array,
): { context: HpkeRecipientContext; schedule: HpkeKeySchedule } {
  return recipientSetup(enc, recipientPrivateRaw, info);
}
