/**
 * Changing a roster and accepting one. A change is one step: version + 1. Acceptance is monotonic:
 * whoever holds a roster takes only a newer one and never goes back, and two different rosters of
 * one version (a fork: someone signed a change from an old copy) are a conflict, not a choice.
 */
import type { Certificate } from '../pki/certificate.js';
import { PkiError } from '../pki/errors.js';
import { validateCertificate } from '../pki/validate.js';
import { LIMITS } from '../protocol/schemas.js';
import { RosterError } from './errors.js';
import type { Roster, RosterBody } from './roster.js';
import { encodeRosterBody, sortedEntries } from './sign.js';

export type RosterChange =
  | { kind: 'add-member'; certificate: Certificate }
  | { kind: 'add-relay'; certificate: Certificate }
  /** `reason`: up to 200 characters, no control characters; default empty. */
  | { kind: 'remove-member'; name: string; reason?: string };

export interface ChangeOptions {
  /** ms since the epoch; default now. */
  now?: number;
}

function addEntry(previous: Roster, certificate: Certificate, role: 'member' | 'relay', now: number): void {
  try {
    // A newcomer's certificate must be usable now, unlike those already listed (verify.ts).
    validateCertificate(certificate, previous.ca, { role, now: new Date(now) });
  } catch (err) {
    if (!(err instanceof PkiError)) throw err;
    throw new RosterError('RosterCertificate', `cannot add ${role} "${certificate.name}": ${err.message}`, {
      cause: err,
    });
  }
  const name = certificate.name;
  if (previous.member(name) || previous.relay(name)) {
    throw new RosterError(
      'RosterDuplicate',
      `"${name}" is already in the roster (v${previous.version}); remove it first to give it a new certificate`,
    );
  }
  const removed = previous.removedEntry(certificate.fingerprintHex);
  if (removed) {
    throw new RosterError(
      'RosterRemovedMember',
      `this certificate of "${removed.name}" was removed on ${new Date(removed.removedAt).toISOString()} and cannot come back; issue a new one`,
    );
  }
  const count = role === 'member' ? previous.members.length : previous.relays.length;
  const max = role === 'member' ? LIMITS.rosterMembers : LIMITS.rosterRelays;
  if (count >= max) throw new RosterError('RosterLimit', `a roster lists at most ${max} ${role}s`);
}

/** The body of the next version after `change`; sign it with signRoster. */
export function nextRoster(previous: Roster, change: RosterChange, options: ChangeOptions = {}): RosterBody {
  // Never earlier than the previous issue time: a clock set back must not date v(N+1) before vN.
  const now = Math.max(options.now ?? Date.now(), previous.issuedAt);
  const body = previous.body();
  body.version = previous.version + 1;
  body.issuedAt = now;
  switch (change.kind) {
    case 'add-member':
      addEntry(previous, change.certificate, 'member', now);
      body.members = sortedEntries([...previous.members.map((m) => m.certificate), change.certificate]);
      break;
    case 'add-relay':
      addEntry(previous, change.certificate, 'relay', now);
      body.relays = sortedEntries([...previous.relays.map((r) => r.certificate), change.certificate]);
      break;
    case 'remove-member': {
      const entry = previous.member(change.name);
      if (!entry) {
        const why = previous.relay(change.name)
          ? 'it is a relay, not a member'
          : previous.removed.some((r) => r.name === change.name)
            ? 'it was removed already'
            : 'no member has that name';
        throw new RosterError(
          'RosterUnknownMember',
          `cannot remove "${change.name}" from roster v${previous.version}: ${why}`,
        );
      }
      if (previous.removed.length >= LIMITS.rosterRemoved) {
        throw new RosterError(
          'RosterLimit',
          `a roster keeps at most ${LIMITS.rosterRemoved} removed entries`,
        );
      }
      body.members = body.members.filter((m) => m.name !== change.name);
      body.removed.push({
        name: entry.name,
        fingerprint: entry.fingerprintHex,
        removedAt: now,
        reason: change.reason ?? '',
      });
      break;
    }
  }
  // Bounds and schema now, with the roster's words, rather than at signing.
  return encodeRosterBody(body).body;
}

export type RosterOrder = 'newer' | 'same' | 'older' | 'conflict';

/** How `incoming` stands to `held`, both verified rosters of one group. */
export function compareRoster(held: Roster, incoming: Roster): RosterOrder {
  if (held.groupId !== incoming.groupId) {
    throw new RosterError(
      'RosterForeignGroup',
      `a roster of group ${incoming.groupId} cannot follow one of group ${held.groupId}`,
    );
  }
  if (incoming.version > held.version) return 'newer';
  if (incoming.version < held.version) return 'older';
  return incoming.sameBytes(held) ? 'same' : 'conflict';
}

/**
 * The roster to keep after `incoming` arrives: it if newer (or nothing is held yet), the held one
 * if the same. An older one is RosterRollback, a different one of the same version RosterConflict.
 */
export function acceptRoster(held: Roster | undefined, incoming: Roster): Roster {
  if (!held) return incoming;
  switch (compareRoster(held, incoming)) {
    case 'newer':
      return incoming;
    case 'same':
      return held;
    case 'older':
      throw new RosterError(
        'RosterRollback',
        `roster v${incoming.version} is older than v${held.version}, which is held: rosters never go back`,
      );
    case 'conflict':
      throw new RosterError(
        'RosterConflict',
        `a different roster v${incoming.version} than the one held: two changes were signed from one version`,
      );
  }
}
