/**
 * The CLI's side of bundle trust, through real CLI processes: a tampered bundle (the reported
 * attack) is refused by inspect, chat and relay with BundleIntegrity; inspect shows the CA
 * fingerprint with advice to compare it; `--expect-ca` refuses a bundle from another CA.
 */
import { createPublicKey } from 'node:crypto';
import { readFileSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { beforeAll, describe, expect, it } from 'vitest';
import { createGroupCa, readBundle, writeBundle, type Credential } from '../../src-main/core/pki/index.js';
import { makeTestGroup, TEST_PASSWORD, type TestGroup } from '../helpers/group.js';
import { swappedCaBundle, withoutMac } from '../helpers/pfx-craft.js';
import { startRelay } from '../helpers/relay-process.js';
import { oneLineError, runCli } from './cli-group-run.js';

const COMPARE = /check:\s+compare the CA fingerprint with the one your organiser hands out \(ca\.pem\)/;

describe('tampered bundles through the CLI', () => {
  let group: TestGroup;
  let attackerCa: Credential;
  let forgedAlice: string;
  let forgedRelay: string;

  beforeAll(() => {
    group = makeTestGroup(['alice']);
    attackerCa = createGroupCa({ name: 'Test Group CA' });
    const forge = (name: string, path: string, role: 'member' | 'relay'): string => {
      const real = readFileSync(path);
      const key = readBundle(real, TEST_PASSWORD).privateKeyPem;
      const publicPem = createPublicKey(key).export({ type: 'spki', format: 'pem' }) as string;
      const out = join(group.dir, `forged-${name}.p12`);
      writeFileSync(out, swappedCaBundle(real, publicPem, attackerCa, name, role));
      return out;
    };
    forgedAlice = forge('alice', group.bundles.alice as string, 'member');
    forgedRelay = forge('relay', group.relayBundle, 'relay');
  });

  it('inspect refuses the swapped-CA bundle without a MAC (exit 1, BundleIntegrity)', async () => {
    const r = await runCli(['inspect', forgedAlice], TEST_PASSWORD);
    expect(r.code).toBe(1);
    expect(r.stdout).toBe('');
    expect(oneLineError(r)).toMatch(/integrity.*\(BundleIntegrity\)$/);
    expect(r.stdout).not.toMatch(/status:\s+valid/);
  });

  it('chat refuses it before connecting (exit 1, BundleIntegrity)', async () => {
    const r = await runCli(['chat', '--bundle', forgedAlice, '--relay', '127.0.0.1:9'], TEST_PASSWORD);
    expect(r.code).toBe(1);
    expect(r.stdout).toBe('');
    expect(oneLineError(r)).toMatch(/\(BundleIntegrity\)$/);
  });

  it('relay refuses a relay bundle forged the same way (exit 1, BundleIntegrity)', async () => {
    const r = await runCli(['relay', '--bundle', forgedRelay, '--port', '0'], TEST_PASSWORD);
    expect(r.code).toBe(1);
    expect(r.stdout).toBe('');
    expect(oneLineError(r)).toMatch(/\(BundleIntegrity\)$/);
  });

  it('inspect refuses an untouched bundle whose MAC was removed', async () => {
    const path = join(group.dir, 'no-mac.p12');
    writeFileSync(path, withoutMac(readFileSync(group.bundles.alice as string)));
    const r = await runCli(['inspect', path], TEST_PASSWORD);
    expect(r.code).toBe(1);
    expect(oneLineError(r)).toMatch(/no integrity MAC.*\(BundleIntegrity\)$/);
  });
});

describe('the CA fingerprint', () => {
  let group: TestGroup;
  let caBundle: string;
  let caDisplay: string;
  let caHex: string;

  beforeAll(() => {
    group = makeTestGroup(['alice']);
    caDisplay = group.ca.certificate.fingerprintDisplay;
    caHex = group.ca.certificate.fingerprintHex;
    // The organiser's ca.p12, as group create writes it.
    caBundle = join(group.dir, 'ca.p12');
    writeFileSync(
      caBundle,
      writeBundle(group.ca, group.ca.certificate, TEST_PASSWORD, { kdfIterations: 10_000 }),
    );
  });

  it('inspect shows it, with advice to compare it, for member, relay and CA bundles and ca.pem', async () => {
    for (const file of [group.bundles.alice as string, group.relayBundle, caBundle, group.caPem]) {
      const r = await runCli(['inspect', file], TEST_PASSWORD);
      expect(r.code, r.stderr).toBe(0);
      expect(r.stdout, file).toContain(`CA fingerprint: ${caDisplay}`);
      expect(r.stdout, file).toMatch(COMPARE);
    }
  });

  it('chat and relay refuse a bundle of another CA with --expect-ca (exit 1, UnexpectedCa)', async () => {
    const other = 'ab'.repeat(32);
    const chat = await runCli(
      ['chat', '--bundle', group.bundles.alice as string, '--relay', '127.0.0.1:9', '--expect-ca', other],
      TEST_PASSWORD,
    );
    expect(chat.code).toBe(1);
    expect(chat.stdout).toBe('');
    expect(oneLineError(chat)).toMatch(
      new RegExp(`fingerprint ${caDisplay}, not the expected ABAB ABAB.*\\(UnexpectedCa\\)$`),
    );
    const relay = await runCli(
      ['relay', '--bundle', group.relayBundle, '--port', '0', '--expect-ca', other],
      TEST_PASSWORD,
    );
    expect(relay.code).toBe(1);
    expect(relay.stdout).toBe('');
    expect(oneLineError(relay)).toMatch(/\(UnexpectedCa\)$/);
  });

  it('--expect-ca takes the fingerprint in any case, with or without ":" or spaces', async () => {
    const colons = (caHex.toUpperCase().match(/../g) ?? []).join(':');
    for (const form of [caHex, caHex.toUpperCase(), colons, caDisplay]) {
      // Accepted: it listens (startRelay waits for that line). SIGKILL, because the relay installs
      // its SIGTERM handler just after printing the line, so an immediate SIGTERM can race it.
      const relay = await startRelay(group.relayBundle, ['--expect-ca', form]);
      expect(relay.stdout()).toMatch(/^listening on 127\.0\.0\.1:\d+\n$/);
      await relay.stop('SIGKILL');
    }
    // chat with the right CA gets past the check: it says who you are, then leaves at end of input.
    const chat = await runCli(
      [
        'chat',
        '--bundle',
        group.bundles.alice as string,
        '--relay',
        '127.0.0.1:9',
        '--expect-ca',
        colons,
        '--drain-timeout-ms',
        '1',
      ],
      TEST_PASSWORD,
    );
    expect(chat.stdout).toMatch(/^\* you are alice /);
    expect(chat.stderr).not.toMatch(/UnexpectedCa/);
  });

  it('--expect-ca that is not a SHA-256 fingerprint is a usage error (exit 2)', async () => {
    for (const bad of ['abc', 'zz'.repeat(32), `${caHex}00`]) {
      for (const args of [
        ['chat', '--bundle', group.bundles.alice as string, '--relay', '127.0.0.1:9', '--expect-ca', bad],
        ['relay', '--bundle', group.relayBundle, '--port', '0', '--expect-ca', bad],
      ]) {
        const r = await runCli(args, TEST_PASSWORD);
        expect(r.code, `${args[0]} ${bad}: ${r.stderr}`).toBe(2);
        expect(oneLineError(r)).toMatch(/--expect-ca must be a SHA-256 fingerprint/);
      }
    }
  });

  it('both commands document --expect-ca in their help', async () => {
    for (const command of ['chat', 'relay']) {
      const r = await runCli([command, '--help']);
      expect(r.code).toBe(0);
      expect(r.stdout).toMatch(
        /--expect-ca SHA256HEX\s+refuse the bundle unless its group CA has this SHA-256/,
      );
    }
  });
});
