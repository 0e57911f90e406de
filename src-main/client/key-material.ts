/**
 * The receiver's checks on the key material inside a KEY_DISTRIBUTION (docs/protocol.md, "Group key
 * establishment", step 4), as one pure function: what the machine (key-establishment.ts) knows goes
 * in, a verdict comes out. Kept apart so every rule is visible in one place and testable alone.
 *
 * The rules (DESIGN.md §10.2):
 * - the material is for this group and epoch, from the initiator that sent it, well-formed
 *   (M and C sorted and unique, C ⊆ M, I ∈ C, this member ∈ M, one nonce per contributor);
 * - this member's nonce is in the key exactly when it answered that initiator's NONCE_REQUEST for
 *   that epoch: one that answered must be listed with the nonce it gave, one that did not must not be
 *   listed (a contributor list cannot be padded with members who never took part). A frame from the
 *   log's backlog is the exception for "not listed": what the member answered in an earlier run is
 *   not kept, so a fresh or restarted member accepts a stored key that names it;
 * - the roster version and M equal the member's own roster; an older roster version is accepted as a
 *   read-only historic key (catch-up after being offline), a newer one is held until the roster
 *   catches up. Without a roster (the transitional presence fallback) rosterVersion is 0 and M is
 *   what the member answered for, or the members online now.
 */
import { timingSafeEqual } from 'node:crypto';
import type { KeyMaterial } from '../core/protocol/schemas.js';
import type { AnsweredRequest } from './key-establishment-state.js';

export type MaterialVerdict =
  | { kind: 'accept'; readOnly: boolean }
  /** For a roster version this member does not hold yet: try again once it does. */
  | { kind: 'hold' }
  /** Superseded or moved on: dropped without a report (a benign race). */
  | { kind: 'ignore' }
  | { kind: 'refuse'; reason: string };

export interface MaterialContext {
  self: string;
  groupId: string;
  sender: string;
  /** The epoch of the KEY_DISTRIBUTION frame (outside the envelope). */
  epoch: number;
  /** What this member answered `sender` for this epoch, if it did. */
  answered: AnsweredRequest | undefined;
  /** This member's roster (version and M, sorted), or undefined without one. */
  roster: { version: number; members: readonly string[] } | undefined;
  /** Without a roster: the online members now (sorted). */
  online: readonly string[];
  /**
   * This member holds a key for the epoch already: only the structure is checked, and the caller
   * compares the keys (the same again is a replayed stored frame, another one a conflict).
   */
  installed: boolean;
  /** The frame comes from the log's backlog: this member's earlier answers are unknown. */
  backlog: boolean;
}

export function sameList(a: readonly string[], b: readonly string[]): boolean {
  return a.length === b.length && a.every((x, i) => x === b[i]);
}

/** Strictly increasing by code point: sorted and without duplicates. */
function strictlySorted(names: readonly string[]): boolean {
  for (let i = 1; i < names.length; i++) if (!((names[i - 1] as string) < (names[i] as string))) return false;
  return true;
}

export function checkKeyMaterial(m: KeyMaterial, c: MaterialContext): MaterialVerdict {
  const what = `the key material of ${c.sender} for epoch ${c.epoch}`;
  if (m.groupId !== c.groupId || m.epoch !== c.epoch || m.initiator !== c.sender) {
    return { kind: 'refuse', reason: `${what} names another group, epoch or initiator` };
  }
  if (!strictlySorted(m.members) || !strictlySorted(m.contributors)) {
    return { kind: 'refuse', reason: `${what} lists members or contributors out of order or twice` };
  }
  const inM = new Set(m.members);
  if (!m.contributors.every((x) => inM.has(x)) || !m.contributors.includes(m.initiator)) {
    return { kind: 'refuse', reason: `${what} lists contributors outside its members, or not its initiator` };
  }
  if (m.nonces.length !== m.contributors.length) {
    return { kind: 'refuse', reason: `${what} does not carry one nonce per contributor` };
  }
  if (!inM.has(c.self)) return { kind: 'refuse', reason: `${what} is not for this member` };
  if (c.installed) return { kind: 'accept', readOnly: true };

  // Exactly when it answered: the nonce it gave, at its place among the contributors.
  const position = m.contributors.indexOf(c.self);
  const a = c.answered;
  if (a) {
    const own = m.nonces[position];
    if (
      position < 0 ||
      own === undefined ||
      !timingSafeEqual(own, a.nonce) ||
      a.rosterVersion !== m.rosterVersion ||
      !sameList(a.members, m.members)
    ) {
      return { kind: 'refuse', reason: `${what} does not match what this member answered` };
    }
  } else if (position >= 0 && !c.backlog) {
    return {
      kind: 'refuse',
      reason: `${what} lists this member as a contributor, but it never answered that request`,
    };
  }

  const r = c.roster;
  if (r) {
    if (m.rosterVersion > r.version) return { kind: 'hold' };
    // An older roster: a historic key to read what was stored meanwhile, never to send with.
    if (m.rosterVersion < r.version) return { kind: 'accept', readOnly: true };
    if (!sameList(m.members, r.members)) {
      return { kind: 'refuse', reason: `${what} is not sealed for the members of roster v${r.version}` };
    }
    return { kind: 'accept', readOnly: false };
  }
  // No roster (transitional): a rostered key waits for the roster; otherwise M is presence-based.
  if (m.rosterVersion > 0) return { kind: 'hold' };
  if (!a && !sameList(m.members, c.online)) return { kind: 'ignore' }; // the online members moved on
  return { kind: 'accept', readOnly: false };
}
