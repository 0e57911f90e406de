import { createHash } from 'node:crypto';
import {
  chmodSync,
  existsSync,
  mkdtempSync,
  readdirSync,
  readFileSync,
  statSync,
  writeFileSync,
} from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { beforeAll, describe, expect, it } from 'vitest';
import { Certificate, issueCertificate, readBundle, writeBundle } from '../../src-main/core/pki/index.js';
import { withValidity } from '../helpers/group.js';
import { FAST_KDF, PASSWORD, oneLineError, runCli } from './cli-group-run.js';

const tempDir = (): string => mkdtempSync(join(tmpdir(), 'scx-cli-'));
const sha256 = (path: string): string => createHash('sha256').update(readFileSync(path)).digest('hex');
const mode = (path: string): number => statSync(path).mode & 0o777;
const snapshot = (dir: string): Record<string, string> =>
  Object.fromEntries(
    readdirSync(dir)
      .sort()
      .map((f) => [f, sha256(join(dir, f))]),
  );

describe('securechat-x group create', () => {
  let dir: string;
  let stdout: string;

  beforeAll(async () => {
    dir = join(tempDir(), 'group'); // does not exist yet: create must make it
    const r = await runCli(
      ['group', 'create', '--out', dir, '--members', 'alice,bob,carol', ...FAST_KDF],
      PASSWORD,
      {
        SECURECHAT_CA_PASSWORD: PASSWORD,
      },
    );
    expect(r.stderr).toBe('');
    expect(r.code).toBe(0);
    stdout = r.stdout;
  });

  it('writes the CA bundle, the CA certificate and one bundle per member and relay', () => {
    expect(readdirSync(dir).sort()).toEqual([
      'alice.p12',
      'bob.p12',
      'ca.p12',
      'ca.pem',
      'carol.p12',
      'relay.p12',
      'roster.scx',
    ]);
  });

  it('writes private bundles 0600, the CA certificate and the roster 0644 and a private folder', () => {
    for (const f of ['alice.p12', 'bob.p12', 'carol.p12', 'relay.p12', 'ca.p12'])
      expect(mode(join(dir, f))).toBe(0o600);
    expect(mode(join(dir, 'ca.pem'))).toBe(0o644);
    expect(mode(join(dir, 'roster.scx'))).toBe(0o644);
    expect(mode(dir)).toBe(0o700);
  });

  it('issues every bundle from the same CA, under the one password, with the right roles', () => {
    const ca = Certificate.fromPem(readFileSync(join(dir, 'ca.pem'), 'utf8'));
    expect(ca.isCa).toBe(true);
    const caBundle = readBundle(readFileSync(join(dir, 'ca.p12')), PASSWORD);
    expect(caBundle.certificate.fingerprintHex).toBe(ca.fingerprintHex);
    for (const [name, role] of [
      ['alice', 'member'],
      ['bob', 'member'],
      ['carol', 'member'],
      ['relay', 'relay'],
    ] as const) {
      const b = readBundle(readFileSync(join(dir, `${name}.p12`)), PASSWORD);
      expect(b.certificate.name).toBe(name);
      expect(b.certificate.role).toBe(role);
      expect(b.ca.fingerprintHex).toBe(ca.fingerprintHex);
      expect(b.certificate.keyBits).toBe(2048);
    }
  });

  it('prints a summary naming each file, identity and grouped fingerprint', () => {
    const ca = Certificate.fromPem(readFileSync(join(dir, 'ca.pem'), 'utf8'));
    expect(stdout).toContain(ca.fingerprintDisplay);
    for (const name of ['alice', 'bob', 'carol', 'relay']) {
      const b = readBundle(readFileSync(join(dir, `${name}.p12`)), PASSWORD);
      const line = stdout.split('\n').find((l) => l.includes(join(dir, `${name}.p12`)));
      expect(line, name).toBeDefined();
      expect(line).toContain(name);
      expect(line).toContain(b.certificate.fingerprintDisplay);
    }
    expect(stdout).toContain(join(dir, 'ca.pem'));
    expect(stdout).not.toMatch(/PRIVATE KEY|BEGIN/);
  });

  it('refuses to overwrite existing files, names them, and writes nothing', async () => {
    const before = snapshot(dir);
    const r = await runCli(['group', 'create', '--out', dir, '--members', 'alice,dave', ...FAST_KDF]);
    expect(r.code).toBe(1);
    const msg = oneLineError(r);
    expect(msg).toMatch(/refusing to overwrite/);
    expect(msg).toContain(join(dir, 'ca.p12'));
    expect(msg).toContain(join(dir, 'alice.p12'));
    expect(msg).not.toContain('dave');
    expect(snapshot(dir)).toEqual(before); // dave.p12 was not written either
  });

  it('refuses when only one target exists, and writes none of the others', async () => {
    const d = tempDir();
    writeFileSync(join(d, 'bob.p12'), 'keep me');
    const r = await runCli(['group', 'create', '--out', d, '--members', 'alice,bob', ...FAST_KDF]);
    expect(r.code).toBe(1);
    expect(oneLineError(r)).toContain(join(d, 'bob.p12'));
    expect(readdirSync(d)).toEqual(['bob.p12']);
    expect(readFileSync(join(d, 'bob.p12'), 'utf8')).toBe('keep me');
  });

  it('refuses an --out that is a file', async () => {
    const file = join(tempDir(), 'not-a-folder');
    writeFileSync(file, 'x');
    const r = await runCli(['group', 'create', '--out', file, '--members', 'alice', ...FAST_KDF]);
    expect(r.code).toBe(1);
    expect(oneLineError(r)).toMatch(/exists and is not a folder/);
  });

  it('replaces everything with --force, restoring private modes', async () => {
    const d = tempDir();
    expect((await runCli(['group', 'create', '--out', d, '--members', 'alice', ...FAST_KDF])).code).toBe(0);
    const oldCa = sha256(join(d, 'ca.pem'));
    chmodSync(join(d, 'alice.p12'), 0o644);
    const r = await runCli(['group', 'create', '--out', d, '--members', 'alice', '--force', ...FAST_KDF]);
    expect(r.code).toBe(0);
    expect(sha256(join(d, 'ca.pem'))).not.toBe(oldCa);
    expect(mode(join(d, 'alice.p12'))).toBe(0o600);
    const alice = readBundle(readFileSync(join(d, 'alice.p12')), PASSWORD);
    expect(alice.ca.der.equals(Certificate.fromPem(readFileSync(join(d, 'ca.pem'), 'utf8')).der)).toBe(true);
    // No temporary files left behind.
    expect(readdirSync(d).sort()).toEqual(['alice.p12', 'ca.p12', 'ca.pem', 'relay.p12', 'roster.scx']);
  });

  it('honours --relay, --key-bits and --password-file', async () => {
    const d = tempDir();
    const pwFile = join(d, 'pw.txt');
    writeFileSync(pwFile, 'from a file, not the env\nsecond line ignored\n');
    const r = await runCli(
      [
        'group',
        'create',
        '--out',
        join(d, 'g'),
        '--members',
        'zed',
        '--relay',
        'hub',
        '--key-bits',
        '3072',
        '--password-file',
        pwFile,
        ...FAST_KDF,
      ],
      null,
    );
    // No CA password given: ca.p12 gets the file's password too, and the user is warned.
    expect(oneLineError(r)).toMatch(/warning: no CA password/);
    expect(r.code).toBe(0);
    expect(readBundle(readFileSync(join(d, 'g', 'ca.p12')), 'from a file, not the env').ca.name).toBeTruthy();
    const hub = readBundle(readFileSync(join(d, 'g', 'hub.p12')), 'from a file, not the env');
    expect(hub.certificate.role).toBe('relay');
    expect(hub.certificate.keyBits).toBe(3072);
    expect(hub.ca.keyBits).toBe(3072);
  });

  it.each([
    ['"ca" is reserved', ['--members', 'alice,ca'], /reserved/],
    ['"CA" is reserved too', ['--members', 'CA'], /reserved/],
    ['duplicates', ['--members', 'alice,bob,alice'], /twice/],
    ['names differing only in case', ['--members', 'alice,Alice'], /twice/],
    ['a member named like the relay', ['--members', 'alice,relay'], /same name as the relay/],
    [
      'a member named like a custom relay',
      ['--members', 'alice,hub', '--relay', 'hub'],
      /same name as the relay/,
    ],
    ['a relay named ca', ['--members', 'alice', '--relay', 'ca'], /reserved/],
    ['a space', ['--members', 'alice smith'], /not a valid member name/],
    ['unicode', ['--members', 'zoë'], /not a valid member name/],
    ['a slash', ['--members', '../evil'], /not a valid member name/],
    ['65 characters', ['--members', 'x'.repeat(65)], /not a valid member name/],
    ['an empty name', ['--members', 'alice,,bob'], /empty member name/],
    ['no members', ['--members', ''], /--members is required/],
    ['an invalid relay name', ['--members', 'alice', '--relay', 'a/b'], /not a valid relay name/],
  ])('rejects %s with a usage error and writes nothing', async (_why, args, pattern) => {
    const d = join(tempDir(), 'g');
    const r = await runCli(['group', 'create', '--out', d, ...args, ...FAST_KDF]);
    expect(r.code, r.stderr).toBe(2);
    expect(oneLineError(r)).toMatch(pattern);
    expect(existsSync(d)).toBe(false);
  });

  it.each([
    [['--members', 'a'], /--out is required/],
    [['--out', 'x'], /--members is required/],
    [['--out', 'x', '--members', 'a', '--key-bits', '1024'], /--key-bits must be 2048, 3072 or 4096/],
    [['--out', 'x', '--members', 'a', '--kdf-iterations', '100'], /--kdf-iterations must be an integer/],
    [['--out', 'x', '--members', 'a', '--kdf-iterations', '1e5'], /--kdf-iterations must be an integer/],
    [['--out', 'x', '--members', 'a', '--validity-days', '0'], /--validity-days must be an integer/],
    [
      ['--out', 'x', '--members', 'a', '--password', 'oops'],
      /--password: passwords come from SECURECHAT_PASSWORD .* or --password-file FILE .*never from an argument/,
    ],
    [['--out', 'x', '--members', 'a', 'extra'], /positional/i],
  ])('rejects bad flags %j with exit 2', async (args, pattern) => {
    const r = await runCli(['group', 'create', ...args]);
    expect(r.code, r.stderr).toBe(2);
    expect(oneLineError(r)).toMatch(pattern);
  });

  it('explains a missing password and writes nothing', async () => {
    const d = join(tempDir(), 'g');
    const r = await runCli(['group', 'create', '--out', d, '--members', 'alice', ...FAST_KDF], null);
    expect(r.code).toBe(2);
    expect(oneLineError(r)).toMatch(/SECURECHAT_PASSWORD.*--password-file/);
    expect(existsSync(d)).toBe(false);
  });

  it('refuses a short new password and an unreadable or empty password file', async () => {
    const d = tempDir();
    const short = await runCli(
      ['group', 'create', '--out', join(d, 'g'), '--members', 'a', ...FAST_KDF],
      'short',
    );
    expect(oneLineError(short)).toMatch(/at least 8 characters/);
    const missing = await runCli(
      ['group', 'create', '--out', join(d, 'g'), '--members', 'a', '--password-file', join(d, 'nope')],
      null,
    );
    expect(oneLineError(missing)).toMatch(/cannot read the password file/);
    writeFileSync(join(d, 'empty'), '\n');
    const empty = await runCli(
      ['group', 'create', '--out', join(d, 'g'), '--members', 'a', '--password-file', join(d, 'empty')],
      null,
    );
    expect(oneLineError(empty)).toMatch(/is empty/);
    expect(existsSync(join(d, 'g'))).toBe(false);
  });

  it('prints help for every command and subcommand', async () => {
    for (const args of [
      ['group', 'create', '--help'],
      ['group', 'add-member', '-h'],
      ['group', 'remove-member', '--help'],
      ['group', '--help'],
      ['inspect', '--help'],
    ]) {
      const r = await runCli(args);
      expect(r.code, `${args.join(' ')}: ${r.stderr}`).toBe(0);
      expect(r.stdout).toMatch(/^usage: securechat-x /);
    }
    const bare = await runCli(['group']);
    expect(bare.code).toBe(2);
    const unknown = await runCli(['group', 'destroy']);
    expect(unknown.code).toBe(2);
    expect(oneLineError(unknown)).toMatch(/unknown subcommand "destroy"/);
  });
});

describe('securechat-x group add-member', () => {
  let dir: string;

  beforeAll(async () => {
    dir = tempDir();
    const r = await runCli(['group', 'create', '--out', dir, '--members', 'alice', ...FAST_KDF]);
    expect(r.code).toBe(0);
  });

  it('issues a member bundle from the CA bundle, under the same password', async () => {
    const out = join(dir, 'dave.p12');
    const r = await runCli(
      ['group', 'add-member', '--ca', join(dir, 'ca.p12'), '--name', 'dave', '--out', out, ...FAST_KDF],
      PASSWORD,
      { SECURECHAT_CA_PASSWORD: PASSWORD },
    );
    expect(r.stderr).toBe('');
    expect(r.code).toBe(0);
    expect(mode(out)).toBe(0o600);
    const dave = readBundle(readFileSync(out), PASSWORD);
    expect(dave.certificate.name).toBe('dave');
    expect(dave.certificate.role).toBe('member');
    expect(dave.ca.der.equals(Certificate.fromPem(readFileSync(join(dir, 'ca.pem'), 'utf8')).der)).toBe(true);
    expect(r.stdout).toContain(dave.certificate.fingerprintDisplay);
  });

  it('defaults --out to NAME.p12 beside the CA bundle and issues relays with --relay', async () => {
    const r = await runCli([
      'group',
      'add-member',
      '--ca',
      join(dir, 'ca.p12'),
      '--name',
      'relay2',
      '--relay',
      ...FAST_KDF,
    ]);
    expect(r.code).toBe(0);
    expect(readBundle(readFileSync(join(dir, 'relay2.p12')), PASSWORD).certificate.role).toBe('relay');
  });

  it('refuses to overwrite without --force and replaces with it', async () => {
    // A file of that name, but no one the roster lists (a listed name is refused even with --force).
    const target = join(dir, 'stray.p12');
    writeFileSync(target, 'not a bundle');
    const before = sha256(target);
    const args = ['group', 'add-member', '--ca', join(dir, 'ca.p12'), '--name', 'stray', ...FAST_KDF];
    const r = await runCli(args);
    expect(r.code).toBe(1);
    expect(oneLineError(r)).toMatch(/refusing to overwrite/);
    expect(sha256(target)).toBe(before);
    const forced = await runCli([...args, '--force']);
    expect(forced.code).toBe(0);
    expect(sha256(target)).not.toBe(before);
    expect(readBundle(readFileSync(target), PASSWORD).certificate.name).toBe('stray');
  });

  it('reports a wrong CA password clearly and writes nothing', async () => {
    const r = await runCli(
      ['group', 'add-member', '--ca', join(dir, 'ca.p12'), '--name', 'erin', ...FAST_KDF],
      'not the password',
    );
    expect(r.code).toBe(1);
    expect(oneLineError(r)).toMatch(/wrong password.*\(WrongPassword\)/);
    expect(existsSync(join(dir, 'erin.p12'))).toBe(false);
  });

  it('refuses a member bundle in place of the CA bundle', async () => {
    const r = await runCli([
      'group',
      'add-member',
      '--ca',
      join(dir, 'alice.p12'),
      '--name',
      'frank',
      ...FAST_KDF,
    ]);
    expect(r.code).toBe(1);
    expect(oneLineError(r)).toMatch(/not the group CA bundle/);
    expect(existsSync(join(dir, 'frank.p12'))).toBe(false);
  });

  it('rejects bad names, a missing CA file and writing over the CA bundle', async () => {
    const ca = join(dir, 'ca.p12');
    const bad = await runCli(['group', 'add-member', '--ca', ca, '--name', 'bad name']);
    expect(bad.code).toBe(2);
    expect(oneLineError(bad)).toMatch(/not a valid member name/);
    const reserved = await runCli(['group', 'add-member', '--ca', ca, '--name', 'ca']);
    expect(reserved.code).toBe(2);
    const self = await runCli(['group', 'add-member', '--ca', ca, '--name', 'x', '--out', ca, '--force']);
    expect(self.code).toBe(2);
    expect(oneLineError(self)).toMatch(/must not be the CA bundle/);
    const missing = await runCli(['group', 'add-member', '--ca', join(dir, 'nope.p12'), '--name', 'gina']);
    expect(oneLineError(missing)).toMatch(/no file at .*nope\.p12/);
  });
});

describe('securechat-x inspect', () => {
  let dir: string;

  beforeAll(async () => {
    dir = tempDir();
    const r = await runCli(['group', 'create', '--out', dir, '--members', 'alice', ...FAST_KDF]);
    expect(r.code).toBe(0);
  });

  it('shows a member bundle: identity, role, issuer, serial, validity, key size, fingerprints, CA', async () => {
    const b = readBundle(readFileSync(join(dir, 'alice.p12')), PASSWORD);
    const r = await runCli(['inspect', join(dir, 'alice.p12')]);
    expect(r.code).toBe(0);
    const out = r.stdout;
    expect(out).toMatch(/PKCS#12 bundle/);
    expect(out).toMatch(/identity:\s+alice/);
    expect(out).toMatch(/role:\s+member \(clientAuth\)/);
    expect(out).toMatch(/issuer:\s+SecureChat-X Group CA/);
    expect(out).toContain(b.certificate.serialHex);
    expect(out).toContain(b.certificate.notBefore.toISOString());
    expect(out).toContain(b.certificate.notAfter.toISOString());
    expect(out).toMatch(/RSA 2048 bits/);
    expect(out).toContain(b.certificate.fingerprintDisplay);
    expect(out).toContain(b.certificate.fingerprintHex);
    expect(out).toMatch(/group CA:\s+SecureChat-X Group CA/);
    expect(out).toContain(b.ca.fingerprintDisplay);
    expect(out).not.toMatch(/PRIVATE KEY|BEGIN/);
  });

  it('prints JSON with --json', async () => {
    const r = await runCli(['inspect', join(dir, 'relay.p12'), '--json']);
    expect(r.code).toBe(0);
    const report = JSON.parse(r.stdout) as {
      kind: string;
      certificate: {
        identity: string;
        role: string;
        keyBits: number;
        fingerprintHex: string;
        status: string;
      };
      ca: { role: string; fingerprint: string };
    };
    expect(report.kind).toBe('pkcs12');
    expect(report.certificate).toMatchObject({
      identity: 'relay',
      role: 'relay',
      keyBits: 2048,
      status: 'valid',
    });
    expect(report.certificate.fingerprintHex).toMatch(/^[0-9a-f]{64}$/);
    expect(report.ca.role).toBe('ca');
    expect(report.ca.fingerprint).toMatch(/^[0-9A-F]{4}( [0-9A-F]{4}){15}$/);
  });

  it('shows a PEM certificate without needing a password', async () => {
    const ca = Certificate.fromPem(readFileSync(join(dir, 'ca.pem'), 'utf8'));
    const r = await runCli(['inspect', join(dir, 'ca.pem')], null);
    expect(r.code).toBe(0);
    expect(r.stdout).toMatch(/role:\s+group CA/);
    expect(r.stdout).toContain(ca.fingerprintDisplay);
    const json = await runCli(['inspect', '--json', join(dir, 'ca.pem')], null);
    expect(JSON.parse(json.stdout)).toMatchObject({
      kind: 'pem',
      certificates: [{ fingerprintHex: ca.fingerprintHex }],
    });
  });

  it('reports a wrong password, a missing password and unreadable files in one line', async () => {
    const wrong = await runCli(['inspect', join(dir, 'alice.p12')], 'nope nope nope');
    expect(wrong.code).toBe(1);
    expect(oneLineError(wrong)).toBe(
      `securechat-x: ${join(dir, 'alice.p12')}: wrong password for this certificate bundle (WrongPassword)`,
    );
    const none = await runCli(['inspect', join(dir, 'alice.p12')], null);
    expect(none.code).toBe(2);
    expect(oneLineError(none)).toMatch(/no bundle password/);
    writeFileSync(join(dir, 'junk.p12'), Buffer.alloc(500, 0x41));
    const junk = await runCli(['inspect', join(dir, 'junk.p12')]);
    expect(oneLineError(junk)).toMatch(/not a readable certificate bundle.*CorruptBundle/);
    writeFileSync(join(dir, 'key.pem'), '-----BEGIN PRIVATE KEY-----\nAAAA\n-----END PRIVATE KEY-----\n');
    expect(oneLineError(await runCli(['inspect', join(dir, 'key.pem')]))).toMatch(/holds no certificate/);
    expect(oneLineError(await runCli(['inspect', join(dir, 'none.p12')]))).toMatch(/no file at .*none\.p12/);
    const two = await runCli(['inspect', 'a', 'b']);
    expect(two.code).toBe(2);
  });

  describe('a bundle outside its validity period', () => {
    const YEAR = 365 * 86_400_000;
    // Whole seconds: that is what a certificate holds.
    const second = (ms: number): Date => new Date(Math.floor(ms / 1000) * 1000);
    const notAfter = second(Date.now() - 2 * YEAR);
    const notBefore = second(Date.now() + YEAR);
    let expiredPath: string;
    let futurePath: string;

    beforeAll(() => {
      const caBundle = readBundle(readFileSync(join(dir, 'ca.p12')), PASSWORD);
      const ca = { certificate: caBundle.certificate, privateKeyPem: caBundle.privateKeyPem };
      const write = (name: string, from: Date, to: Date): string => {
        const cred = withValidity(ca, issueCertificate(ca, { name, role: 'member' }), from, to);
        const path = join(dir, `${name}.p12`);
        writeFileSync(path, writeBundle(cred, ca.certificate, PASSWORD, { kdfIterations: 10_000 }));
        return path;
      };
      expiredPath = write('old', new Date(notAfter.getTime() - YEAR), notAfter);
      futurePath = write('early', notBefore, new Date(notBefore.getTime() + YEAR));
    });

    it('shows an expired bundle with WHEN it expired, exit 0', async () => {
      const r = await runCli(['inspect', expiredPath]);
      expect(r.stderr).toBe('');
      expect(r.code).toBe(0);
      expect(r.stdout).toMatch(/identity:\s+old/);
      expect(r.stdout).toMatch(new RegExp(`status:\\s+EXPIRED on ${notAfter.toISOString()}`));
      expect(r.stdout).toMatch(/group CA:\s+SecureChat-X Group CA/);
      const json = await runCli(['inspect', '--json', expiredPath]);
      expect(json.code).toBe(0);
      expect(JSON.parse(json.stdout)).toMatchObject({
        kind: 'pkcs12',
        certificate: { identity: 'old', status: 'expired', notAfter: notAfter.toISOString() },
        ca: { status: 'valid' },
      });
    });

    it('shows a not yet valid bundle with when it starts, exit 0', async () => {
      const r = await runCli(['inspect', futurePath]);
      expect(r.code).toBe(0);
      expect(r.stdout).toMatch(new RegExp(`status:\\s+NOT YET VALID until ${notBefore.toISOString()}`));
      const json = await runCli(['inspect', '--json', futurePath]);
      expect(JSON.parse(json.stdout)).toMatchObject({ certificate: { status: 'not yet valid' } });
    });

    it('shows a valid bundle as valid', async () => {
      const r = await runCli(['inspect', join(dir, 'alice.p12')]);
      expect(r.stdout).toMatch(/status:\s+valid\n/);
    });

    it('still refuses the expired bundle where it would be used (chat)', async () => {
      const r = await runCli(['chat', '--bundle', expiredPath, '--relay', '127.0.0.1:9']);
      expect(r.code).toBe(1);
      expect(oneLineError(r)).toMatch(/expired on .*\(Expired\)/);
    });
  });
});

describe('a missing password', () => {
  let dir: string;

  beforeAll(async () => {
    dir = tempDir();
    const r = await runCli(['group', 'create', '--out', dir, '--members', 'alice', ...FAST_KDF]);
    expect(r.code).toBe(0);
  });

  it('is a usage error (exit 2, one line) for every command that needs one', async () => {
    const commands = [
      ['group', 'create', '--out', join(dir, 'new'), '--members', 'bob', ...FAST_KDF],
      ['group', 'add-member', '--ca', join(dir, 'ca.p12'), '--name', 'bob', ...FAST_KDF],
      ['inspect', join(dir, 'alice.p12')],
      ['relay', '--bundle', join(dir, 'relay.p12'), '--port', '0'],
      ['chat', '--bundle', join(dir, 'alice.p12'), '--relay', '127.0.0.1:9'],
    ];
    for (const args of commands) {
      const r = await runCli(args, null);
      expect(r.code, `${args.slice(0, 2).join(' ')}: ${r.stderr}`).toBe(2);
      expect(oneLineError(r)).toMatch(/no .*password: set SECURECHAT_PASSWORD or pass --password-file FILE/);
      expect(r.stdout).toBe('');
    }
    // An empty SECURECHAT_PASSWORD counts as none.
    expect((await runCli(['inspect', join(dir, 'alice.p12')], '')).code).toBe(2);
    expect(existsSync(join(dir, 'new'))).toBe(false);
    expect(existsSync(join(dir, 'bob.p12'))).toBe(false);
  });

  it('is not needed for a .pem', async () => {
    expect((await runCli(['inspect', join(dir, 'ca.pem')], null)).code).toBe(0);
  });
});
