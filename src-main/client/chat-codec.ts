/**
 * The inside of an ENCRYPTED_TEXT: UTF-8 JSON `{text, sentAt}` (docs/protocol.md "Chat messages"),
 * decoded only with the strict ChatPlaintextSchema, and only after the ciphertext authenticated.
 */
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

export function encodeChatPlaintext(message: ChatPlaintext): Buffer {
  return encodeJsonBody({ text: message.text, sentAt: message.sentAt });
}

/** Throws ProtocolError('SchemaViolation') for anything but a well-formed chat plaintext. */
export function decodeChatPlaintext(bytes: Uint8Array): ChatPlaintext {
  return decodeJsonBody(ChatPlaintextSchema, bytes, 'chat plaintext');
}
