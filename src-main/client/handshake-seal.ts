/**
 * How the key-establishment secrets travel (DESIGN.md §10.8, docs/protocol.md "Sealing"): the
 * NONCE_REQUEST challenge, the NONCE_RESPONSE (echo ‖ nonce) and the KEY_DISTRIBUTION key material
 * are sealed with HPKE (RFC 9180 base mode, DHKEM(X25519, HKDF-SHA256), HKDF-SHA256, AES-256-GCM)
 * to the receiver's current signed prekey, so that erasing the private prekey later makes the
 * recorded frame unreadable even to whoever steals the receiver's bundle and password.
 *
 * Binding: `info` = L(hpke label, G, e, from, to, serial) and AAD = exactly the label / AAD the
 * RSA-OAEP path binds (group, epoch, initiator and target), so a sealed secret opens only in its own
 * group, epoch, direction and pair of members, and only under the prekey serial it names.
 *
 * Fallback: a receiver without a valid prekey this member holds (it has never published one, it
 * expired, or its client keeps no prekey store) is sealed to with RSA-OAEP to its certificate, as
 * before. That frame has no forward secrecy: docs/security.md says so.
 */
import type { KeyObject } from 'node:crypto';
import { sealEnvelope } from '../core/crypto/digital-envelope.js';
import { hpkeOpen, hpkeSeal } from '../core/crypto/hpke.js';
import { oaepEncrypt } from '../core/crypto/primitives.js';
import type { Certificate } from '../core/pki/certificate.js';
import type { LocalIdentity } from '../core/pki/local-identity.js';
import type { SignedPrekey } from '../core/pki/prekey.js';
import type { BodyOf } from '../core/protocol/schemas.js';
import { joinLabel } from './key-schedule.js';

/** What the handshake needs of this member's prekeys and the others'. */
export interface PrekeyAccess {
  /** The prekey to seal to for this certificate's member now (verified, valid), if any. */
  sealTarget(certificate: Certificate): SignedPrekey | undefined;
  /** A copy of our private prekey of `serial` (the caller zeroes it), if still held. */
  privateKey(serial: number): Buffer | undefined;
}

export type SealKind = 'nonce-request' | 'nonce-response' | 'key-distribution';

const HPKE_LABELS: Record<SealKind, string> = {
  'nonce-request': 'SecureChat-X/v2 hpke nonce-request',
  'nonce-response': 'SecureChat-X/v2 hpke nonce-response',
  'key-distribution': 'SecureChat-X/v2 hpke key-distribution',
};

/** Which prekey a secret was sealed to, and HPKE's encapsulated key. */
export interface HpkeTag {
  serial: number;
  enc: Buffer;
}

/** Where a secret goes: `from` seals it for `to` (group G, epoch e). */
export interface SealContext {
  kind: SealKind;
  groupId: string;
  epoch: number;
  from: string;
  to: string;
  /** The OAEP label / GCM AAD of the RSA path: the same binding, reused as HPKE's AAD. */
  aad: Buffer;
}

export function hpkeInfo(c: SealContext, serial: number): Buffer {
  return joinLabel(HPKE_LABELS[c.kind], c.groupId, c.epoch, c.from, c.to, serial);
}

/** A short secret (challenge, echo ‖ nonce): HPKE to the prekey, else RSA-OAEP to the certificate. */
export function sealSecret(
  c: SealContext,
  certificate: Certificate,
  prekey: SignedPrekey | undefined,
  plaintext: Buffer,
): { sealed: Buffer; hpke?: HpkeTag } {
  if (!prekey) return { sealed: oaepEncrypt(certificate.publicKey, plaintext, c.aad) };
  const { enc, ciphertext } = hpkeSeal(prekey.publicKey, hpkeInfo(c, prekey.serial), c.aad, plaintext);
  return { sealed: ciphertext, hpke: { serial: prekey.serial, enc } };
}

/** Opens what sealSecret made for us; throws (the caller reports "does not decrypt"). */
export function openSecret(
  c: SealContext,
  identity: LocalIdentity,
  prekeys: PrekeyAccess | undefined,
  sealed: Buffer,
  hpke: HpkeTag | undefined,
): Buffer {
  if (!hpke) return identity.decrypt(sealed, c.aad);
  const privateKey = prekeys?.privateKey(hpke.serial);
  if (!privateKey) throw new Error(`prekey ${hpke.serial} is not held (never ours, or erased)`);
  try {
    return hpkeOpen(privateKey, hpke.enc, hpkeInfo(c, hpke.serial), c.aad, sealed);
  } finally {
    privateKey.fill(0);
  }
}

type KeyDistributionSeal = Omit<BodyOf<'KEY_DISTRIBUTION'>, 'epoch'>;

/** The key material for one member: HPKE to its prekey, else the RSA-OAEP digital envelope. */
export function sealKeyMaterial(
  c: SealContext,
  recipient: { publicKey: KeyObject },
  prekey: SignedPrekey | undefined,
  plaintext: Buffer,
): KeyDistributionSeal {
  if (!prekey) return sealEnvelope(recipient.publicKey, plaintext, c.aad);
  const { enc, ciphertext } = hpkeSeal(prekey.publicKey, hpkeInfo(c, prekey.serial), c.aad, plaintext);
  return { ciphertext, hpke: { serial: prekey.serial, enc } };
}

export function openKeyMaterial(
  c: SealContext,
  identity: LocalIdentity,
  prekeys: PrekeyAccess | undefined,
  body: BodyOf<'KEY_DISTRIBUTION'>,
): Buffer {
  if (body.hpke) return openSecret(c, identity, prekeys, body.ciphertext, body.hpke);
  if (!body.wrappedKey || !body.iv) throw new Error('neither an HPKE nor an RSA-OAEP envelope');
  return identity.openEnvelope(
    { wrappedKey: body.wrappedKey, iv: body.iv, ciphertext: body.ciphertext },
    c.aad,
  );
}
