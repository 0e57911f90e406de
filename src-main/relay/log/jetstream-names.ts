/**
 * Names on the NATS side of the relay's JetStream log (DESIGN §10.7): the stream, subjects and
 * key-value buckets of a group, and how member names become subject tokens. NATS subjects are
 * dot-separated tokens where `.`, `*`, `>` and whitespace mean something, and stream / bucket names
 * allow even less, while group ids and member names (certificate names) may hold any character.
 */
import { createHash } from 'node:crypto';
import { RelayLogError } from './errors.js';

/** A group id used as is in names when it is this plain; anything else is hashed. */
const PLAIN = /^[A-Za-z0-9_-]{1,64}$/;

/**
 * The group's token in every name: `g_<id>` for a plain id, else `h_<first 32 hex of SHA-256>`.
 * The two prefixes keep a plain id from ever colliding with the hash of another one.
 */
export function groupToken(groupId: string): string {
  if (typeof groupId !== 'string' || groupId.length === 0) {
    throw new TypeError('a group id is a non-empty string');
  }
  if (PLAIN.test(groupId)) return `g_${groupId}`;
  return `h_${createHash('sha256').update(groupId, 'utf8').digest('hex').slice(0, 32)}`;
}

/** A member name as a subject token (and KV key part): the hex of its UTF-8 bytes, one to one. */
export function memberToken(name: string): string {
  return Buffer.from(name, 'utf8').toString('hex');
}

export function memberFromToken(token: string): string {
  if (!/^(?:[0-9a-f]{2})+$/.test(token)) {
    throw new RelayLogError('LogCorrupt', `"${token}" is not a member token`);
  }
  return Buffer.from(token, 'hex').toString('utf8');
}

export interface GroupNames {
  /** The stream holding the group's log. */
  stream: string;
  /** Every subject of the stream (its filter). */
  subjects: string;
  /** Frames for everyone. */
  all: string;
  /** The prefix of one member's subjects: `${memberPrefix}${memberToken(name)}`. */
  memberPrefix: string;
  /** The KV bucket with the log's meta and its stream id. */
  metaBucket: string;
  /** The KV bucket with presence (who is on which node). */
  presenceBucket: string;
  /**
   * Core NATS subjects between the group's relay nodes, outside the stream's filter (never stored):
   * `tick` carries the last offset a node stored (it wakes the other nodes' readers), and
   * `${forwardPrefix}${memberToken(name)}` a frame that is not logged for a member on another node.
   */
  tick: string;
  forwardPrefix: string;
}

export function groupNames(groupId: string): GroupNames {
  const token = groupToken(groupId);
  return {
    stream: `SCX_${token}`,
    subjects: `scx.${token}.>`,
    all: `scx.${token}.all`,
    memberPrefix: `scx.${token}.m.`,
    metaBucket: `scx_meta_${token}`,
    presenceBucket: `scx_presence_${token}`,
    tick: `scxn.${token}.tick`,
    forwardPrefix: `scxn.${token}.fwd.`,
  };
}

export function memberSubject(names: GroupNames, member: string): string {
  return `${names.memberPrefix}${memberToken(member)}`;
}

/**
 * The sender of a frame, as a message header: header values must stay within visible ASCII, so the
 * name is percent-encoded (reversible, and readable in `nats stream view` for plain names).
 */
export const SENDER_HEADER = 'Scx-Sender';

export function encodeSender(name: string): string {
  return encodeURIComponent(name);
}

export function decodeSender(value: string): string {
  try {
    return decodeURIComponent(value);
  } catch (err) {
    throw new RelayLogError('LogCorrupt', `the ${SENDER_HEADER} header "${value}" does not decode`, {
      cause: err,
    });
  }
}

/** Meta keys are any string of 1 to 256 characters; KV keys allow few characters, so: hex. */
export function metaKey(key: string): string {
  return `m.${Buffer.from(key, 'utf8').toString('hex')}`;
}

/** The stream id's own key: not of the `m.<hex>` form, so no meta key can collide with it. */
export const STREAM_ID_KEY = 'stream-id';
