/**
 * The group key schedule of docs/protocol.md ("Group key establishment"), as pure functions so
 * every member, and the tests, derive exactly the same bytes from the same inputs.
 *
 * Encoding choices the spec leaves to the implementation (also written down in docs/client.md):
 * - `G` is the CA fingerprint as its 64-character lowercase hex string, UTF-8 encoded, wherever it
 *   appears (labels and salt).
 * - Inside `L(...)` an epoch is written in decimal: L joins UTF-8 strings. Outside L (salt, chat
 *   AAD) epochs and sequence numbers are u64 big-endian, as the spec says.
 */
import { createHash } from 'node:crypto';
import { hkdfSha256 } from '../core/crypto/primitives.js';

export const LABELS = {
  nonceRequest: 'SecureChat-X/v1 nonce-request',
  nonceResponse: 'SecureChat-X/v1 nonce-response',
  keyDistribution: 'SecureChat-X/v1 key-distribution',
  keySalt: 'SecureChat-X/v1 key-salt',
  groupKey: 'SecureChat-X/v1 group-key',
  safetyNumber: 'SecureChat-X/v1 safety-number',
  chat: 'SecureChat-X/v1 chat',
} as const;

export const NONCE_BYTES = 32;
export const GROUP_KEY_BYTES = 32;
const SAFETY_BYTES = 30;
const ZERO = Buffer.from([0]);

/** u64(n): 8-byte big-endian. */
export function u64(n: number): Buffer {
  if (!Number.isSafeInteger(n) || n < 0)
    throw new RangeError(`u64 needs a non-negative safe integer, got ${n}`);
  const out = Buffer.alloc(8);
  out.writeBigUInt64BE(BigInt(n));
  return out;
}

/** L(parts…): the parts joined with a zero byte, UTF-8. Numbers are written in decimal. */
export function joinLabel(...parts: (string | number)[]): Buffer {
  return Buffer.from(parts.map(String).join('\0'), 'utf8');
}

/** OAEP label of the challenge the initiator sends target `t`. */
export function nonceRequestLabel(groupId: string, epoch: number, initiator: string, target: string): Buffer {
  return joinLabel(LABELS.nonceRequest, groupId, epoch, initiator, target);
}

/** OAEP label of target `t`'s answer (echo ‖ own nonce) to the initiator. */
export function nonceResponseLabel(
  groupId: string,
  epoch: number,
  target: string,
  initiator: string,
): Buffer {
  return joinLabel(LABELS.nonceResponse, groupId, epoch, target, initiator);
}

/** OAEP label and GCM associated data of the KEY_DISTRIBUTION envelope to `target`. */
export function keyDistributionAad(
  groupId: string,
  epoch: number,
  initiator: string,
  target: string,
): Buffer {
  return joinLabel(LABELS.keyDistribution, groupId, epoch, initiator, target);
}

/** salt = SHA-256("…key-salt" ‖ 0 ‖ G ‖ 0 ‖ u64(e) ‖ fp(M[0]) ‖ … ‖ fp(M[k])). */
export function keySalt(groupId: string, epoch: number, fingerprints: readonly Uint8Array[]): Buffer {
  const hash = createHash('sha256');
  hash.update(LABELS.keySalt, 'utf8');
  hash.update(ZERO);
  hash.update(groupId, 'utf8');
  hash.update(ZERO);
  hash.update(u64(epoch));
  for (const fp of fingerprints) {
    if (fp.length !== 32) throw new RangeError('a certificate fingerprint is 32 bytes');
    hash.update(fp);
  }
  return hash.digest();
}

export interface EpochKeyInputs {
  groupId: string;
  epoch: number;
  /** Raw SHA-256 certificate fingerprints, in member order (M sorted). */
  fingerprints: readonly Uint8Array[];
  /** Each member's 32-byte nonce, in the same order. */
  nonces: readonly Uint8Array[];
}

export interface EpochKey {
  /** K_e. Handed only to the keyring, which never lets it out. */
  key: Buffer;
  safetyNumber: string;
}

/** K_e = HKDF-SHA256(n_M[0] ‖ … ‖ n_M[k], salt, "…group-key", 32) and the epoch's safety number. */
export function deriveEpochKey(inputs: EpochKeyInputs): EpochKey {
  if (inputs.nonces.length !== inputs.fingerprints.length || inputs.nonces.length < 2) {
    throw new RangeError('one nonce and one fingerprint per member, at least two members');
  }
  for (const n of inputs.nonces) {
    if (n.length !== NONCE_BYTES) throw new RangeError('every nonce is 32 bytes');
  }
  const salt = keySalt(inputs.groupId, inputs.epoch, inputs.fingerprints);
  const ikm = Buffer.concat(inputs.nonces.map((n) => Buffer.from(n)));
  try {
    const key = hkdfSha256(ikm, salt, Buffer.from(LABELS.groupKey, 'utf8'), GROUP_KEY_BYTES);
    return { key, safetyNumber: safetyNumber(key, salt) };
  } finally {
    ikm.fill(0);
  }
}

/**
 * HKDF(K_e, salt, "…safety-number", 30) read as six 5-byte big-endian integers mod 100000, printed as
 * six 5-digit groups. A one-way function of K_e: equal numbers mean equal keys, and it reveals nothing.
 */
export function safetyNumber(key: Uint8Array, salt: Uint8Array): string {
  const bytes = hkdfSha256(key, salt, Buffer.from(LABELS.safetyNumber, 'utf8'), SAFETY_BYTES);
  const groups: string[] = [];
  for (let i = 0; i < SAFETY_BYTES; i += 5) {
    groups.push(String(bytes.readUIntBE(i, 5) % 100_000).padStart(5, '0'));
  }
  return groups.join(' ');
}

/** AAD of a chat message: L("…chat", G) ‖ 0 ‖ u64(e) ‖ sender ‖ 0 ‖ u64(seq). */
export function chatAad(groupId: string, epoch: number, sender: string, seq: number): Buffer {
  return Buffer.concat([
    joinLabel(LABELS.chat, groupId),
    ZERO,
    u64(epoch),
    Buffer.from(sender, 'utf8'),
    ZERO,
    u64(seq),
  ]);
}

/** M: member names sorted by code point (names are ASCII identities, so UTF-16 order is code point order). */
export function sortMembers(names: Iterable<string>): string[] {
  return [...new Set(names)].sort((a, b) => (a < b ? -1 : a > b ? 1 : 0));
}

/** The deterministic initiator of attempt `a`: M[a mod |M|]. */
export function initiatorFor(members: readonly string[], attempt: number): string {
  if (members.length === 0) throw new RangeError('no members');
  return members[attempt % members.length] as string;
}
