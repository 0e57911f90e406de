/**
 * The member's side of the roster (DESIGN.md §10.1): every ROSTER the relay sends is verified with
 * the group CA; the highest version seen is kept durably (RosterStore, the member store) and never
 * given up for an older one. When the relay's is older than ours, ours goes back up to it.
 */
import type { Certificate } from '../core/pki/certificate.js';
import { compareRoster, RosterError, verifyRoster, type Roster } from '../core/roster/index.js';

/** Where the highest roster is kept across restarts (the member store; in memory by default). */
export interface RosterStore {
  /** The saved roster's envelope bytes, if any. */
  loadRoster(): Buffer | undefined;
  /** Saves a verified roster newer than the saved one; durable when it returns (throws if not). */
  saveRoster(bytes: Buffer, version: number): void;
}

export class MemoryRosterStore implements RosterStore {
  private bytes: Buffer | undefined;

  loadRoster(): Buffer | undefined {
    return this.bytes;
  }

  saveRoster(bytes: Buffer): void {
    this.bytes = Buffer.from(bytes);
  }
}

export type RosterReceipt =
  /** Newer than the held one (or the first): saved and held now. */
  | { kind: 'newer'; roster: Roster }
  /** The one held. */
  | { kind: 'same'; roster: Roster }
  /** Older than ours: the relay should get ours (`held`). */
  | { kind: 'older'; held: Roster; incoming: Roster }
  /** Not a roster of this group, a bad signature, a fork of the held version, or saving failed. */
  | { kind: 'refused'; code: RosterError['code'] | 'StateStoreFailed'; message: string };

/** The roster event's view: version, member names and removed names, each sorted. */
export interface RosterView {
  version: number;
  members: string[];
  removed: string[];
}

export function rosterView(roster: Roster): RosterView {
  return {
    version: roster.version,
    members: [...roster.memberNames],
    removed: roster.removed.map((r) => r.name).sort(),
  };
}

export class RosterTracker {
  #held: Roster | undefined;
  /** The version last reported (a roster event), so each engine reports the held one once. */
  #reported: number | undefined;
  /** Why the stored roster was not usable, reported once by the engine. */
  readonly loadProblem: string | undefined;

  constructor(
    private readonly ca: Certificate,
    private readonly store: RosterStore,
  ) {
    const bytes = store.loadRoster();
    if (bytes === undefined) return;
    try {
      this.#held = verifyRoster(bytes, ca);
    } catch (err) {
      if (!(err instanceof RosterError)) throw err;
      // A damaged store entry must not lock the member out: the relay's roster replaces it.
      this.loadProblem = `the stored roster is not usable (${err.code}): ${err.message}`;
    }
  }

  /** The highest roster this member holds. */
  get held(): Roster | undefined {
    return this.#held;
  }

  /** A ROSTER from the relay (the envelope bytes). Never throws. */
  receive(bytes: Buffer): RosterReceipt {
    let incoming: Roster;
    try {
      incoming = verifyRoster(bytes, this.ca);
    } catch (err) {
      if (!(err instanceof RosterError)) throw err;
      return { kind: 'refused', code: err.code, message: err.message };
    }
    const held = this.#held;
    if (held) {
      const order = compareRoster(held, incoming);
      if (order === 'same') return { kind: 'same', roster: held };
      if (order === 'older') return { kind: 'older', held, incoming };
      if (order === 'conflict') {
        return {
          kind: 'refused',
          code: 'RosterConflict',
          message: `the relay's roster v${incoming.version} differs from the one held: two changes were signed from one version`,
        };
      }
    }
    try {
      this.store.saveRoster(incoming.bytes, incoming.version);
    } catch (err) {
      return {
        kind: 'refused',
        code: 'StateStoreFailed',
        message: `roster v${incoming.version} could not be saved: ${err instanceof Error ? err.message : String(err)}`,
      };
    }
    this.#held = incoming;
    return { kind: 'newer', roster: incoming };
  }

  /** The held roster's view if it has not been reported yet (then it counts as reported). */
  toReport(): RosterView | undefined {
    const held = this.#held;
    if (!held || held.version === this.#reported) return undefined;
    this.#reported = held.version;
    return rosterView(held);
  }
}
