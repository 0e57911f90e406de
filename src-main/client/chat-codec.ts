/**
 * The inside of an ENCRYPTED_TEXT: UTF-8 JSON `{text, sentAt}` (docs/protocol.md "Chat messages"),
 * padded to a size bucket, decoded only with the strict ChatPlaintextSchema, and only after the
 * ciphertext authenticated.
 *
 * Padding: the JSON, one 0x80 byte, then zero bytes up to the bucket: a power of two from 256 bytes
 * to 64 KiB, then the next multiple of 16 KiB. Whoever sees ciphertexts (the relay, anyone who
 * records its log) learns a message's length only to within its bucket: "ok" and a 200-character
 * sentence look the same. 0x80 cannot end UTF-8 JSON, so the marker is unambiguous.
 */
import { ProtocolError } from '../core/protocol/errors.js';
import { fastChatPlaintext } from '../core/protocol/fast-bodies.js';
import { decodeJsonBody, encodeJsonBody } from '../core/protocol/json-body.js';
import { ChatPlaintextSchema, LIMITS, type ChatPlaintext } from '../core/protocol/schemas.js';
import { ClientError } from './errors.js';

export const MAX_TEXT_CHARS = LIMITS.textChars;

export function checkOutgoingText(text: string): void {
  if (text.length === 0) throw new ClientError('MessageTooLong', 'an empty message cannot be sent');
  if (text.length > MAX_TEXT_CHARS) {
    throw new ClientError('MessageTooLong', `a message holds at most ${MAX_TEXT_CHARS} characters`);
  }
}

const PAD_MARKER = 0x80;
const SMALLEST_BUCKET = 256;
const LARGEST_POWER_BUCKET = 64 * 1024;
const LARGE_STEP = 16 * 1024;

/** The padded size for `n` bytes of JSON plus the marker. */
export function paddedLength(n: number): number {
  const needed = n + 1;
  if (needed <= LARGEST_POWER_BUCKET) {
    let bucket = SMALLEST_BUCKET;
    while (bucket < needed) bucket *= 2;
    return bucket;
  }
  return Math.ceil(needed / LARGE_STEP) * LARGE_STEP;
}

export function encodeChatPlaintext(message: ChatPlaintext): Buffer {
  const json = encodeJsonBody({ text: message.text, sentAt: message.sentAt });
  const padded = Buffer.alloc(paddedLength(json.length));
  json.copy(padded);
  padded[json.length] = PAD_MARKER;
  return padded;
}

/** Throws ProtocolError('SchemaViolation') for anything but a well-formed, padded chat plaintext. */
export function decodeChatPlaintext(bytes: Uint8Array): ChatPlaintext {
  let end = bytes.length - 1;
  while (end >= 0 && bytes[end] === 0) end--;
  if (end < 0 || bytes[end] !== PAD_MARKER) {
    throw new ProtocolError('SchemaViolation', 'chat plaintext: padding marker missing');
  }
  return decodeJsonBody(ChatPlaintextSchema, bytes.subarray(0, end), 'chat plaintext', fastChatPlaintext);
}
