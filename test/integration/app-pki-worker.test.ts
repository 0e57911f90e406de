/**
 * The app's PKI worker thread (out/node/src-main/app/pki-worker.js, as tsc builds it): opening a
 * bundle there gives the same certificates and key as in-process readBundle, PkiError codes come
 * back typed, the main event loop keeps running while a bundle at a realistic KDF cost is opened
 * (a 10 ms interval keeps firing), group creation works (with its CA-signed roster v1), and a dead
 * worker is replaced.
 */
import { readFileSync } from 'node:fs';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { PkiWorkerClient, PkiWorkerError } from '../../src-main/app/pki-client.js';
import { readBundle, writeBundle } from '../../src-main/core/pki/bundle.js';
import { Certificate } from '../../src-main/core/pki/certificate.js';
import { PkiError } from '../../src-main/core/pki/errors.js';
import { createGroupCa, issueCertificate } from '../../src-main/core/pki/issue.js';
import { LocalIdentity } from '../../src-main/core/pki/local-identity.js';
import { verifyRoster } from '../../src-main/core/roster/index.js';
import { makeTestGroup, TEST_PASSWORD, type TestGroup } from '../helpers/group.js';
import { PKI_WORKER_ENTRY } from './app-harness.js';

/** Counts how often a 10 ms interval fires while `work` runs. */
async function ticksDuring<T>(work: () => Promise<T>): Promise<{ value: T; ticks: number }> {
  let ticks = 0;
  const timer = setInterval(() => {
    ticks += 1;
  }, 10);
  try {
    const value = await work();
    return { value, ticks };
  } finally {
    clearInterval(timer);
  }
}

describe('PKI worker thread', { timeout: 60_000 }, () => {
  let group: TestGroup;
  let client: PkiWorkerClient;
  /** A member bundle at 100,000 PBKDF2 iterations: about half a second of forge work to open. */
  let slowBundle: Buffer;

  beforeAll(() => {
    group = makeTestGroup(['alice']);
    client = new PkiWorkerClient(PKI_WORKER_ENTRY);
    const ca = createGroupCa({ name: 'Slow Group CA' });
    const carol = issueCertificate(ca, { name: 'carol', role: 'member' });
    slowBundle = writeBundle(carol, ca.certificate, TEST_PASSWORD, { kdfIterations: 100_000 });
  });

  afterAll(async () => {
    await client.close();
  });

  it('opens a bundle like readBundle does, and the result makes a working LocalIdentity', async () => {
    const data = readFileSync(group.bundles.alice ?? '');
    const expected = readBundle(data, TEST_PASSWORD);
    const loaded = await client.readBundle(data, TEST_PASSWORD);
    expect(loaded.certificate.fingerprintHex).toBe(expected.certificate.fingerprintHex);
    expect(loaded.ca.fingerprintHex).toBe(expected.ca.fingerprintHex);
    expect(loaded.privateKeyPem).toBe(expected.privateKeyPem);
    // The caller's bytes are untouched (a copy was transferred).
    expect(data.equals(readFileSync(group.bundles.alice ?? ''))).toBe(true);
    const identity = LocalIdentity.fromBundle(loaded, 'member');
    expect(identity.name).toBe('alice');
    expect(identity.groupId).toBe(group.ca.certificate.fingerprintHex);
  });

  it('opens the organiser’s CA bundle (the CA is its own holder)', async () => {
    const ca = createGroupCa({ name: 'Own CA' });
    const bundle = writeBundle(ca, ca.certificate, TEST_PASSWORD, { kdfIterations: 10_000 });
    const loaded = await client.readBundle(bundle, TEST_PASSWORD);
    expect(loaded.certificate.fingerprintHex).toBe(ca.certificate.fingerprintHex);
    expect(loaded.ca).toBe(loaded.certificate);
  });

  it('keeps PKI errors typed across the thread boundary', async () => {
    const data = readFileSync(group.bundles.alice ?? '');
    const wrong = await client.readBundle(data, 'not the password').catch((e: unknown) => e);
    expect(wrong).toBeInstanceOf(PkiError);
    expect(wrong).toMatchObject({ code: 'WrongPassword', message: expect.stringMatching(/wrong password/i) });

    const corrupt = await client
      .readBundle(Buffer.from('this is not a PKCS#12 file'), TEST_PASSWORD)
      .catch((e: unknown) => e);
    expect(corrupt).toBeInstanceOf(PkiError);
    expect(corrupt).toMatchObject({ code: 'CorruptBundle' });

    const empty = await client.readBundle(new Uint8Array(0), TEST_PASSWORD).catch((e: unknown) => e);
    expect(empty).toMatchObject({ code: 'CorruptBundle' });

    const badName = await client
      .createGroup({
        groupName: 'G',
        members: ['../evil'],
        relayName: 'relay',
        password: TEST_PASSWORD,
        kdfIterations: 10_000,
      })
      .catch((e: unknown) => e);
    expect(badName).toBeInstanceOf(PkiError);
    expect(badName).toMatchObject({ code: 'InvalidName' });
  });

  it('leaves the main event loop running while a bundle is opened (a 10 ms timer keeps firing)', async () => {
    // In-process, the same work blocks the loop: not one tick gets through.
    const blocked = await ticksDuring(async () => readBundle(slowBundle, TEST_PASSWORD));
    expect(blocked.ticks).toBe(0);

    const { value, ticks } = await ticksDuring(() => client.readBundle(slowBundle, TEST_PASSWORD));
    expect(value.certificate.name).toBe('carol');
    expect(ticks).toBeGreaterThanOrEqual(5);
  });

  it('creates a group: files in order, bundles that open with the password and chain to the CA, roster v1', async () => {
    const { value, ticks } = await ticksDuring(() =>
      client.createGroup({
        groupName: 'Worker Group',
        members: ['ann', 'ben'],
        relayName: 'hub',
        password: TEST_PASSWORD,
        kdfIterations: 10_000,
      }),
    );
    expect(ticks).toBeGreaterThanOrEqual(1);
    expect(value.files.map((f) => f.name)).toEqual([
      'ca.pem',
      'ca.p12',
      'ann.p12',
      'ben.p12',
      'hub.p12',
      'roster.scx',
    ]);
    const byName = new Map(value.files.map((f) => [f.name, Buffer.from(f.bytes)]));
    expect(byName.get('ca.pem')?.toString('utf8')).toMatch(/^-----BEGIN CERTIFICATE-----/);
    const ann = readBundle(byName.get('ann.p12') ?? Buffer.alloc(0), TEST_PASSWORD);
    expect(ann.certificate.name).toBe('ann');
    expect(ann.certificate.clientAuth).toBe(true);
    expect(ann.ca.fingerprintHex).toBe(value.caFingerprintHex);
    const hub = readBundle(byName.get('hub.p12') ?? Buffer.alloc(0), TEST_PASSWORD);
    expect(hub.certificate.serverAuth).toBe(true);
    // Signed by the group's CA (the one in ca.pem) and listing the very certificates bundled.
    const caPem = Certificate.fromPem(byName.get('ca.pem')?.toString('utf8') ?? '');
    const roster = verifyRoster(byName.get('roster.scx') ?? Buffer.alloc(0), caPem);
    expect(roster.version).toBe(1);
    expect(roster.groupId).toBe(value.caFingerprintHex);
    expect(roster.name).toBe('Worker Group');
    expect(roster.memberNames).toEqual(['ann', 'ben']);
    expect(roster.relayNames).toEqual(['hub']);
    expect(roster.removed).toEqual([]);
    expect(roster.isMember(ann.certificate.fingerprintHex)).toBe(true);
    expect(roster.isRelay(hub.certificate.fingerprintHex)).toBe(true);
  });

  it('fails pending work when the worker is closed, and starts a new worker on the next call', async () => {
    const own = new PkiWorkerClient(PKI_WORKER_ENTRY);
    const pending = own.readBundle(slowBundle, TEST_PASSWORD).catch((e: unknown) => e);
    const first = own.threadId;
    expect(first).toBeDefined();
    await own.close();
    expect(await pending).toBeInstanceOf(PkiWorkerError);
    const loaded = await own.readBundle(readFileSync(group.bundles.alice ?? ''), TEST_PASSWORD);
    expect(loaded.certificate.name).toBe('alice');
    expect(own.threadId).not.toBe(first);
    await own.close();
  });

  it('reports a worker that cannot start as a worker failure, not a PKI verdict', async () => {
    const broken = new PkiWorkerClient(`${PKI_WORKER_ENTRY}.missing.js`);
    const err = await broken.readBundle(slowBundle, TEST_PASSWORD).catch((e: unknown) => e);
    expect(err).toBeInstanceOf(PkiWorkerError);
    expect(err).not.toBeInstanceOf(PkiError);
    await broken.close();
  });
});
