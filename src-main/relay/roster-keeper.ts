/**
 * The relay's roster (DESIGN.md §10.1): the highest CA-signed roster it has seen, kept durably in
 * the store's meta under `roster` (the envelope bytes exactly as signed). It never goes back: an
 * older roster, from the --roster file or from a member, is refused and the held one kept.
 *
 * Pure bookkeeping: verification, ordering, storage. Who is admitted and who is pushed or dropped
 * is decided by the callers (login.ts, roster-uploads.ts) from what this returns.
 */
import type { Logger } from 'pino';
import type { Certificate } from '../core/pki/certificate.js';
import { encodeFrame } from '../core/protocol/index.js';
import { compareRoster, RosterError, verifyRoster, type Roster } from '../core/roster/index.js';
import type { RelayLog } from './log/types.js';

/** The store meta key holding the highest roster's envelope bytes. */
export const ROSTER_META_KEY = 'roster';

/** What admission makes of a certificate against the held roster. */
export type RosterVerdict =
  | { kind: 'member' }
  /** The relay holds no roster at all: nobody can be admitted yet. */
  | { kind: 'no-roster' }
  | { kind: 'removed'; name: string; reason: string }
  | { kind: 'not-listed' };

/** What became of an offered roster. */
export type RosterOffer =
  /** Newer than the held one (or the first): stored, and now held. */
  | { kind: 'stored'; roster: Roster; previous: Roster | undefined }
  /** The same roster, byte for byte: nothing to do. */
  | { kind: 'same'; roster: Roster }
  /** Refused: older, a fork of the held version, another group, a bad signature, not a roster … */
  | { kind: 'rejected'; code: RosterRejectCode; message: string };

export type RosterRejectCode = RosterError['code'] | 'RosterStoreFailed';

/** A problem with the relay's own roster sources (the --roster file), typed for the CLI. */
export class RelayRosterError extends Error {
  override readonly name = 'RelayRosterError';
  constructor(
    readonly code: RosterError['code'] | 'RosterStoreFailed',
    message: string,
    options?: { cause?: unknown },
  ) {
    super(message, options);
  }
}

export class RosterKeeper {
  #current: Roster | undefined;
  #frame: Buffer | undefined;
  /** Offers are handled one at a time: a slower store write never lets an older one overtake. */
  #queue: Promise<unknown> = Promise.resolve();
  readonly #initial: Roster | undefined;

  /**
   * `initial`: the --roster file's bytes, verified here (a RelayRosterError if they do not verify
   * with the relay's CA). Nothing is held until load() ran.
   */
  constructor(
    private readonly ca: Certificate,
    private readonly store: RelayLog | undefined,
    private readonly log: Logger,
    initial?: Uint8Array,
  ) {
    if (initial !== undefined) {
      try {
        this.#initial = verifyRoster(initial, ca);
      } catch (err) {
        if (err instanceof RosterError) {
          throw new RelayRosterError(
            err.code,
            `the roster does not verify with the relay's CA: ${err.message}`,
            {
              cause: err,
            },
          );
        }
        throw err;
      }
    }
  }

  /** The roster held now, if any. */
  get current(): Roster | undefined {
    return this.#current;
  }

  /** The held roster as a complete frame (length prefix and envelope), ready to queue. */
  get frame(): Buffer | undefined {
    return this.#frame;
  }

  /**
   * Reads the stored roster and takes the --roster file's if it is newer (storing it first). An
   * older or forked file is logged as a warning and the stored roster kept. A stored roster that
   * no longer verifies (another group's data directory, damage) is logged and ignored.
   */
  async load(): Promise<void> {
    let stored: Roster | undefined;
    const bytes = this.store ? await this.store.getMeta(ROSTER_META_KEY) : undefined;
    if (bytes !== undefined) {
      try {
        stored = verifyRoster(bytes, this.ca);
      } catch (err) {
        if (!(err instanceof RosterError)) throw err;
        this.log.error(
          { event: 'roster-store-invalid', code: err.code, reason: err.message },
          'the stored roster does not verify with this relay’s CA: ignored',
        );
      }
    }
    const file = this.#initial;
    if (stored) this.hold(stored, 'store');
    if (!file) {
      if (!stored) {
        this.log.warn(
          { event: 'roster-none' },
          'no roster: members are refused (NoRoster) until one is uploaded (securechat-x group publish)',
        );
      }
      return;
    }
    const order = stored ? compareRoster(stored, file) : 'newer';
    if (order === 'newer') {
      await this.persist(file);
      this.hold(file, 'file');
      return;
    }
    if (order === 'same') return;
    this.log.warn(
      {
        event: 'roster-file-ignored',
        fileVersion: file.version,
        storedVersion: stored?.version,
        order,
      },
      order === 'older'
        ? `--roster is v${file.version}, older than the stored v${stored?.version}: the stored one is kept`
        : `--roster is another roster of v${file.version} than the stored one (a fork): the stored one is kept`,
    );
  }

  /** Whether `fingerprintHex` may log in under the held roster. */
  verdict(fingerprintHex: string): RosterVerdict {
    const roster = this.#current;
    if (!roster) return { kind: 'no-roster' };
    if (roster.isMember(fingerprintHex)) return { kind: 'member' };
    const removed = roster.removedEntry(fingerprintHex);
    if (removed) return { kind: 'removed', name: removed.name, reason: removed.reason };
    return { kind: 'not-listed' };
  }

  /** A member's upload: verified, compared with the held one, stored when newer. Never throws. */
  offer(bytes: Buffer): Promise<RosterOffer> {
    const next = this.#queue.then(() => this.offerNow(bytes));
    this.#queue = next.catch(() => undefined);
    return next;
  }

  /**
   * A roster another cluster node stored in the shared meta (cluster/wiring.ts): held if newer,
   * not stored again (it is stored). One that is older than the held one means two nodes wrote at
   * once and the older write landed last: the held roster is written back, so the shared meta
   * ends at the highest. Never throws.
   */
  adopt(bytes: Buffer): Promise<RosterOffer> {
    const next = this.#queue.then(() => this.adoptNow(bytes));
    this.#queue = next.catch(() => undefined);
    return next;
  }

  /**
   * The held roster's bytes again (no RSA work: every client may upload after a reconnect), or the
   * incoming roster verified, or why it is refused.
   */
  private verified(bytes: Buffer): { incoming: Roster } | { answer: RosterOffer } {
    const held = this.#current;
    if (held && bytes.equals(held.bytes)) return { answer: { kind: 'same', roster: held } };
    try {
      return { incoming: verifyRoster(bytes, this.ca) };
    } catch (err) {
      if (!(err instanceof RosterError)) throw err;
      return { answer: { kind: 'rejected', code: err.code, message: err.message } };
    }
  }

  private async adoptNow(bytes: Buffer): Promise<RosterOffer> {
    const held = this.#current;
    const checked = this.verified(bytes);
    if ('answer' in checked) return checked.answer;
    const { incoming } = checked;
    const order = held ? compareRoster(held, incoming) : 'newer';
    if (held && order !== 'newer') {
      if (order !== 'same') await this.persist(held).catch(() => undefined);
      return order === 'same'
        ? { kind: 'same', roster: held }
        : {
            kind: 'rejected',
            code: order === 'older' ? 'RosterRollback' : 'RosterConflict',
            message: `shared roster v${incoming.version} is not newer than the held v${held.version}`,
          };
    }
    this.hold(incoming, 'cluster');
    return { kind: 'stored', roster: incoming, previous: held };
  }

  private async offerNow(bytes: Buffer): Promise<RosterOffer> {
    const held = this.#current;
    const checked = this.verified(bytes);
    if ('answer' in checked) return checked.answer;
    const { incoming } = checked;
    if (held) {
      const order = compareRoster(held, incoming);
      if (order === 'same') return { kind: 'same', roster: held };
      if (order === 'older') {
        return {
          kind: 'rejected',
          code: 'RosterRollback',
          message: `roster v${incoming.version} is older than the relay's v${held.version}: rosters never go back`,
        };
      }
      if (order === 'conflict') {
        return {
          kind: 'rejected',
          code: 'RosterConflict',
          message: `another roster v${incoming.version} than the relay's: two changes were signed from one version`,
        };
      }
    }
    try {
      await this.persist(incoming);
    } catch (err) {
      this.log.error(
        { event: 'roster-store-failed', version: incoming.version, err: String(err) },
        'storing the roster failed',
      );
      return { kind: 'rejected', code: 'RosterStoreFailed', message: 'the relay could not store the roster' };
    }
    // Another offer cannot have overtaken this one (the queue), so this is still newer.
    this.hold(incoming, 'upload');
    return { kind: 'stored', roster: incoming, previous: held };
  }

  private async persist(roster: Roster): Promise<void> {
    if (this.store) await this.store.setMeta(ROSTER_META_KEY, roster.bytes);
  }

  private hold(roster: Roster, source: 'file' | 'store' | 'upload' | 'cluster'): void {
    this.#current = roster;
    this.#frame = encodeFrame(roster.bytes, Number.MAX_SAFE_INTEGER);
    this.log.info(
      {
        event: 'roster',
        source,
        version: roster.version,
        groupId: roster.groupId,
        members: roster.members.length,
        removed: roster.removed.length,
      },
      `roster v${roster.version} held`,
    );
  }
}
