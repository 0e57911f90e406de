/**
 * roster.scx on disk (src-main/cli/roster-file.ts), on real files: the next version replaces the
 * file only if it still holds the version the change was made from; the "roster vN:" line.
 */
import { mkdtempSync, readdirSync, readFileSync, statSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { beforeAll, describe, expect, it } from 'vitest';
import type { Certificate } from '../../src-main/core/pki/index.js';
import {
  buildRoster,
  nextRoster,
  signRoster,
  verifyRoster,
  type Roster,
} from '../../src-main/core/roster/index.js';
import { CliError } from '../../src-main/cli/cli-error.js';
import { readRosterFile, replaceRosterFile, rosterLine } from '../../src-main/cli/roster-file.js';
import { makeRosterFixtures, type RosterFixtures } from '../helpers/roster-fixtures.js';

let f: RosterFixtures;
let v1: Roster;
let v2: Roster;
let v2fork: Roster;
let v3: Roster;

const issue = (body: Parameters<typeof signRoster>[0]): Roster =>
  verifyRoster(signRoster(body, f.ca), f.ca.certificate);

async function refusal(promise: Promise<unknown>): Promise<string> {
  try {
    await promise;
  } catch (err) {
    expect(err).toBeInstanceOf(CliError);
    return (err as CliError).message;
  }
  throw new Error('expected a refusal');
}

beforeAll(async () => {
  f = await makeRosterFixtures();
  v1 = issue(
    buildRoster({
      ca: f.ca.certificate,
      name: 'team',
      members: [f.members.alice, f.members.bob, f.members.carol] as Certificate[],
      relays: [f.relays.relay as Certificate],
    }),
  );
  v2 = issue(nextRoster(v1, { kind: 'add-member', certificate: f.members.dave as Certificate }));
  v2fork = issue(nextRoster(v1, { kind: 'add-member', certificate: f.members.erin as Certificate }));
  v3 = issue(nextRoster(v2, { kind: 'remove-member', name: 'carol', reason: 'lost laptop' }));
}, 60_000);

describe('replaceRosterFile', () => {
  it('replaces the version it was made from, 0644, leaving no temporary file', async () => {
    const dir = mkdtempSync(join(tmpdir(), 'scx-roster-file-'));
    const path = join(dir, 'roster.scx');
    writeFileSync(path, v1.bytes, { mode: 0o600 });
    await replaceRosterFile(path, v1, v2);
    expect(readFileSync(path).equals(v2.bytes)).toBe(true);
    expect(statSync(path).mode & 0o777).toBe(0o644);
    expect(readdirSync(dir)).toEqual(['roster.scx']);
    expect((await readRosterFile(path, f.ca.certificate)).version).toBe(2);
  });

  it('refuses when the file was put back to an older version meanwhile (RosterRollback)', async () => {
    const dir = mkdtempSync(join(tmpdir(), 'scx-roster-file-'));
    const path = join(dir, 'roster.scx');
    // The command read v2 and made v3; by the time it writes, someone restored v1.
    writeFileSync(path, v1.bytes);
    const message = await refusal(replaceRosterFile(path, v2, v3));
    expect(message).toMatch(
      /put back to roster v1 \(older than v2\).*nothing was written \(RosterRollback\)$/,
    );
    expect(readFileSync(path).equals(v1.bytes)).toBe(true);
    expect(readdirSync(dir)).toEqual(['roster.scx']);
  });

  it('refuses when another version was written meanwhile (RosterConflict)', async () => {
    const dir = mkdtempSync(join(tmpdir(), 'scx-roster-file-'));
    const path = join(dir, 'roster.scx');
    for (const meanwhile of [v2fork, v3]) {
      writeFileSync(path, meanwhile.bytes);
      const message = await refusal(replaceRosterFile(path, v2, v3));
      expect(message).toMatch(/changed to another roster v\d while this command ran.*\(RosterConflict\)$/);
      expect(readFileSync(path).equals(meanwhile.bytes)).toBe(true);
    }
    expect(readdirSync(dir)).toEqual(['roster.scx']);
  });

  it('refuses when the file no longer verifies, with the roster code', async () => {
    const dir = mkdtempSync(join(tmpdir(), 'scx-roster-file-'));
    const path = join(dir, 'roster.scx');
    writeFileSync(path, 'junk');
    expect(await refusal(replaceRosterFile(path, v1, v2))).toMatch(/\(RosterEncoding\)$/);
    expect(await refusal(readRosterFile(path, f.ca.certificate))).toMatch(
      /^.*roster\.scx: not a roster: .*\(RosterEncoding\)$/,
    );
  });
});

describe('rosterLine', () => {
  it('says the version, the change and who is listed, on one line', () => {
    expect(rosterLine(v1, 'created')).toBe(
      'roster v1: created; 3 members (alice, bob, carol), 1 relay (relay), 0 removed\n',
    );
    expect(rosterLine(v3, 'removed carol (lost laptop)')).toBe(
      'roster v3: removed carol (lost laptop); 3 members (alice, bob, dave), 1 relay (relay), 1 removed\n',
    );
    const empty = issue(
      nextRoster(
        issue(
          nextRoster(issue(nextRoster(v1, { kind: 'remove-member', name: 'alice' })), {
            kind: 'remove-member',
            name: 'bob',
          }),
        ),
        { kind: 'remove-member', name: 'carol' },
      ),
    );
    expect(rosterLine(empty, 'removed carol')).toBe(
      'roster v4: removed carol; 0 members, 1 relay (relay), 3 removed\n',
    );
  });
});
