/**
 * CA-signed rosters for a test group (test/helpers/client-identities.ts): version 1 over some of
 * its members, and the next versions by the same changes `group add-member` / `remove-member` make.
 * Every roster goes through signRoster and verifyRoster, exactly what members get from the relay.
 */
import {
  buildRoster,
  nextRoster,
  signRoster,
  verifyRoster,
  type Roster,
} from '../../src-main/core/roster/index.js';
import type { LoadedGroup } from './client-identities.js';

/** Roster v1 of `g` listing `members` (and the group's relay). */
export function rosterOf(g: LoadedGroup, members: readonly string[]): Roster {
  const certs = members.map((n) => {
    const id = g.identities[n];
    if (!id) throw new Error(`no identity ${n} in the test group`);
    return id.certificate;
  });
  const body = buildRoster({
    ca: g.group.ca.certificate,
    name: 'Test group',
    members: certs,
    relays: [g.relayHost().relay.certificate],
  });
  return verifyRoster(signRoster(body, g.group.ca), g.group.ca.certificate);
}

/** The next version with `name` removed. */
export function withoutMember(g: LoadedGroup, previous: Roster, name: string): Roster {
  const body = nextRoster(previous, { kind: 'remove-member', name, reason: 'test' });
  return verifyRoster(signRoster(body, g.group.ca), g.group.ca.certificate);
}

/** The next version with `name` (an identity of `g`) added. */
export function withMember(g: LoadedGroup, previous: Roster, name: string): Roster {
  const id = g.identities[name];
  if (!id) throw new Error(`no identity ${name} in the test group`);
  const body = nextRoster(previous, { kind: 'add-member', certificate: id.certificate });
  return verifyRoster(signRoster(body, g.group.ca), g.group.ca.certificate);
}
