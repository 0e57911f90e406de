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
  // v2 (epochs over the roster): the envelope carries contributors and the roster version, the salt
  // covers the roster version and the whole roster, the key only the contributors' nonces.
  keyDistribution: 'SecureChat-X/v2 key-distribution',
  keySalt: 'SecureChat-X/v2 key-salt',
  groupKey: 'SecureChat-X/v2 group-key',
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

/**
 * salt = SHA-256("…/v2 key-salt" ‖ 0 ‖ G ‖ 0 ‖ u64(e) ‖ u64(rosterVersion) ‖ fp(M[0]) ‖ … ‖ fp(M[k])),
 * M being every roster member (online or not), sorted. rosterVersion 0 = no roster yet (the
 * transitional presence fallback, see key-establishment.ts).
 */
export function keySalt(
  groupId: string,
  epoch: number,
  rosterVersion: number,
  fingerprints: readonly Uint8Array[],
): Buffer {
  const hash = createHash('sha256');
  hash.update(LABELS.keySalt, 'utf8');
  hash.update(ZERO);
  hash.update(groupId, 'utf8');
  hash.update(ZERO);
  hash.update(u64(epoch));
  hash.update(u64(rosterVersion));
  for (const fp of fingerprints) {
    if (fp.length !== 32) throw new RangeError('a certificate fingerprint is 32 bytes');
    hash.update(fp);
  }
  return hash.digest();
}

export interface EpochKeyInputs {
  groupId: string;
  epoch: number;
  /** The roster version the key is for (0 = no roster: presence fallback). */
  rosterVersion: number;
  /** Raw SHA-256 certificate fingerprints of every member of M, in member order (M sorted). */
  fingerprints: readonly Uint8Array[];
  /** The contributors' 32-byte nonces, in contributor order (C sorted, C ⊆ M, at least one). */
  nonces: readonly Uint8Array[];
}

export interface EpochKey {
  /** K_e. Handed only to the keyring, which never lets it out. */
  key: Buffer;
  safetyNumber: string;
}

/** K_e = HKDF-SHA256(n_C[0] ‖ … ‖ n_C[j], salt, "…/v2 group-key", 32) and the epoch's safety number. */
export function deriveEpochKey(inputs: EpochKeyInputs): EpochKey {
  if (inputs.nonces.length < 1 || inputs.nonces.length > inputs.fingerprints.length) {
    throw new RangeError('at least one nonce, and no more nonces than members');
  }
  for (const n of inputs.nonces) {
    if (n.length !== NONCE_BYTES) throw new RangeError('every nonce is 32 bytes');
  }
  const salt = keySalt(inputs.groupId, inputs.epoch, inputs.rosterVersion, inputs.fingerprints);
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

/** The deterministic initiator of attempt `a`: O[a mod |O|], O the online roster members sorted. */
export function initiatorFor(online: readonly string[], attempt: number): string {
  if (online.length === 0) throw new RangeError('no members online');
  return online[attempt % online.length] as string;
}
