/**
 * The roster through the CLI, as real processes on real files: group create writes roster.scx v1,
 * add-member and remove-member write the next versions and print one "roster vN:" line, inspect
 * shows it, and a tampered, foreign or missing roster is refused with nothing written.
 */
import { createHash } from 'node:crypto';
import {
  copyFileSync,
  existsSync,
  mkdtempSync,
  readdirSync,
  readFileSync,
  rmSync,
  statSync,
  writeFileSync,
} from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { beforeAll, describe, expect, it } from 'vitest';
import { Certificate, readBundle } from '../../src-main/core/pki/index.js';
import { verifyRoster, type Roster } from '../../src-main/core/roster/index.js';
import { FAST_KDF, PASSWORD, oneLineError, runCli, type RunResult } from './cli-group-run.js';

const CA_ENV = { SECURECHAT_CA_PASSWORD: 'the organiser keeps this one' };
const tempDir = (): string => mkdtempSync(join(tmpdir(), 'scx-cli-roster-'));
const sha256 = (path: string): string => createHash('sha256').update(readFileSync(path)).digest('hex');
const mode = (path: string): number => statSync(path).mode & 0o777;
const caOf = (dir: string): Certificate => Certificate.fromPem(readFileSync(join(dir, 'ca.pem'), 'utf8'));
const rosterAt = (path: string, ca: Certificate): Roster => verifyRoster(readFileSync(path), ca);
const bundleCert = (path: string): Certificate => readBundle(readFileSync(path), PASSWORD).certificate;

/** The one "roster vN:" line of a run's stdout (there must be exactly one). */
function rosterLines(r: RunResult): string[] {
  return r.stdout.split('\n').filter((l) => l.startsWith('roster v'));
}

async function createGroup(dir: string, extra: string[] = []): Promise<void> {
  const r = await runCli(
    ['group', 'create', '--out', dir, '--members', 'alice,bob,carol', ...extra, ...FAST_KDF],
    PASSWORD,
    CA_ENV,
  );
  expect(r.stderr).toBe('');
  expect(r.code).toBe(0);
}

const addMember = (dir: string, name: string, extra: string[] = []): Promise<RunResult> =>
  runCli(
    ['group', 'add-member', '--ca', join(dir, 'ca.p12'), '--name', name, ...extra, ...FAST_KDF],
    PASSWORD,
    CA_ENV,
  );

describe('the roster through the group commands', () => {
  let dir: string;
  let ca: Certificate;
  let rosterPath: string;
  let created: RunResult;

  beforeAll(async () => {
    dir = tempDir();
    created = await runCli(
      ['group', 'create', '--out', dir, '--members', 'alice,bob,carol', '--name', 'Équipe Zoë', ...FAST_KDF],
      PASSWORD,
      CA_ENV,
    );
    expect(created.code, created.stderr).toBe(0);
    ca = caOf(dir);
    rosterPath = join(dir, 'roster.scx');
  });

  it('create writes roster v1 (0644) listing every member and the relay with their bundles\u2019 certificates', () => {
    expect(mode(rosterPath)).toBe(0o644);
    const v1 = rosterAt(rosterPath, ca);
    expect(v1.version).toBe(1);
    expect(v1.name).toBe('Équipe Zoë');
    expect(v1.groupId).toBe(ca.fingerprintHex);
    expect(v1.memberNames).toEqual(['alice', 'bob', 'carol']);
    expect(v1.relayNames).toEqual(['relay']);
    for (const name of ['alice', 'bob', 'carol']) {
      expect(v1.member(name)?.fingerprintHex).toBe(bundleCert(join(dir, `${name}.p12`)).fingerprintHex);
    }
    expect(v1.relay('relay')?.fingerprintHex).toBe(bundleCert(join(dir, 'relay.p12')).fingerprintHex);
    expect(rosterLines(created)).toEqual([
      'roster v1: created; 3 members (alice, bob, carol), 1 relay (relay), 0 removed',
    ]);
    expect(ca.name).toBe('Équipe Zoë'); // --name is the CA's name too
  });

  it('add-member writes v2 with the new bundle\u2019s certificate and prints one roster line', async () => {
    const r = await addMember(dir, 'dave');
    expect(r.stderr).toBe('');
    expect(r.code).toBe(0);
    expect(rosterLines(r)).toEqual([
      'roster v2: added dave; 4 members (alice, bob, carol, dave), 1 relay (relay), 0 removed',
    ]);
    const v2 = rosterAt(rosterPath, ca);
    expect(v2.version).toBe(2);
    expect(v2.member('dave')?.fingerprintHex).toBe(bundleCert(join(dir, 'dave.p12')).fingerprintHex);
    expect(mode(rosterPath)).toBe(0o644);
    expect(readdirSync(dir).filter((f) => f.endsWith('.tmp'))).toEqual([]);
  });

  it('remove-member writes v3: carol moves to removed with the reason; no bundle password needed', async () => {
    const carol = bundleCert(join(dir, 'carol.p12'));
    const r = await runCli(
      ['group', 'remove-member', '--ca', join(dir, 'ca.p12'), '--name', 'carol', '--reason', 'lost laptop'],
      null,
      CA_ENV,
    );
    expect(r.stderr).toBe('');
    expect(r.code).toBe(0);
    expect(r.stdout).toBe(
      'roster v3: removed carol (lost laptop); 3 members (alice, bob, dave), 1 relay (relay), 1 removed\n',
    );
    const v3 = rosterAt(rosterPath, ca);
    expect(v3.version).toBe(3);
    expect(v3.isMember(carol.fingerprintHex)).toBe(false);
    expect(v3.removedEntry(carol.fingerprintHex)).toMatchObject({ name: 'carol', reason: 'lost laptop' });
    expect(v3.removedEntry(carol.fingerprintHex)?.removedAt).toBe(v3.issuedAt);
  });

  it('inspect shows the roster: group, id, version, issue time, members, relays, removed', async () => {
    const v3 = rosterAt(rosterPath, ca);
    const r = await runCli(['inspect', rosterPath], null);
    expect(r.stderr).toBe('');
    expect(r.code).toBe(0);
    const out = r.stdout;
    expect(out).toMatch(/group roster, signed by the group CA/);
    expect(out).toMatch(/group:\s+Équipe Zoë\n/);
    expect(out).toContain(ca.fingerprintDisplay);
    expect(out).toContain(ca.fingerprintHex);
    expect(out).toMatch(/version:\s+3\n/);
    expect(out).toContain(new Date(v3.issuedAt).toISOString());
    for (const m of v3.members)
      expect(out).toMatch(new RegExp(`${m.name}\\s+${m.certificate.fingerprintDisplay}`));
    expect(out).toMatch(new RegExp(`relay\\s+${must(v3.relays[0]).certificate.fingerprintDisplay}`));
    const removed = must(v3.removed[0]);
    expect(out).toMatch(/removed:\s+1\n/);
    expect(out).toContain(`on ${new Date(removed.removedAt).toISOString()}: lost laptop`);
    const json = await runCli(['inspect', '--json', rosterPath], null);
    expect(JSON.parse(json.stdout)).toMatchObject({
      kind: 'roster',
      group: 'Équipe Zoë',
      groupId: ca.fingerprintHex,
      version: 3,
      members: [{ name: 'alice' }, { name: 'bob' }, { name: 'dave' }],
      relays: [{ name: 'relay' }],
      removed: [{ name: 'carol', fingerprintHex: removed.fingerprint, reason: 'lost laptop' }],
    });
  });

  it('refuses a listed name even with --force, an unknown one to remove; a removed name may come back', async () => {
    const before = sha256(rosterPath);
    const again = await addMember(dir, 'alice', ['--force']);
    expect(again.code).toBe(1);
    expect(oneLineError(again)).toMatch(/"alice" is already in the roster \(v3\).*\(RosterDuplicate\)$/);
    const unknown = await runCli(
      ['group', 'remove-member', '--ca', join(dir, 'ca.p12'), '--name', 'zed'],
      null,
      CA_ENV,
    );
    expect(unknown.code).toBe(1);
    expect(oneLineError(unknown)).toMatch(
      /cannot remove "zed" from roster v3: no member has that name \(RosterUnknownMember\)$/,
    );
    expect(sha256(rosterPath)).toBe(before);
    const back = await addMember(dir, 'carol', ['--force']);
    expect(back.code, back.stderr).toBe(0);
    expect(rosterLines(back)).toEqual([
      'roster v4: added carol; 4 members (alice, bob, carol, dave), 1 relay (relay), 1 removed',
    ]);
  });

  it('add-member --relay lists a relay certificate among the relays', async () => {
    const r = await addMember(dir, 'node2', ['--relay']);
    expect(r.code, r.stderr).toBe(0);
    expect(rosterLines(r)).toEqual([
      'roster v5: added relay node2; 4 members (alice, bob, carol, dave), 2 relays (node2, relay), 1 removed',
    ]);
    const v5 = rosterAt(rosterPath, ca);
    const node2 = bundleCert(join(dir, 'node2.p12'));
    expect(node2.role).toBe('relay');
    expect(v5.isRelay(node2.fingerprintHex)).toBe(true);
    expect(v5.isMember(node2.fingerprintHex)).toBe(false);
  });

  it('--roster FILE elsewhere is read and written instead of the one beside ca.p12', async () => {
    const elsewhere = join(tempDir(), 'team-roster.scx');
    copyFileSync(rosterPath, elsewhere);
    const beside = sha256(rosterPath);
    const r = await addMember(dir, 'erin', ['--roster', elsewhere]);
    expect(r.code, r.stderr).toBe(0);
    expect(rosterLines(r)[0]).toMatch(/^roster v6: added erin; /);
    expect(rosterAt(elsewhere, ca).member('erin')).toBeDefined();
    expect(sha256(rosterPath)).toBe(beside);
    const removed = await runCli(
      ['group', 'remove-member', '--ca', join(dir, 'ca.p12'), '--name', 'erin', '--roster', elsewhere],
      null,
      CA_ENV,
    );
    expect(removed.stdout).toMatch(/^roster v7: removed erin; 4 members /);
    expect(sha256(rosterPath)).toBe(beside);
  });
});

describe('a roster that cannot be trusted', () => {
  let dir: string;

  beforeAll(async () => {
    dir = tempDir();
    await createGroup(dir);
  });

  it('tampered: add-member, remove-member and inspect refuse it (RosterSignature), nothing is written', async () => {
    const path = join(dir, 'roster.scx');
    const good = readFileSync(path);
    const bad = Buffer.from(good);
    // A byte of the body (the JSON, mid-file): the name of a member or a certificate byte.
    const at = Math.floor(bad.length / 2);
    bad[at] = (bad[at] as number) ^ 0x01;
    writeFileSync(path, bad);
    const add = await addMember(dir, 'mallory');
    expect(add.code).toBe(1);
    expect(oneLineError(add)).toBe(
      `securechat-x: ${path}: the roster's signature does not verify with the group CA (RosterSignature)`,
    );
    expect(existsSync(join(dir, 'mallory.p12'))).toBe(false);
    const remove = await runCli(
      ['group', 'remove-member', '--ca', join(dir, 'ca.p12'), '--name', 'bob'],
      null,
      CA_ENV,
    );
    expect(remove.code).toBe(1);
    expect(oneLineError(remove)).toMatch(/\(RosterSignature\)$/);
    const inspect = await runCli(['inspect', path], null);
    expect(inspect.code).toBe(1);
    expect(oneLineError(inspect)).toMatch(/\(RosterSignature\)$/);
    expect(readFileSync(path).equals(bad)).toBe(true);
    writeFileSync(path, good);
  });

  it('of another group: refused (RosterForeignGroup)', async () => {
    const other = tempDir();
    await createGroup(other);
    const r = await addMember(dir, 'mallory', ['--roster', join(other, 'roster.scx')]);
    expect(r.code).toBe(1);
    expect(oneLineError(r)).toMatch(/was not issued by the group CA .*\(RosterForeignGroup\)$/);
    expect(existsSync(join(dir, 'mallory.p12'))).toBe(false);
  });

  it('missing: add-member says where it looked and writes no bundle', async () => {
    const r = await addMember(dir, 'mallory', ['--roster', join(dir, 'nope.scx')]);
    expect(r.code).toBe(1);
    expect(oneLineError(r)).toMatch(/no roster at .*nope\.scx/);
    expect(existsSync(join(dir, 'mallory.p12'))).toBe(false);
  });

  it('group create never overwrites a roster.scx without --force; a refusal writes nothing', async () => {
    const d = tempDir();
    writeFileSync(join(d, 'roster.scx'), 'keep me');
    const args = ['group', 'create', '--out', d, '--members', 'alice', ...FAST_KDF];
    const r = await runCli(args, PASSWORD, CA_ENV);
    expect(r.code).toBe(1);
    expect(oneLineError(r)).toMatch(new RegExp(`refusing to overwrite ${join(d, 'roster.scx')}`));
    expect(readdirSync(d)).toEqual(['roster.scx']);
    const forced = await runCli([...args, '--force'], PASSWORD, CA_ENV);
    expect(forced.code).toBe(0);
    expect(rosterAt(join(d, 'roster.scx'), caOf(d)).memberNames).toEqual(['alice']);
    rmSync(d, { recursive: true, force: true });
  });

  it('create: --group-name still names the group; --name and --group-name must agree', async () => {
    const d = join(tempDir(), 'g');
    const old = await runCli(
      ['group', 'create', '--out', d, '--members', 'alice', '--group-name', 'Old Spelling', ...FAST_KDF],
      PASSWORD,
      CA_ENV,
    );
    expect(old.code, old.stderr).toBe(0);
    expect(rosterAt(join(d, 'roster.scx'), caOf(d)).name).toBe('Old Spelling');
    const both = await runCli(
      ['group', 'create', '--out', join(d, 'x'), '--members', 'a', '--name', 'A', '--group-name', 'B'],
      PASSWORD,
      CA_ENV,
    );
    expect(both.code).toBe(2);
    expect(oneLineError(both)).toMatch(/--name and --group-name/);
  });

  it('remove-member: bad flags are usage errors (exit 2) and write nothing', async () => {
    const before = sha256(join(dir, 'roster.scx'));
    for (const [args, pattern] of [
      [['--name', 'bob'], /--ca is required/],
      [['--ca', join(dir, 'ca.p12')], /--name is required/],
      [['--ca', join(dir, 'ca.p12'), '--name', 'b b'], /not a valid member name/],
      [
        ['--ca', join(dir, 'ca.p12'), '--name', 'bob', '--reason', 'x'.repeat(201)],
        /--reason must be one line/,
      ],
      [
        ['--ca', join(dir, 'ca.p12'), '--name', 'bob', '--reason', 'a\nroster v9: forged'],
        /--reason must be one line/,
      ],
    ] as const) {
      const r = await runCli(['group', 'remove-member', ...args], null, CA_ENV);
      expect(r.code, r.stderr).toBe(2);
      expect(oneLineError(r)).toMatch(pattern);
    }
    expect(sha256(join(dir, 'roster.scx'))).toBe(before);
  });
});

function must<T>(v: T | undefined): T {
  if (v === undefined) throw new Error('missing');
  return v;
}
