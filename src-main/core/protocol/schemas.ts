/**
 * Body schemas for every message type. Bodies are UTF-8 JSON; binary fields are base64.
 * Every schema is strict (unknown fields rejected) and every string, array and byte field bounded.
 */
import { z } from 'zod';
import { X25519_KEY_BYTES } from '../crypto/x25519.js';
import { IDENTITY_NAME_PATTERN } from '../pki/identity-name.js';
import type { MessageType } from './message-types.js';

export const LIMITS = {
  members: 1024,
  certificateBytes: 8 * 1024,
  rsaBlockBytes: 1024,
  keyDistributionBytes: 256 * 1024,
  chatCiphertextBytes: 128 * 1024,
  textChars: 16 * 1024,
  reasonChars: 200,
  errorMessageChars: 500,
  /** The roster (ROSTER, core/roster): members, relays and removed entries it may list. */
  rosterMembers: 512,
  rosterRelays: 16,
  rosterRemoved: 4096,
  groupNameChars: 64,
  /**
   * A roster body fits one frame of the default 1 MiB bound with room for the rest of the envelope
   * (at most 8 KiB of sender certificate, 1 KiB of signature and 12 header bytes).
   */
  rosterBodyBytes: 1024 * 1024 - 16 * 1024,
} as const;

const BASE64 = /^[A-Za-z0-9+/]*={0,2}$/;

export interface ByteBound {
  exact?: number;
  max?: number;
  min?: number;
}

/** The longest base64 string `bound` allows (checked before decoding anything). */
export function base64Chars(bound: ByteBound): number {
  return Math.ceil((bound.exact ?? bound.max ?? 0) / 3) * 4;
}

/**
 * Canonical base64 within `bound`: its bytes, or the words of the refusal. bytes() below and the
 * chat bodies' fast path (fast-bodies.ts) share it, so both accept exactly the same strings.
 */
export function canonicalBytes(s: string, bound: ByteBound): Buffer | string {
  const buf = Buffer.from(s, 'base64');
  // Reject non-canonical base64 so each byte string has exactly one encoding. A string equal to
  // its decoding's encoding is base64, so the alphabet is checked only to word a refusal: the
  // regex over every chat ciphertext was a third of decoding its body (about 4 µs of 13).
  if (buf.toString('base64') !== s) return BASE64.test(s) ? 'non-canonical base64' : 'must be base64';
  if (bound.exact !== undefined && buf.length !== bound.exact) return `must be exactly ${bound.exact} bytes`;
  // The string bound allows up to 2 bytes past `max` (base64 groups of 3): check exactly.
  if (bound.max !== undefined && buf.length > bound.max) return `must be at most ${bound.max} bytes`;
  if (bound.min !== undefined && buf.length < bound.min) return `must be at least ${bound.min} bytes`;
  return buf;
}

/** Base64 on the wire, a Buffer in code; `exact` or `max` bound the decoded length. */
export function bytes(bound: ByteBound) {
  // The transform is typed as plain Buffer (any backing store) so any Buffer can go into a body.
  return z
    .string()
    .max(base64Chars(bound))
    .transform((s, ctx): Buffer => {
      const decoded = canonicalBytes(s, bound);
      if (typeof decoded === 'string') {
        ctx.addIssue({ code: 'custom', message: decoded });
        return z.NEVER;
      }
      return decoded;
    });
}

export const IdentityName = z.string().regex(IDENTITY_NAME_PATTERN, 'invalid identity name');
export const FingerprintHex = z
  .string()
  .regex(/^[0-9a-f]{64}$/, 'must be a lowercase hex SHA-256 fingerprint');
export const Epoch = z.number().int().min(1).max(Number.MAX_SAFE_INTEGER);
export const Counter = z.number().int().min(0).max(Number.MAX_SAFE_INTEGER);
/** A relay log's stream id: 16 random bytes as lowercase hex (relay/log/types.ts). */
export const StreamId = z.string().regex(/^[0-9a-f]{32}$/, 'must be 32 lowercase hex digits');
/** A position in a relay log (0 = before the first frame). */
export const Offset = Counter;
/**
 * The HELLO challenge of the session a relay-signed frame belongs to: a frame signed for one
 * session (an ERROR obtained by a junk login, a PRESENCE from before a restart) is refused in any
 * other.
 */
export const Session = bytes({ exact: 32 });
/** A session's tag in PRESENCE: 16 bytes of a hash of its HELLO challenge (core/link/session-tag.ts). */
export const SessionTag = bytes({ exact: 16 });

/** Text a person reads on one line (a group name, a removal reason): no control characters. */
const PRINTABLE = /^[^\p{Cc}]*$/u;
const Millis = z.number().int().min(0).max(Number.MAX_SAFE_INTEGER);
const RosterCertificate = z.strictObject({
  name: IdentityName,
  certificate: bytes({ max: LIMITS.certificateBytes, min: 1 }),
});

/**
 * The ROSTER body (docs/protocol.md, "Roster (protocol v2)"). Field by field only: uniqueness,
 * certificates and the removed list are checked against the group CA by core/roster/verify.ts.
 */
export const RosterBodySchema = z.strictObject({
  groupId: FingerprintHex,
  name: z.string().min(1).max(LIMITS.groupNameChars).regex(PRINTABLE, 'must not contain control characters'),
  version: z.number().int().min(1).max(Number.MAX_SAFE_INTEGER),
  issuedAt: Millis,
  members: z.array(RosterCertificate).max(LIMITS.rosterMembers),
  relays: z.array(RosterCertificate).min(1).max(LIMITS.rosterRelays),
  removed: z
    .array(
      z.strictObject({
        name: IdentityName,
        fingerprint: FingerprintHex,
        removedAt: Millis,
        reason: z.string().max(LIMITS.reasonChars).regex(PRINTABLE, 'must not contain control characters'),
      }),
    )
    .max(LIMITS.rosterRemoved),
});

export const ERROR_CODES = [
  'BadFrame',
  'FrameTooLarge',
  'UnsupportedVersion',
  'UnknownType',
  'BadSignature',
  'SchemaViolation',
  'NotAuthenticated',
  'AuthFailed',
  'AuthTimeout',
  'CertificateRejected',
  'SenderMismatch',
  'UnknownTarget',
  'NotAllowed',
  'RateLimited',
  'TooManyErrors',
  'ServerFull',
  'Replaced',
  'SlowConsumer',
  'ShuttingDown',
  /** The relay holds no roster yet (none given with --roster, none stored): nobody is admitted. */
  'NoRoster',
  /** The certificate is valid for the group but not listed in the relay's roster. */
  'NotInRoster',
  /** The relay's roster removed this certificate: terminal, the client stops retrying. */
  'Removed',
  /** An uploaded ROSTER was refused (bad signature, other group, or older than the relay's). */
  'RosterRejected',
  /** A PREKEY was refused (malformed, bad signature, another identity, expired, rollback, conflict). */
  'PrekeyRejected',
  /**
   * This relay node cannot serve now (a cluster node that lost its NATS cluster): fatal, try again
   * later or another node.
   */
  'Unavailable',
] as const;
export type RelayErrorCode = (typeof ERROR_CODES)[number];

const WireTime = z.number().int().min(0).max(Number.MAX_SAFE_INTEGER);

/**
 * A member's signed X25519 prekey on the wire (core/pki/prekey.ts verifies it). The signature is the
 * member's RSA-PSS over prekeySigningBytes(), so anyone may carry it: the relay hands it out.
 */
export const SignedPrekeySchema = z.strictObject({
  member: IdentityName,
  serial: z.number().int().min(1).max(Number.MAX_SAFE_INTEGER),
  publicKey: bytes({ exact: X25519_KEY_BYTES }),
  notBefore: WireTime,
  notAfter: WireTime,
  signature: bytes({ max: LIMITS.rsaBlockBytes }),
});

/**
 * A secret sealed with HPKE to the receiver's prekey (docs/protocol.md "Sealing"): the serial of
 * the prekey it was sealed to and HPKE's encapsulated key. Absent: RSA-OAEP to the certificate.
 */
export const HpkeTagSchema = z.strictObject({
  serial: z.number().int().min(1).max(Number.MAX_SAFE_INTEGER),
  enc: bytes({ exact: X25519_KEY_BYTES }),
});

export const BODY_SCHEMAS = {
  HELLO: z.strictObject({
    challenge: bytes({ exact: 32 }),
    relay: IdentityName,
    maxFrameBytes: z
      .number()
      .int()
      .min(1024)
      .max(64 * 1024 * 1024),
    /** The relay's log (v2): its stream id, absent when the relay keeps no log. */
    streamId: StreamId.optional(),
  }),
  CONNECTION: z.strictObject({
    challenge: bytes({ exact: 32 }),
    relayFingerprint: FingerprintHex,
  }),
  PRESENCE: z.strictObject({
    /**
     * The sessions this PRESENCE is for (every member's, as tags): one signed frame serves all
     * receivers, and is refused in any session not listed (one recorded before a restart, say).
     */
    sessions: z.array(SessionTag).min(1).max(LIMITS.members),
    version: Counter,
    members: z.array(z.strictObject({ name: IdentityName, fingerprint: FingerprintHex })).max(LIMITS.members),
  }),
  CERT_REQUEST: z.strictObject({
    names: z.array(IdentityName).min(1).max(LIMITS.members),
  }),
  CERT_RESPONSE: z.strictObject({
    session: Session,
    certificates: z
      .array(
        z.strictObject({ name: IdentityName, certificate: bytes({ max: LIMITS.certificateBytes, min: 1 }) }),
      )
      .max(LIMITS.members),
    unknown: z.array(IdentityName).max(LIMITS.members),
  }),
  NONCE_REQUEST: z.strictObject({
    epoch: Epoch,
    /** The PRESENCE version the initiator saw (who was online). */
    membershipVersion: Counter,
    /** The roster version M is taken from (0 = no roster yet: the transitional presence fallback). */
    rosterVersion: Counter,
    /** M: every roster member, online or not, sorted (an initiator and a target at least). */
    members: z.array(IdentityName).min(2).max(LIMITS.members),
    /** RSA-OAEP to the target's certificate, or (with `hpke`) HPKE to its prekey. */
    challenge: bytes({ max: LIMITS.rsaBlockBytes, min: 1 }),
    hpke: HpkeTagSchema.optional(),
  }),
  NONCE_RESPONSE: z.strictObject({
    epoch: Epoch,
    sealed: bytes({ max: LIMITS.rsaBlockBytes, min: 1 }),
    hpke: HpkeTagSchema.optional(),
  }),
  KEY_DISTRIBUTION: z
    .strictObject({
      epoch: Epoch,
      /** The RSA-OAEP digital envelope (wrappedKey, iv, ciphertext), or HPKE (hpke, ciphertext). */
      wrappedKey: bytes({ max: LIMITS.rsaBlockBytes, min: 1 }).optional(),
      iv: bytes({ exact: 12 }).optional(),
      hpke: HpkeTagSchema.optional(),
      ciphertext: bytes({ max: LIMITS.keyDistributionBytes, min: 16 }),
    })
    .refine(
      (b) =>
        b.hpke === undefined ? b.wrappedKey !== undefined && b.iv !== undefined : !b.wrappedKey && !b.iv,
      'either wrappedKey and iv (RSA-OAEP) or hpke, not both',
    ),
  ENCRYPTED_TEXT: z.strictObject({
    epoch: Epoch,
    seq: z.number().int().min(1).max(Number.MAX_SAFE_INTEGER),
    iv: bytes({ exact: 12 }),
    ciphertext: bytes({ max: LIMITS.chatCiphertextBytes, min: 16 }),
  }),
  DISCONNECT: z.strictObject({
    reason: z.string().max(LIMITS.reasonChars),
  }),
  ERROR: z.strictObject({
    session: Session,
    code: z.enum(ERROR_CODES),
    message: z.string().max(LIMITS.errorMessageChars),
    fatal: z.boolean(),
    /** When the client may try again (RateLimited); it waits at least this long. */
    retryAfterMs: z.number().int().min(0).max(3_600_000).optional(),
  }),
  REKEY_REQUEST: z.strictObject({
    minEpoch: Epoch,
    reason: z.enum(['requested', 'stale-epoch', 'key-missing']),
  }),
  /** Either direction, when nothing else was sent for a while: "still here" (core/link/liveness.ts). */
  HEARTBEAT: z.strictObject({ session: Session }),
  ROSTER: RosterBodySchema,
  SYNC: z.strictObject({
    /** The stream id the member's offsets belong to ('' = it holds none: replay from the start). */
    streamId: z.union([StreamId, z.literal('')]),
    afterOffset: Offset,
    /** Include the member's own broadcasts (rebuilding its history on a new store). */
    ownBroadcasts: z.boolean().optional(),
  }),
  GAP: z.strictObject({
    session: Session,
    streamId: StreamId,
    /**
     * lost-log: the member's offsets are from another log; retention: frames after its offset were
     * dropped; ahead: it has seen offsets this log does not hold (the log lost its tail).
     */
    reason: z.enum(['lost-log', 'retention', 'ahead']),
    /** What the log holds now; the relay replays from firstOffset - 1 right after the GAP. */
    firstOffset: Offset,
    lastOffset: Offset,
  }),
  PREKEY: z.strictObject({ prekey: SignedPrekeySchema }),
  PREKEYS: z.strictObject({
    session: Session,
    /** At most one per member: the relay keeps the latest it verified of each. */
    prekeys: z.array(SignedPrekeySchema).max(LIMITS.members),
  }),
} satisfies Record<MessageType, z.ZodType>;

export type BodyOf<T extends MessageType> = z.output<(typeof BODY_SCHEMAS)[T]>;

/**
 * What travels inside KEY_DISTRIBUTION's envelope (protocol v2): the epoch's roster members M (every
 * member the key belongs to, online or not), the contributors C ⊆ M who gave a nonce (the initiator
 * and the online members that answered), and one nonce per contributor in C order. A member alone
 * online is a legal group of one contributor.
 */
export const KeyMaterialSchema = z.strictObject({
  groupId: FingerprintHex,
  epoch: Epoch,
  initiator: IdentityName,
  rosterVersion: Counter,
  members: z.array(IdentityName).min(1).max(LIMITS.members),
  contributors: z.array(IdentityName).min(1).max(LIMITS.members),
  nonces: z
    .array(bytes({ exact: 32 }))
    .min(1)
    .max(LIMITS.members),
});
export type KeyMaterial = z.output<typeof KeyMaterialSchema>;

/** What ENCRYPTED_TEXT's ciphertext decrypts to. */
export const ChatPlaintextSchema = z.strictObject({
  text: z.string().min(1).max(LIMITS.textChars),
  sentAt: z.number().int().min(0).max(Number.MAX_SAFE_INTEGER),
});
export type ChatPlaintext = z.output<typeof ChatPlaintextSchema>;
