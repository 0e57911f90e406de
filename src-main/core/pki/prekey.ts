/**
 * Signed X25519 prekeys (DESIGN.md §10.8): each member publishes a short-lived X25519 key, signed
 * with its certificate's RSA key, and envelopes are sealed to it with HPKE. The RSA key stays for
 * identity only, so stealing a bundle later opens nothing whose prekey has been erased.
 *
 * This module is the prekey itself: its canonical signed bytes, its checks, its wire form, and the
 * two clock rules (when to rotate, when the old private key may go). Whether the certificate is
 * one the group CA issued is the caller's CertificateValidator's job, as for every other frame.
 */
import { X25519_KEY_BYTES, generatePrekeyPair } from '../crypto/hpke.js';
import { verifyPss } from '../crypto/primitives.js';
import { SignedPrekeySchema } from '../protocol/schemas.js';
import type { Certificate } from './certificate.js';
import { isValidIdentityName } from './identity-name.js';

export type PrekeyErrorCode =
  /** A field out of shape: name, key or signature size, serial or times not sane integers. */
  | 'PrekeyMalformed'
  /** The signature does not verify with the certificate's key. */
  | 'PrekeySignature'
  /** The prekey names another member than the certificate it is checked against. */
  | 'PrekeyIdentity'
  /** `now` is at or past notAfter. */
  | 'PrekeyExpired'
  /** `now` is before notBefore. */
  | 'PrekeyNotYetValid'
  /** An older serial than one already accepted for this member: prekeys never go back. */
  | 'PrekeyRollback'
  /** The serial already accepted, with another key or validity: two prekeys signed under one serial. */
  | 'PrekeyConflict';

/** A typed prekey failure with a message a person can act on; `cause` keeps the underlying error. */
export class PrekeyError extends Error {
  override readonly name = 'PrekeyError';
  constructor(
    readonly code: PrekeyErrorCode,
    message: string,
    options?: { cause?: unknown },
  ) {
    super(message, options);
  }
}

const DAY_MS = 24 * 60 * 60 * 1000;
/** DESIGN.md §10.8: a new prekey every 7 days by default. */
export const DEFAULT_PREKEY_ROTATION_MS = 7 * DAY_MS;
/**
 * A new prekey stays valid for two rotation periods: once its successor is due it is still good
 * for a week, so a sender holding the older one (a member back from a few days offline) can
 * still seal to it while it learns of the new one.
 */
export const DEFAULT_PREKEY_LIFETIME_MS = 2 * DEFAULT_PREKEY_ROTATION_MS;

/** Prefix of the signed bytes: a prekey signature can be nothing else the member's key signs. */
export const PREKEY_SIGNATURE_DOMAIN = Buffer.from('securechat-x prekey v1\0', 'utf8');

export interface Prekey {
  /** The member's identity name, the CN of its certificate. */
  member: string;
  /** Monotonic per member, from 1: a higher serial replaces every lower one. */
  serial: number;
  /** Raw 32-byte X25519 public key. */
  publicKey: Buffer;
  /** ms since the epoch; valid for notBefore <= now < notAfter. */
  notBefore: number;
  notAfter: number;
}

export interface SignedPrekey extends Prekey {
  /** RSA-PSS (SHA-256) over prekeySigningBytes(), by the member's certificate key. */
  signature: Buffer;
}

/** What signs a prekey: the member's LocalIdentity (whose private key never leaves it) fits. */
export interface PrekeySigner {
  sign(data: Uint8Array): Buffer;
}

const isTime = (t: unknown): t is number => typeof t === 'number' && Number.isSafeInteger(t) && t >= 0;

/** The shape checks signing and verification share; throws PrekeyMalformed. */
function checkShape(prekey: Prekey): void {
  const fail = (what: string): never => {
    throw new PrekeyError('PrekeyMalformed', `malformed prekey: ${what}`);
  };
  if (typeof prekey.member !== 'string' || !isValidIdentityName(prekey.member)) {
    fail('the member is not a valid identity name');
  }
  if (typeof prekey.serial !== 'number' || !Number.isSafeInteger(prekey.serial) || prekey.serial < 1) {
    fail('the serial must be a whole number from 1');
  }
  if (!(prekey.publicKey instanceof Uint8Array) || prekey.publicKey.length !== X25519_KEY_BYTES) {
    fail(`the public key must be ${X25519_KEY_BYTES} bytes`);
  }
  if (!isTime(prekey.notBefore) || !isTime(prekey.notAfter)) fail('notBefore and notAfter must be ms times');
  if (prekey.notAfter <= prekey.notBefore) fail('notAfter must come after notBefore');
}

function u64(n: number): Buffer {
  const b = Buffer.alloc(8);
  b.writeBigUInt64BE(BigInt(n));
  return b;
}

/**
 * The bytes a prekey's signature covers: domain || len(member) || member || serial || notBefore ||
 * notAfter || publicKey, integers as 64-bit big-endian. Every field is fixed-size or
 * length-prefixed, so no two prekeys share an encoding.
 */
export function prekeySigningBytes(prekey: Prekey): Buffer {
  checkShape(prekey);
  const member = Buffer.from(prekey.member, 'utf8');
  return Buffer.concat([
    PREKEY_SIGNATURE_DOMAIN,
    Uint8Array.of(member.length),
    member,
    u64(prekey.serial),
    u64(prekey.notBefore),
    u64(prekey.notAfter),
    prekey.publicKey,
  ]);
}

export function signPrekey(prekey: Prekey, signer: PrekeySigner): SignedPrekey {
  const signature = signer.sign(prekeySigningBytes(prekey));
  return { ...prekey, publicKey: Buffer.from(prekey.publicKey), signature };
}

export interface NewPrekey {
  prekey: Prekey;
  /** Raw X25519 private key: keep it until prekeyErasable() says it may go, then fill(0). */
  privateKey: Buffer;
}

/** A fresh key pair as the member's next prekey, valid from `now` for `lifetimeMs`. */
export function createPrekey(
  member: string,
  serial: number,
  now: number,
  lifetimeMs: number = DEFAULT_PREKEY_LIFETIME_MS,
): NewPrekey {
  const { publicKey, privateKey } = generatePrekeyPair();
  const prekey = { member, serial, publicKey, notBefore: now, notAfter: now + lifetimeMs };
  try {
    checkShape(prekey);
  } catch (err) {
    privateKey.fill(0);
    throw err;
  }
  return { prekey, privateKey };
}

export interface VerifyPrekeyOptions {
  /** The newest prekey already accepted for this member, if any: guards against rollback. */
  previous?: Prekey;
}

/**
 * Accepts a signed prekey for `certificate`'s member at time `now` (ms), or throws a PrekeyError.
 * The certificate itself must already have been validated against the group CA.
 */
export function verifyPrekey(
  signed: SignedPrekey,
  certificate: Certificate,
  now: number,
  options: VerifyPrekeyOptions = {},
): void {
  const signedBytes = prekeySigningBytes(signed);
  const modulusBytes = Math.ceil(certificate.keyBits / 8);
  if (!(signed.signature instanceof Uint8Array) || signed.signature.length !== modulusBytes) {
    throw new PrekeyError(
      'PrekeyMalformed',
      `malformed prekey: the signature must be ${modulusBytes} bytes for this certificate`,
    );
  }
  if (signed.member !== certificate.name) {
    throw new PrekeyError(
      'PrekeyIdentity',
      `the prekey is for "${signed.member}" but the certificate is "${certificate.name}"`,
    );
  }
  if (!verifyPss(certificate.publicKey, signedBytes, signed.signature)) {
    throw new PrekeyError(
      'PrekeySignature',
      `the prekey's signature does not verify for "${certificate.name}"`,
    );
  }
  const previous = options.previous;
  if (previous) {
    if (previous.member !== signed.member) {
      throw new PrekeyError(
        'PrekeyIdentity',
        `the previous prekey is for "${previous.member}", not "${signed.member}"`,
      );
    }
    if (signed.serial < previous.serial) {
      throw new PrekeyError(
        'PrekeyRollback',
        `prekey serial ${signed.serial} of "${signed.member}" is older than ${previous.serial}, already accepted`,
      );
    }
    if (
      signed.serial === previous.serial &&
      !(
        Buffer.from(signed.publicKey).equals(Buffer.from(previous.publicKey)) &&
        signed.notBefore === previous.notBefore &&
        signed.notAfter === previous.notAfter
      )
    ) {
      throw new PrekeyError(
        'PrekeyConflict',
        `"${signed.member}" signed two different prekeys with serial ${signed.serial}`,
      );
    }
  }
  if (now < signed.notBefore) {
    throw new PrekeyError(
      'PrekeyNotYetValid',
      `the prekey of "${signed.member}" is valid from ${new Date(signed.notBefore).toISOString()}`,
    );
  }
  if (now >= signed.notAfter) {
    throw new PrekeyError(
      'PrekeyExpired',
      `the prekey of "${signed.member}" expired at ${new Date(signed.notAfter).toISOString()}`,
    );
  }
}

export interface SignedPrekeyWire {
  member: string;
  serial: number;
  publicKey: string;
  notBefore: number;
  notAfter: number;
  signature: string;
}

export function prekeyToWire(signed: SignedPrekey): SignedPrekeyWire {
  return {
    member: signed.member,
    serial: signed.serial,
    publicKey: Buffer.from(signed.publicKey).toString('base64'),
    notBefore: signed.notBefore,
    notAfter: signed.notAfter,
    signature: Buffer.from(signed.signature).toString('base64'),
  };
}

/** Parses the wire form; anything off-schema is PrekeyMalformed. Verification is still to come. */
export function prekeyFromWire(raw: unknown): SignedPrekey {
  const result = SignedPrekeySchema.safeParse(raw);
  if (!result.success) {
    const issue = result.error.issues[0];
    const where = issue?.path.length ? ` at ${issue.path.join('.')}` : '';
    throw new PrekeyError('PrekeyMalformed', `malformed prekey${where}: ${issue?.message ?? 'invalid'}`, {
      cause: result.error,
    });
  }
  return result.data;
}

function requirePeriod(what: string, ms: number): void {
  if (!Number.isSafeInteger(ms) || ms < 0) throw new RangeError(`${what} must be a whole number of ms >= 0`);
}

/**
 * Whether the member should publish a new prekey: one rotation period after the current one
 * became valid, or at its expiry if that comes first (a prekey made with a short lifetime).
 */
export function prekeyRotationDue(
  current: Prekey,
  now: number,
  rotationMs: number = DEFAULT_PREKEY_ROTATION_MS,
): boolean {
  requirePeriod('rotationMs', rotationMs);
  return now >= Math.min(current.notBefore + rotationMs, current.notAfter);
}

export interface PrekeyErasure {
  /** When senders started sealing to the successor (it was published), if it has been. */
  successorInUseSince?: number;
  /** How long the relay keeps a frame (its log's max age): an envelope sealed earlier is gone after it. */
  retentionMs: number;
}

/**
 * Whether a retired private prekey may be erased: only once its successor is in use and the
 * relay's retention window has passed since, so no stored envelope sealed to the old key is
 * still deliverable. Before that, erasing it would lose messages a member has not fetched yet.
 */
export function prekeyErasable(erasure: PrekeyErasure, now: number): boolean {
  requirePeriod('retentionMs', erasure.retentionMs);
  if (erasure.successorInUseSince === undefined) return false;
  return now >= erasure.successorInUseSince + erasure.retentionMs;
}
