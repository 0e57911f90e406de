/**
 * Making a roster: the first version's body (buildRoster) and the CA's signature over it
 * (signRoster). Signing runs the checks verification runs, so the CA never signs a roster that
 * members and relays would refuse.
 */
import { createPrivateKey } from 'node:crypto';
import { signPss } from '../crypto/primitives.js';
import type { Certificate } from '../pki/certificate.js';
import type { Credential } from '../pki/issue.js';
import { SIGNATURE_LABEL, attachSignature, buildUnsigned, decodeBody } from '../protocol/envelope.js';
import { encodeJsonBody } from '../protocol/json-body.js';
import { LIMITS } from '../protocol/schemas.js';
import { RosterError } from './errors.js';
import type { RosterBody } from './roster.js';
import { checkRosterBody } from './verify.js';

const byName = (a: { name: string }, b: { name: string }): number =>
  a.name < b.name ? -1 : a.name > b.name ? 1 : 0;

/** Listed entries in one canonical order (by name), so equal rosters are equal bytes. */
export function sortedEntries(certs: readonly Certificate[]): { name: string; certificate: Buffer }[] {
  return certs.map((c) => ({ name: c.name, certificate: Buffer.from(c.der) })).sort(byName);
}

export interface NewRoster {
  ca: Certificate;
  /** The group's display name: 1-64 characters, no control characters. */
  name: string;
  members: readonly Certificate[];
  relays: readonly Certificate[];
  /** ms since the epoch; default now. */
  issuedAt?: number;
}

/** Version 1: every member and relay, nothing removed. Checked when signed. */
export function buildRoster(input: NewRoster): RosterBody {
  return {
    groupId: input.ca.fingerprintHex,
    name: input.name,
    version: 1,
    issuedAt: input.issuedAt ?? Date.now(),
    members: sortedEntries(input.members),
    relays: sortedEntries(input.relays),
    removed: [],
  };
}

/**
 * The body as it will be signed, after the size bound and the schema: the same decoding a
 * verifier applies, so a body that would not come back out is refused here.
 */
export function encodeRosterBody(body: RosterBody): { bytes: Buffer; body: RosterBody } {
  const bytes = encodeJsonBody(body);
  if (bytes.length > LIMITS.rosterBodyBytes) {
    throw new RosterError(
      'RosterLimit',
      `the roster would be ${bytes.length} bytes, over its ${LIMITS.rosterBodyBytes}-byte bound`,
    );
  }
  try {
    return { bytes, body: decodeBody('ROSTER', bytes) };
  } catch (err) {
    throw new RosterError('RosterSchema', (err as Error).message, { cause: err });
  }
}

/** The signed roster envelope (roster.scx): sender = the CA's certificate, signed with its key. */
export function signRoster(body: RosterBody, ca: Credential): Buffer {
  const caCert = ca.certificate;
  if (!caCert.isCa) {
    throw new RosterError(
      'RosterForeignGroup',
      `"${caCert.name}" is not a group CA: it cannot sign a roster`,
    );
  }
  const encoded = encodeRosterBody(body);
  checkRosterBody(encoded.body, caCert);
  // The very bytes that were checked are the ones signed.
  const unsigned = buildUnsigned('ROSTER', { kind: 'certificate', der: caCert.der }, '', encoded.bytes);
  const key = createPrivateKey(ca.privateKeyPem);
  return attachSignature(unsigned, signPss(key, Buffer.concat([SIGNATURE_LABEL, unsigned])));
}
