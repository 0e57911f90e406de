/** Wire codes of the message types. Codes are never reused. */
export const MESSAGE_TYPES = {
  HELLO: 1,
  CONNECTION: 2,
  PRESENCE: 3,
  CERT_REQUEST: 4,
  CERT_RESPONSE: 5,
  NONCE_REQUEST: 6,
  NONCE_RESPONSE: 7,
  KEY_DISTRIBUTION: 8,
  ENCRYPTED_TEXT: 9,
  DISCONNECT: 10,
  ERROR: 11,
  REKEY_REQUEST: 12,
  HEARTBEAT: 13,
  /** The group CA's signed roster (core/roster); also the file roster.scx. */
  ROSTER: 14,
  /** Member → relay: replay what the log holds for me after this offset, then go live (v2). */
  SYNC: 15,
  /** Relay → member: the log cannot serve the SYNC as asked (lost log, retention, lost tail). */
  GAP: 16,
  /** Member → relay → other members: the sender's signed X25519 prekey (DESIGN.md §10.8). */
  PREKEY: 17,
  /** Relay → member, at login: the latest stored prekey of every member (session-bound). */
  PREKEYS: 18,
} as const;

export type MessageType = keyof typeof MESSAGE_TYPES;

const BY_CODE = new Map<number, MessageType>(
  Object.entries(MESSAGE_TYPES).map(([name, code]) => [code, name as MessageType]),
);

export function messageTypeOf(code: number): MessageType | undefined {
  return BY_CODE.get(code);
}

/** Types a member sends to be routed to one named member. */
export const TARGETED_TYPES: ReadonlySet<MessageType> = new Set([
  'NONCE_REQUEST',
  'NONCE_RESPONSE',
  'KEY_DISTRIBUTION',
  'REKEY_REQUEST',
]);

/** Types only the relay may originate. */
export const RELAY_TYPES: ReadonlySet<MessageType> = new Set([
  'HELLO',
  'PRESENCE',
  'CERT_RESPONSE',
  'ERROR',
  'GAP',
  'PREKEYS',
]);
