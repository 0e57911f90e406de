/**
 * Test groups: a CA, member bundles and a relay bundle written to a temporary folder with the
 * library (not the CLI), at the lowest allowed KDF cost so suites stay fast.
 */
import { mkdtempSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import forge from 'node-forge';
import {
  Certificate,
  createGroupCa,
  issueCertificate,
  writeBundle,
  type Credential,
} from '../../src-main/core/pki/index.js';

export const TEST_PASSWORD = 'correct horse battery staple';
export const TEST_KDF_ITERATIONS = 10_000;

export interface TestGroup {
  dir: string;
  ca: Credential;
  caPem: string;
  /** Path of each member's (and the relay's) .p12. */
  bundles: Record<string, string>;
  relayBundle: string;
  /** Issues one more member bundle into the same group. */
  addMember(name: string): string;
}

export function makeTestGroup(members: string[], options: { relay?: string; dir?: string } = {}): TestGroup {
  const dir = options.dir ?? mkdtempSync(join(tmpdir(), 'scx-group-'));
  const ca = createGroupCa({ name: 'Test Group CA' });
  const caPem = join(dir, 'ca.pem');
  writeFileSync(caPem, ca.certificate.pem);
  const bundles: Record<string, string> = {};
  const write = (name: string, role: 'member' | 'relay'): string => {
    const cred = issueCertificate(ca, { name, role });
    const path = join(dir, `${name}.p12`);
    writeFileSync(
      path,
      writeBundle(cred, ca.certificate, TEST_PASSWORD, { kdfIterations: TEST_KDF_ITERATIONS }),
    );
    bundles[name] = path;
    return path;
  };
  for (const m of members) write(m, 'member');
  const relayBundle = write(options.relay ?? 'relay', 'relay');
  return { dir, ca, caPem, bundles, relayBundle, addMember: (name) => write(name, 'member') };
}

/**
 * `credential` with its validity window moved to [notBefore, notAfter] and signed again by `ca`:
 * what issueCertificate would have produced at another time (an expired or a future certificate),
 * without depending on the clock. Everything else (name, key, extensions) is unchanged.
 */
export function withValidity(
  ca: Credential,
  credential: Credential,
  notBefore: Date,
  notAfter: Date,
): Credential {
  const cert = forge.pki.certificateFromPem(credential.certificate.pem);
  cert.validity.notBefore = notBefore;
  cert.validity.notAfter = notAfter;
  cert.sign(forge.pki.privateKeyFromPem(ca.privateKeyPem), forge.md.sha256.create());
  return {
    certificate: Certificate.fromPem(forge.pki.certificateToPem(cert)),
    privateKeyPem: credential.privateKeyPem,
  };
}
