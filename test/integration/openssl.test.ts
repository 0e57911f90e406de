/**
 * Interoperability with OpenSSL: bundles and certificates made by the CLI must open and verify
 * with the standard tool, so members can check them independently and move keys elsewhere.
 */
import { spawnSync } from 'node:child_process';
import { mkdtempSync, readFileSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { beforeAll, describe, expect, it } from 'vitest';
import { Certificate, readBundle } from '../../src-main/core/pki/index.js';
import { FAST_KDF, PASSWORD, runCli } from './cli-group-run.js';

const OPENSSL = process.env.OPENSSL ?? 'openssl';
const available = spawnSync(OPENSSL, ['version'], { encoding: 'utf8' }).status === 0;
if (!available) {
  console.warn(`openssl interop tests SKIPPED: "${OPENSSL}" is not installed (apt-get install openssl)`);
}

interface Run {
  status: number;
  stdout: string;
  stderr: string;
}

/** OpenSSL with the bundle password in its environment (read via -passin env:, never argv). */
function openssl(args: string[], cwd: string): Run {
  const r = spawnSync(OPENSSL, args, {
    cwd,
    encoding: 'utf8',
    env: { ...process.env, SECURECHAT_PASSWORD: PASSWORD },
    timeout: 60_000,
  });
  return { status: r.status ?? -1, stdout: r.stdout, stderr: r.stderr };
}

function opensslOk(args: string[], cwd: string): string {
  const r = openssl(args, cwd);
  if (r.status !== 0) throw new Error(`openssl ${args.join(' ')} failed (${r.status}):\n${r.stderr}`);
  return r.stdout;
}

const PASSIN = ['-passin', 'env:SECURECHAT_PASSWORD'];

describe.skipIf(!available)('OpenSSL interoperability', () => {
  let dir: string;
  let otherDir: string;

  beforeAll(async () => {
    const base = mkdtempSync(join(tmpdir(), 'scx-openssl-'));
    dir = join(base, 'group');
    otherDir = join(base, 'other');
    const [a, b] = await Promise.all([
      runCli(['group', 'create', '--out', dir, '--members', 'alice,bob', ...FAST_KDF]),
      runCli(['group', 'create', '--out', otherDir, '--members', 'alice', ...FAST_KDF]),
    ]);
    expect(a.code, a.stderr).toBe(0);
    expect(b.code, b.stderr).toBe(0);
    for (const [d, name] of [
      [dir, 'alice'],
      [dir, 'relay'],
      [otherDir, 'alice'],
    ] as const) {
      opensslOk(['pkcs12', '-in', `${name}.p12`, ...PASSIN, '-nokeys', '-clcerts', '-out', `${name}.pem`], d);
      opensslOk(['pkcs12', '-in', `${name}.p12`, ...PASSIN, '-nocerts', '-nodes', '-out', `${name}.key`], d);
    }
  });

  it('extracts the holder certificate with -nokeys -clcerts', () => {
    const pem = readFileSync(join(dir, 'alice.pem'), 'utf8');
    expect(pem).toMatch(/-----BEGIN CERTIFICATE-----/);
    expect(pem).not.toMatch(/PRIVATE KEY/);
    const bundle = readBundle(readFileSync(join(dir, 'alice.p12')), PASSWORD);
    expect(Certificate.fromPem(pem).fingerprintHex).toBe(bundle.certificate.fingerprintHex);
    const subject = opensslOk(['x509', '-in', 'alice.pem', '-noout', '-subject'], dir);
    expect(subject).toMatch(/CN\s*=\s*alice/);
  });

  it('extracts a private key that matches the certificate (same modulus)', () => {
    const key = readFileSync(join(dir, 'alice.key'), 'utf8');
    expect(key).toMatch(/-----BEGIN PRIVATE KEY-----/);
    const certModulus = opensslOk(['x509', '-in', 'alice.pem', '-noout', '-modulus'], dir).trim();
    const keyModulus = opensslOk(['rsa', '-in', 'alice.key', '-noout', '-modulus'], dir).trim();
    expect(certModulus).toMatch(/^Modulus=[0-9A-F]{512}$/);
    expect(keyModulus).toBe(certModulus);
    opensslOk(['rsa', '-in', 'alice.key', '-noout', '-check'], dir);
  });

  it('the wrong password is refused by OpenSSL too', () => {
    const r = spawnSync(
      OPENSSL,
      ['pkcs12', '-in', 'alice.p12', '-passin', 'pass:wrong password', '-nokeys'],
      {
        cwd: dir,
        encoding: 'utf8',
      },
    );
    expect(r.status).not.toBe(0);
    expect(r.stderr).toMatch(/mac verify|invalid password/i);
  });

  it('protects the key with PBES2 / PBKDF2 / AES-256-CBC / hmacWithSHA256 at the chosen cost', () => {
    const r = openssl(['pkcs12', '-in', 'alice.p12', ...PASSIN, '-info', '-noout'], dir);
    expect(r.status).toBe(0);
    const info = r.stdout + r.stderr;
    expect(info).toMatch(/Shrouded Keybag: PBES2, PBKDF2, AES-256-CBC, Iteration 10000, PRF hmacWithSHA256/);
    expect(info).toMatch(/MAC: sha1, Iteration 10000/);
    // No legacy (RC2/3DES, SHA-1 PBE) encryption anywhere in the file.
    expect(info).not.toMatch(/RC2|3DES|des-ede3|pbeWithSHA1/i);
  });

  it('carries the group CA, identical to ca.pem', () => {
    const cas = opensslOk(['pkcs12', '-in', 'alice.p12', ...PASSIN, '-nokeys', '-cacerts'], dir);
    const ca = Certificate.fromPem(readFileSync(join(dir, 'ca.pem'), 'utf8'));
    expect(Certificate.fromPem(cas).fingerprintHex).toBe(ca.fingerprintHex);
  });

  it('verifies member and relay certificates against ca.pem, each for its purpose', () => {
    expect(opensslOk(['verify', '-x509_strict', '-CAfile', 'ca.pem', 'alice.pem'], dir).trim()).toBe(
      'alice.pem: OK',
    );
    expect(opensslOk(['verify', '-CAfile', 'ca.pem', '-purpose', 'sslclient', 'alice.pem'], dir)).toMatch(
      /OK/,
    );
    expect(opensslOk(['verify', '-CAfile', 'ca.pem', '-purpose', 'sslserver', 'relay.pem'], dir)).toMatch(
      /OK/,
    );
    // A member certificate is not a server certificate, and the relay's not a client one.
    expect(
      openssl(['verify', '-CAfile', 'ca.pem', '-purpose', 'sslserver', 'alice.pem'], dir).status,
    ).not.toBe(0);
    expect(
      openssl(['verify', '-CAfile', 'ca.pem', '-purpose', 'sslclient', 'relay.pem'], dir).status,
    ).not.toBe(0);
  });

  it('rejects a certificate from another group', () => {
    const foreign = join(otherDir, 'alice.pem');
    const r = openssl(['verify', '-CAfile', 'ca.pem', foreign], dir);
    expect(r.status).not.toBe(0);
    expect(r.stdout + r.stderr).toMatch(
      /unable to get local issuer certificate|certificate signature failure/,
    );
  });

  it('agrees with OpenSSL on SHA-256 fingerprints', () => {
    for (const f of ['ca.pem', 'alice.pem', 'relay.pem']) {
      const out = opensslOk(['x509', '-in', f, '-noout', '-fingerprint', '-sha256'], dir);
      const hex = out.trim().split('=')[1]?.replaceAll(':', '').toLowerCase();
      expect(hex).toBe(Certificate.fromPem(readFileSync(join(dir, f), 'utf8')).fingerprintHex);
    }
  });

  it('reads a bundle that OpenSSL exported (SHA-256 MAC, encrypted certificates)', async () => {
    opensslOk(
      [
        'pkcs12',
        '-export',
        '-inkey',
        'alice.key',
        '-in',
        'alice.pem',
        '-certfile',
        'ca.pem',
        '-passout',
        'env:SECURECHAT_PASSWORD',
        '-out',
        'alice-openssl.p12',
      ],
      dir,
    );
    const loaded = readBundle(readFileSync(join(dir, 'alice-openssl.p12')), PASSWORD);
    expect(loaded.certificate.name).toBe('alice');
    const r = await runCli(['inspect', join(dir, 'alice-openssl.p12'), '--json']);
    expect(r.code, r.stderr).toBe(0);
    expect(JSON.parse(r.stdout)).toMatchObject({
      kind: 'pkcs12',
      certificate: { identity: 'alice', role: 'member' },
    });
  });

  it('the CLI refuses an OpenSSL bundle whose certificate is not from its bundled CA', async () => {
    writeFileSync(join(dir, 'mixed-ca.pem'), readFileSync(join(otherDir, 'ca.pem')));
    opensslOk(
      [
        'pkcs12',
        '-export',
        '-inkey',
        'alice.key',
        '-in',
        'alice.pem',
        '-certfile',
        'mixed-ca.pem',
        '-passout',
        'env:SECURECHAT_PASSWORD',
        '-out',
        'mixed.p12',
      ],
      dir,
    );
    const r = await runCli(['inspect', join(dir, 'mixed.p12')]);
    expect(r.code).toBe(1);
    expect(r.stderr).toMatch(/not issued by the group CA.*\(NotIssuedByCa\)/);
  });
});
