/**
 * Certificates for roster tests, made once per file: one group CA with members and relays (some
 * names with two certificates, to re-add a removed name), and an outsider CA. Key pairs are shared
 * between certificates: what a roster checks is the certificate, and RSA key generation is the slow
 * part.
 */
import { createPrivateKey } from 'node:crypto';
import { signPss } from '../../src-main/core/crypto/primitives.js';
import {
  createGroupCa,
  generateKeyPairPem,
  issueCertificate,
  type Certificate,
  type Credential,
  type KeyPairPem,
} from '../../src-main/core/pki/index.js';
import {
  SIGNATURE_LABEL,
  attachSignature,
  buildUnsigned,
  encodeJsonBody,
} from '../../src-main/core/protocol/index.js';
import type { RosterBody } from '../../src-main/core/roster/index.js';

export interface RosterFixtures {
  ca: Credential;
  other: Credential;
  /** Member certificates by name. */
  members: Record<string, Certificate>;
  /** A second certificate for each member name. */
  reissued: Record<string, Certificate>;
  relays: Record<string, Certificate>;
  /** A member of the other CA, named like one of ours, and that CA's relay. */
  outsider: Certificate;
  outsiderRelay: Certificate;
}

export const MEMBER_NAMES = ['alice', 'bob', 'carol', 'dave', 'erin'] as const;
export const RELAY_NAMES = ['relay', 'relay2', 'relay3'] as const;

export async function makeRosterFixtures(): Promise<RosterFixtures> {
  const keys: KeyPairPem[] = await Promise.all([0, 1, 2, 3].map(() => generateKeyPairPem(2048)));
  const key = (i: number): KeyPairPem => keys[i % keys.length] as KeyPairPem;
  const ca = createGroupCa({ name: 'Roster Test CA', keyPair: key(0) });
  const other = createGroupCa({ name: 'Roster Test CA', keyPair: key(1) });
  const issue = (issuer: Credential, name: string, role: 'member' | 'relay', i: number): Certificate =>
    issueCertificate(issuer, { name, role, keyPair: key(i) }).certificate;
  const members: Record<string, Certificate> = {};
  const reissued: Record<string, Certificate> = {};
  MEMBER_NAMES.forEach((name, i) => {
    members[name] = issue(ca, name, 'member', i);
    reissued[name] = issue(ca, name, 'member', i + 1);
  });
  const relays: Record<string, Certificate> = {};
  RELAY_NAMES.forEach((name, i) => {
    relays[name] = issue(ca, name, 'relay', i + 2);
  });
  return {
    ca,
    other,
    members,
    reissued,
    relays,
    outsider: issue(other, 'alice', 'member', 3),
    outsiderRelay: issue(other, 'relay', 'relay', 0),
  };
}

/**
 * Signs any wire body (plain JSON values, base64 strings) as a ROSTER from `signer` with `key`,
 * skipping every check signRoster makes: what an attacker, or a buggy CA tool, could produce.
 */
export function signRawRoster(body: unknown, signer: Credential, key: Credential = signer): Buffer {
  const unsigned = buildUnsigned(
    'ROSTER',
    { kind: 'certificate', der: signer.certificate.der },
    '',
    encodeJsonBody(body),
  );
  const privateKey = createPrivateKey(key.privateKeyPem);
  return attachSignature(unsigned, signPss(privateKey, Buffer.concat([SIGNATURE_LABEL, unsigned])));
}

/** A body as wire JSON values (Buffers as base64), to edit field by field before signRawRoster. */
export function wireBody(body: RosterBody): Record<string, unknown> {
  return JSON.parse(encodeJsonBody(body).toString('utf8')) as Record<string, unknown>;
}
