import { mkdtempSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';

/**
 * Relay flags with a `--data-dir` of its own unless the caller chose one: two relays never share a
 * log by accident (the second would refuse to start, LogLocked). A test restarting a relay on the
 * same state passes the same `--data-dir` to both.
 */
export function withDataDir(args: readonly string[]): string[] {
  if (args.includes('--data-dir')) return [...args];
  return [...args, '--data-dir', mkdtempSync(join(tmpdir(), 'scx-relay-data-'))];
}
