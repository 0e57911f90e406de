/**
 * group create / add-member: the CA bundle's own password, --generate-passwords, non-Latin group
 * names and progress on a terminal. Real CLI processes throughout.
 */
import { execFileSync } from 'node:child_process';
import { existsSync, mkdtempSync, readdirSync, readFileSync, statSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { beforeAll, describe, expect, it } from 'vitest';
import { PkiError, readBundle } from '../../src-main/core/pki/index.js';
import { CLI, FAST_KDF, PASSWORD, oneLineError, runCli } from './cli-group-run.js';

const CA_PASSWORD = 'the organiser keeps this one';
const CA_ENV = { SECURECHAT_CA_PASSWORD: CA_PASSWORD };
const tempDir = (): string => mkdtempSync(join(tmpdir(), 'scx-cli-pw-'));
const mode = (path: string): number => statSync(path).mode & 0o777;
const open = (path: string, password: string) => readBundle(readFileSync(path), password);
function codeOpening(path: string, password: string): string {
  try {
    open(path, password);
    return 'opened';
  } catch (err) {
    return err instanceof PkiError ? err.code : String(err);
  }
}

describe('the CA bundle password', () => {
  let dir: string;

  beforeAll(async () => {
    dir = tempDir();
    const r = await runCli(
      ['group', 'create', '--out', dir, '--members', 'alice', ...FAST_KDF],
      PASSWORD,
      CA_ENV,
    );
    expect(r.stderr).toBe('');
    expect(r.code).toBe(0);
  });

  it('ca.p12 is under SECURECHAT_CA_PASSWORD, the member and relay bundles under SECURECHAT_PASSWORD', () => {
    expect(open(join(dir, 'ca.p12'), CA_PASSWORD).certificate.isCa).toBe(true);
    expect(codeOpening(join(dir, 'ca.p12'), PASSWORD)).toBe('WrongPassword');
    expect(open(join(dir, 'alice.p12'), PASSWORD).certificate.name).toBe('alice');
    expect(open(join(dir, 'relay.p12'), PASSWORD).certificate.role).toBe('relay');
  });

  it('takes --ca-password-file, and without any CA password warns and uses the member password', async () => {
    const d = tempDir();
    writeFileSync(join(d, 'ca-pw'), 'from the CA password file\n');
    const withFile = await runCli(
      [
        'group',
        'create',
        '--out',
        join(d, 'a'),
        '--members',
        'bob',
        '--ca-password-file',
        join(d, 'ca-pw'),
        ...FAST_KDF,
      ],
      PASSWORD,
    );
    expect(withFile.stderr).toBe('');
    expect(open(join(d, 'a', 'ca.p12'), 'from the CA password file').certificate.isCa).toBe(true);

    const none = await runCli(
      ['group', 'create', '--out', join(d, 'b'), '--members', 'bob', ...FAST_KDF],
      PASSWORD,
    );
    expect(none.code).toBe(0);
    expect(oneLineError(none)).toMatch(
      /^securechat-x: warning: no CA password \(SECURECHAT_CA_PASSWORD or --ca-password-file\)/,
    );
    expect(open(join(d, 'b', 'ca.p12'), PASSWORD).certificate.isCa).toBe(true);
  });

  it('refuses a short CA password and writes nothing', async () => {
    const d = join(tempDir(), 'g');
    const r = await runCli(['group', 'create', '--out', d, '--members', 'bob', ...FAST_KDF], PASSWORD, {
      SECURECHAT_CA_PASSWORD: 'short',
    });
    expect(r.code).toBe(1);
    expect(oneLineError(r)).toMatch(/the CA password must have at least 8 characters/);
    expect(existsSync(d)).toBe(false);
  });

  it('add-member opens ca.p12 with the CA password and writes the new bundle under SECURECHAT_PASSWORD', async () => {
    const r = await runCli(
      ['group', 'add-member', '--ca', join(dir, 'ca.p12'), '--name', 'dave', ...FAST_KDF],
      'dave has his own password',
      CA_ENV,
    );
    expect(r.stderr).toBe('');
    expect(r.code).toBe(0);
    expect(open(join(dir, 'dave.p12'), 'dave has his own password').certificate.name).toBe('dave');
  });

  it('add-member without a CA password tries the member password, says so, and writes nothing', async () => {
    const r = await runCli([
      'group',
      'add-member',
      '--ca',
      join(dir, 'ca.p12'),
      '--name',
      'erin',
      ...FAST_KDF,
    ]);
    expect(r.code).toBe(1);
    expect(oneLineError(r)).toMatch(
      /wrong password for this certificate bundle \(WrongPassword\); with no SECURECHAT_CA_PASSWORD or --ca-password-file, the SECURECHAT_PASSWORD/,
    );
    expect(existsSync(join(dir, 'erin.p12'))).toBe(false);
  });
});

describe('group create --generate-passwords', () => {
  let dir: string;
  let lines: string[][];

  beforeAll(async () => {
    dir = tempDir();
    // No SECURECHAT_PASSWORD at all: the member passwords are generated.
    const r = await runCli(
      ['group', 'create', '--out', dir, '--members', 'alice,bob', '--generate-passwords', ...FAST_KDF],
      null,
      CA_ENV,
    );
    expect(r.stderr).toBe('');
    expect(r.code).toBe(0);
    expect(r.stdout).toContain(join(dir, 'passwords.txt'));
    lines = readFileSync(join(dir, 'passwords.txt'), 'utf8')
      .split('\n')
      .filter(Boolean)
      .map((l) => l.split('\t'));
  });

  it('writes passwords.txt 0600 with one "name<TAB>password" line per member and relay', () => {
    expect(mode(join(dir, 'passwords.txt'))).toBe(0o600);
    expect(lines.map((l) => l[0])).toEqual(['alice', 'bob', 'relay']);
    expect(lines.every((l) => l.length === 2)).toBe(true);
  });

  it('gives every bundle its own strong, typeable password that opens it (and only it)', () => {
    const passwords = lines.map((l) => l[1] as string);
    expect(new Set(passwords).size).toBe(3);
    for (const p of passwords) {
      // 32 Crockford base32 characters = 160 bits, in 8 groups of 4.
      expect(p).toMatch(/^[0-9a-hjkmnp-tv-z]{4}(-[0-9a-hjkmnp-tv-z]{4}){7}$/);
    }
    for (const [name, password] of lines) {
      expect(open(join(dir, `${name}.p12`), password as string).certificate.name).toBe(name);
    }
    expect(codeOpening(join(dir, 'alice.p12'), lines[1]?.[1] as string)).toBe('WrongPassword');
    expect(open(join(dir, 'ca.p12'), CA_PASSWORD).certificate.isCa).toBe(true);
  });

  it('never overwrites passwords.txt without --force, and a refusal writes nothing', async () => {
    const d = tempDir();
    writeFileSync(join(d, 'passwords.txt'), 'keep me');
    const args = ['group', 'create', '--out', d, '--members', 'carol', '--generate-passwords', ...FAST_KDF];
    const r = await runCli(args, null, CA_ENV);
    expect(r.code).toBe(1);
    expect(oneLineError(r)).toMatch(new RegExp(`refusing to overwrite ${join(d, 'passwords.txt')}`));
    expect(readdirSync(d)).toEqual(['passwords.txt']);
    const forced = await runCli([...args, '--force'], null, CA_ENV);
    expect(forced.code).toBe(0);
    expect(readFileSync(join(d, 'passwords.txt'), 'utf8')).toMatch(/^carol\t\S+\nrelay\t\S+\n$/);
    expect(mode(join(d, 'passwords.txt'))).toBe(0o600);
  });

  it('needs a CA password from somewhere, and refuses --password-file beside it', async () => {
    const d = join(tempDir(), 'g');
    const noCa = await runCli(
      ['group', 'create', '--out', d, '--members', 'a', '--generate-passwords'],
      null,
    );
    expect(noCa.code).toBe(2);
    expect(oneLineError(noCa)).toMatch(
      /no CA bundle password: set SECURECHAT_CA_PASSWORD or pass --ca-password-file/,
    );
    const both = await runCli(
      [
        'group',
        'create',
        '--out',
        d,
        '--members',
        'a',
        '--generate-passwords',
        '--password-file',
        '/dev/null',
      ],
      null,
      CA_ENV,
    );
    expect(both.code).toBe(2);
    expect(existsSync(d)).toBe(false);
  });
});

describe('group create: names and progress', () => {
  it('keeps a non-Latin group name: inspect and openssl show it intact', async () => {
    const dir = tempDir();
    const name = 'Équipe Zoë 日本';
    const r = await runCli(
      ['group', 'create', '--out', dir, '--members', 'alice', '--group-name', name, ...FAST_KDF],
      PASSWORD,
      CA_ENV,
    );
    expect(r.code, r.stderr).toBe(0);
    expect(r.stdout).toContain(`Created group "${name}"`);
    const inspect = await runCli(['inspect', join(dir, 'alice.p12')]);
    expect(inspect.stdout).toContain(`issuer:         ${name}\n`);
    expect(inspect.stdout).toContain(`group CA:       ${name}\n`);
    const subject = execFileSync(
      'openssl',
      ['x509', '-in', join(dir, 'ca.pem'), '-noout', '-subject', '-nameopt', 'utf8'],
      {
        encoding: 'utf8',
      },
    );
    expect(subject.trim()).toBe(`subject=CN=${name}, O=SecureChat-X group`);
  });

  it('shows progress on stderr only when it is a terminal', async () => {
    const dir = join(tempDir(), 'g');
    // `script` gives the CLI a pseudo-terminal; without one (every other test here) stderr stays empty.
    const command = [
      process.execPath,
      CLI,
      'group',
      'create',
      '--out',
      dir,
      '--members',
      'alice,bob',
      ...FAST_KDF,
    ]
      .map((a) => `'${a}'`)
      .join(' ');
    const out = execFileSync('script', ['-qec', command, '/dev/null'], {
      encoding: 'utf8',
      env: { ...process.env, SECURECHAT_PASSWORD: PASSWORD, ...CA_ENV },
    });
    expect(out).toContain('creating bundles: 0/4');
    expect(out).toContain('creating bundles: 4/4');
    expect(out).toContain('Created group');
  });
});
