/**
 * Test groups: a CA, member bundles, a relay bundle and roster.scx v1 (every member and the
 * relay) written to a temporary folder with the library (not the CLI), at the lowest allowed KDF
 * cost so suites stay fast. The relay helpers start a relay with the roster.scx beside its bundle.
 */
import { mkdtempSync, readFileSync, writeFileSync } from 'node:fs';
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
import {
  buildRoster,
  nextRoster,
  signRoster,
  verifyRoster,
  type Roster,
  type RosterBody,
  type RosterChange,
} from '../../src-main/core/roster/index.js';

export const TEST_PASSWORD = 'correct horse battery staple';
export const TEST_KDF_ITERATIONS = 10_000;

export interface TestGroup {
  dir: string;
  ca: Credential;
  caPem: string;
  /** Path of each member's (and the relay's) .p12. */
  bundles: Record<string, string>;
  relayBundle: string;
  /** `dir/roster.scx`: v1 lists every member and the relay; changes write the next versions. */
  rosterPath: string;
  /** The roster in rosterPath now. */
  roster(): Roster;
  /**
   * Signs the roster after `change` and writes it to rosterPath (or `to`); returns it. `from`: the
   * roster bytes to change instead of the current one (to sign a fork, say); with `to` only.
   */
  changeRoster(change: RosterChange, to?: string, from?: Buffer): Roster;
  /**
   * Issues one more member bundle into the same group and lists it in roster.scx: a name already
   * listed is removed first (two versions), so the new certificate replaces the old one. A relay
   * started earlier still holds its older roster until one is published to it. `list: false`
   * issues the bundle only: a valid certificate of the group that the roster does not list.
   */
  addMember(name: string, options?: { list?: boolean }): string;
}

export function makeTestGroup(
  members: string[],
  options: { relay?: string; dir?: string; /** The CA's (and so the group's) name. */ name?: string } = {},
): TestGroup {
  const dir = options.dir ?? mkdtempSync(join(tmpdir(), 'scx-group-'));
  const ca = createGroupCa({ name: options.name ?? 'Test Group CA' });
  const caPem = join(dir, 'ca.pem');
  writeFileSync(caPem, ca.certificate.pem);
  const bundles: Record<string, string> = {};
  const write = (name: string, role: 'member' | 'relay'): Certificate => {
    const cred = issueCertificate(ca, { name, role });
    const path = join(dir, `${name}.p12`);
    writeFileSync(
      path,
      writeBundle(cred, ca.certificate, TEST_PASSWORD, { kdfIterations: TEST_KDF_ITERATIONS }),
    );
    bundles[name] = path;
    return cred.certificate;
  };
  const memberCerts = members.map((m) => write(m, 'member'));
  const relayName = options.relay ?? 'relay';
  const relayCert = write(relayName, 'relay');
  const rosterPath = join(dir, 'roster.scx');
  const sign = (body: RosterBody): Roster => verifyRoster(signRoster(body, ca), ca.certificate);
  let roster = sign(
    buildRoster({ ca: ca.certificate, name: 'Test Group', members: memberCerts, relays: [relayCert] }),
  );
  writeFileSync(rosterPath, roster.bytes);
  const changeRoster = (change: RosterChange, to?: string, from?: Buffer): Roster => {
    const base = from ? verifyRoster(from, ca.certificate) : roster;
    const next = sign(nextRoster(base, change));
    writeFileSync(to ?? rosterPath, next.bytes);
    if (to === undefined) roster = next;
    return next;
  };
  return {
    dir,
    ca,
    caPem,
    bundles,
    relayBundle: bundles[relayName] as string,
    rosterPath,
    roster: () => roster,
    changeRoster,
    addMember: (name, addOptions = {}) => {
      const cert = write(name, 'member');
      if (addOptions.list === false) return bundles[name] as string;
      if (roster.member(name)) changeRoster({ kind: 'remove-member', name, reason: 'new certificate' });
      changeRoster({ kind: 'add-member', certificate: cert });
      return bundles[name] as string;
    },
  };
}

/** Reads and verifies a roster file of `group`. */
export function readTestRoster(group: TestGroup, path = group.rosterPath): Roster {
  return verifyRoster(readFileSync(path), group.ca.certificate);
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
