import { existsSync, mkdtempSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { dirname, join } from 'node:path';

/**
 * Relay flags with a `--data-dir` of its own unless the caller chose one: two relays never share a
 * log by accident (the second would refuse to start, LogLocked). A test restarting a relay on the
 * same state passes the same `--data-dir` to both.
 */
export function withDataDir(args: readonly string[]): string[] {
  if (args.includes('--data-dir')) return [...args];
  return [...args, '--data-dir', mkdtempSync(join(tmpdir(), 'scx-relay-data-'))];
}

/**
 * Relay flags with `--roster` for the roster.scx beside the relay's bundle (makeTestGroup and
 * `group create` write one into the group's folder), unless the caller chose one. A relay meant to
 * start without a roster gets a bundle in a folder without roster.scx.
 */
export function withRoster(bundle: string, args: readonly string[]): string[] {
  if (args.includes('--roster')) return [...args];
  const roster = join(dirname(bundle), 'roster.scx');
  return existsSync(roster) ? [...args, '--roster', roster] : [...args];
}

/** Relay flags for tests: a data directory of its own and the group's roster (see above). */
export function relayTestArgs(bundle: string, args: readonly string[]): string[] {
  return withDataDir(withRoster(bundle, args));
}
