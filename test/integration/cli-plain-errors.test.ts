/**
 * For every command, a plain answer to `--password` (passwords never come from arguments) and
 * plain words, naming the path, for a file that is missing, a folder or unreadable: never ENOENT,
 * EISDIR or EACCES. Real CLI processes; the unreadable file is made unreadable for real (as root,
 * the CLI runs without the capabilities that bypass file permissions).
 */
import { chmodSync, existsSync, mkdirSync, mkdtempSync, readFileSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { beforeAll, describe, expect, it } from 'vitest';
import { FAST_KDF, PASSWORD, oneLineError, runCli } from './cli-group-run.js';

const CA_ENV = { SECURECHAT_CA_PASSWORD: 'the organiser keeps this one' };
const tempDir = (): string => mkdtempSync(join(tmpdir(), 'scx-cli-errors-'));

describe('every command', () => {
  let dir: string;
  const commands = (d: string): string[][] => [
    ['group', 'create', '--out', join(d, 'new'), '--members', 'bob'],
    ['group', 'add-member', '--ca', join(d, 'ca.p12'), '--name', 'bob'],
    ['inspect', join(d, 'alice.p12')],
    ['relay', '--bundle', join(d, 'relay.p12'), '--port', '0'],
    ['chat', '--bundle', join(d, 'alice.p12'), '--relay', '127.0.0.1:9'],
  ];

  beforeAll(async () => {
    dir = tempDir();
    expect(
      (await runCli(['group', 'create', '--out', dir, '--members', 'alice', ...FAST_KDF], PASSWORD, CA_ENV))
        .code,
    ).toBe(0);
  });

  it('answers --password (and --ca-password) with where passwords come from, exit 2', async () => {
    for (const args of commands(dir)) {
      for (const flag of [['--password', 'hunter22'], ['--password=hunter22'], ['--ca-password', 'x']]) {
        const r = await runCli([...args, ...flag]);
        expect(r.code, `${args.slice(0, 2).join(' ')} ${flag[0]}: ${r.stderr}`).toBe(2);
        const line = oneLineError(r);
        expect(line).toMatch(
          /passwords come from SECURECHAT_PASSWORD .*or --password-file FILE.*never from an argument/,
        );
        expect(line).not.toMatch(/Unknown option|hunter22/);
      }
    }
    expect(existsSync(join(dir, 'new'))).toBe(false);
  });

  it('names a missing file or a folder in plain words', async () => {
    const missing = join(dir, 'missing.p12');
    const folder = join(dir, 'a-folder');
    mkdirSync(folder);
    for (const [args, pattern] of [
      [['inspect', missing], `no file at ${missing}`],
      [['inspect', folder], `${folder} is a folder, not a file`],
      [['chat', '--bundle', missing, '--relay', '127.0.0.1:9'], `no file at ${missing}`],
      [['chat', '--bundle', folder, '--relay', '127.0.0.1:9'], `${folder} is a folder, not a file`],
      [['relay', '--bundle', missing, '--port', '0'], `no file at ${missing}`],
      [['relay', '--bundle', folder, '--port', '0'], `${folder} is a folder, not a file`],
      [['group', 'add-member', '--ca', folder, '--name', 'x'], `${folder} is a folder, not a file`],
      [
        ['inspect', join(dir, 'alice.p12'), '--password-file', missing],
        `cannot read the password file: no file at ${missing}`,
      ],
    ] as const) {
      const r = await runCli([...args], PASSWORD, CA_ENV);
      expect(r.code, args.join(' ')).toBe(1);
      const line = oneLineError(r);
      expect(line).toContain(pattern);
      expect(line).not.toMatch(/ENOENT|EISDIR/);
    }
  });

  it('says "no permission to read" for a file it may not read', async () => {
    const locked = join(dir, 'locked.p12');
    writeFileSync(locked, readFileSync(join(dir, 'alice.p12')));
    chmodSync(locked, 0o000);
    // root reads anything: drop the capabilities that let it, for the CLI process only.
    const asUser =
      process.getuid?.() === 0 ? ['setpriv', '--bounding-set=-dac_override,-dac_read_search', '--'] : [];
    for (const args of [
      ['inspect', locked],
      ['chat', '--bundle', locked, '--relay', '127.0.0.1:9'],
      ['relay', '--bundle', locked, '--port', '0'],
      ['inspect', join(dir, 'alice.p12'), '--password-file', locked],
    ]) {
      const r = await runCli(args, PASSWORD, {}, asUser);
      expect(r.code, `${args.join(' ')}: ${r.stderr}`).toBe(1);
      expect(oneLineError(r)).toContain(`no permission to read ${locked}`);
      expect(r.stderr).not.toMatch(/EACCES/);
    }
  });
});
