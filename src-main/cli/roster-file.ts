/**
 * roster.scx on disk: read and verified against the group CA, replaced atomically (a complete
 * temporary file renamed over it, 0644: it is public), and the one line `group add-member` and
 * `group remove-member` print about the version they wrote.
 */
import { randomBytes } from 'node:crypto';
import { open, readFile, rename, rm } from 'node:fs/promises';
import { basename, dirname, join } from 'node:path';
import type { Certificate } from '../core/pki/certificate.js';
import {
  MAX_ROSTER_BYTES,
  ROSTER_FILE,
  RosterError,
  compareRoster,
  verifyRoster,
  type Roster,
} from '../core/roster/index.js';
import { readInputFile } from './bundle-file.js';
import { CliError } from './cli-error.js';
import { fileProblem } from './fs-errors.js';

export { ROSTER_FILE };
export const ROSTER_MODE = 0o644;

/** A RosterError as one line naming the file; anything else passes through. */
export function rosterProblem(path: string, err: unknown): unknown {
  return err instanceof RosterError ? new CliError(`${path}: ${err.message} (${err.code})`) : err;
}

/** Runs one roster step; its RosterError becomes a CliError naming `path`. */
export function withRosterPath<T>(path: string, step: () => T): T {
  try {
    return step();
  } catch (err) {
    throw rosterProblem(path, err);
  }
}

export async function readRosterFile(path: string, ca: Certificate): Promise<Roster> {
  let data: Buffer;
  try {
    data = await readInputFile(path, MAX_ROSTER_BYTES);
  } catch (err) {
    if (err instanceof CliError && err.message === `no file at ${path}`) {
      throw new CliError(
        `no roster at ${path} (group create writes ${ROSTER_FILE} beside ca.p12; --roster FILE names another)`,
      );
    }
    throw err;
  }
  return withRosterPath(path, () => verifyRoster(data, ca));
}

/**
 * Replaces the roster at `path`, which must still hold `from` (the roster the change was made
 * from): if another command wrote a version meanwhile, or the file was put back to an older one,
 * nothing is written. (The check and the rename are two steps; the relay and the members refuse a
 * fork either way: two different rosters of one version are a RosterConflict there too.)
 */
export async function replaceRosterFile(path: string, from: Roster, next: Roster): Promise<void> {
  const tmp = join(dirname(path), `.${basename(path)}.${randomBytes(6).toString('hex')}.tmp`);
  try {
    const handle = await open(tmp, 'wx', ROSTER_MODE);
    try {
      await handle.chmod(ROSTER_MODE);
      await handle.writeFile(next.bytes);
      await handle.sync();
    } finally {
      await handle.close();
    }
    const onDisk = await readFile(path);
    if (!onDisk.equals(from.bytes)) {
      const now = withRosterPath(path, () => verifyRoster(onDisk, from.ca));
      const order = withRosterPath(path, () => compareRoster(from, now));
      if (order === 'older') {
        throw new CliError(
          `${path}: put back to roster v${now.version} (older than v${from.version}) while this command ran; nothing was written (RosterRollback)`,
        );
      }
      throw new CliError(
        `${path}: changed to another roster v${now.version} while this command ran; nothing was written, run it again (RosterConflict)`,
      );
    }
    await rename(tmp, path);
  } catch (err) {
    await rm(tmp, { force: true });
    if (err instanceof CliError) throw err;
    throw new CliError(fileProblem(path, err, 'write'));
  }
}

const count = (n: number, word: string, names: readonly string[] = []): string =>
  `${n} ${word}${n === 1 ? '' : 's'}${names.length > 0 ? ` (${names.join(', ')})` : ''}`;

/**
 * `roster vN: CHANGE; M members (a, b), R relays (relay), K removed`, one line, stable for scripts:
 * names are identities (no spaces, commas or parentheses); CHANGE is "created", "added NAME",
 * "added relay NAME" or "removed NAME" with " (REASON)" when there is one.
 */
export function rosterLine(roster: Roster, change: string): string {
  return (
    `roster v${roster.version}: ${change}; ${count(roster.members.length, 'member', roster.memberNames)}, ` +
    `${count(roster.relays.length, 'relay', roster.relayNames)}, ${roster.removed.length} removed\n`
  );
}
