/**
 * A session's tag, as PRESENCE lists it: the first 16 bytes of SHA-256 over a label and the
 * session's HELLO challenge. A PRESENCE is signed once and sent to every member; each member finds
 * its own session's tag in it, and a PRESENCE that does not list the session (one recorded in
 * another session, or before a relay restart) is refused.
 */
import { createHash } from 'node:crypto';

const SESSION_TAG_LABEL = Buffer.from('SecureChat-X/v2 session-tag\0', 'latin1');
export const SESSION_TAG_BYTES = 16;

export function sessionTag(challenge: Uint8Array): Buffer {
  return createHash('sha256')
    .update(SESSION_TAG_LABEL)
    .update(challenge)
    .digest()
    .subarray(0, SESSION_TAG_BYTES);
}
