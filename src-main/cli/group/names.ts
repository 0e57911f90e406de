/**
 * Checks on the identities an organiser types. Each becomes a certificate CN and a file name
 * `<name>.p12` beside `ca.p12`, so besides the identity rules: "ca" is taken, and names that differ
 * only in letter case are refused (they collide on case-insensitive file systems and people
 * confuse them when comparing who is who).
 */
import { isValidIdentityName } from '../../core/pki/identity-name.js';

export const RESERVED_NAMES: ReadonlySet<string> = new Set(['ca']);

/** Why `name` cannot be used, or undefined if it can. */
export function nameProblem(name: string, role: 'member' | 'relay'): string | undefined {
  if (name.length === 0) return `an empty ${role} name (a stray comma?)`;
  if (!isValidIdentityName(name)) {
    return `"${name.slice(0, 80)}" is not a valid ${role} name: use 1-64 letters, digits, '.', '_' or '-'`;
  }
  if (RESERVED_NAMES.has(name.toLowerCase())) return `"${name}" is reserved for the group CA`;
  return undefined;
}

/** Splits and checks `--members a,b,c` together with the relay's name; returns the first problem found. */
export function checkGroupNames(
  membersArg: string,
  relay: string,
): { members: string[]; problem?: undefined } | { problem: string } {
  const members = membersArg.split(',').map((s) => s.trim());
  const relayProblem = nameProblem(relay, 'relay');
  if (relayProblem) return { problem: relayProblem };
  const seen = new Map<string, string>([[relay.toLowerCase(), relay]]);
  for (const name of members) {
    const problem = nameProblem(name, 'member');
    if (problem) return { problem: `--members: ${problem}` };
    const clash = seen.get(name.toLowerCase());
    if (clash !== undefined) {
      if (clash === relay && name.toLowerCase() === relay.toLowerCase()) {
        return { problem: `member "${name}" has the same name as the relay; choose another --relay name` };
      }
      return { problem: `--members names "${name}" twice${clash === name ? '' : ` (as "${clash}")`}` };
    }
    seen.set(name.toLowerCase(), name);
  }
  return { members };
}
