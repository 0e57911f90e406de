/**
 * One verify path for roster.scx and for a ROSTER frame: verify before parse. First the envelope
 * (a ROSTER, sent by the group CA's certificate, signed with its key), then the body's schema,
 * then what the schema cannot see: every listed certificate was issued by this CA for its role
 * and names the listed identity, nothing is listed twice, and no removed certificate is listed.
 */
import { Certificate } from '../pki/certificate.js';
import { PkiError } from '../pki/errors.js';
import { validateCertificate } from '../pki/validate.js';
import { decodeBody, readHeader, verifyHeader, type EnvelopeHeader } from '../protocol/envelope.js';
import { ProtocolError } from '../protocol/errors.js';
import { DEFAULT_MAX_FRAME_BYTES } from '../protocol/framing.js';
import { LIMITS } from '../protocol/schemas.js';
import { RosterError } from './errors.js';
import { Roster, VERIFIED, type RosterBody, type RosterEntry } from './roster.js';

/** A roster travels as one frame; a file larger than that is not one. */
export const MAX_ROSTER_BYTES = DEFAULT_MAX_FRAME_BYTES;

/** The roster's file name beside ca.p12: one name for the CLI and the desktop app alike. */
export const ROSTER_FILE = 'roster.scx';

function readRosterHeader(bytes: Uint8Array): EnvelopeHeader {
  if (bytes.length === 0 || bytes.length > MAX_ROSTER_BYTES) {
    throw new RosterError(
      'RosterEncoding',
      `not a roster: ${bytes.length} bytes (at most ${MAX_ROSTER_BYTES})`,
    );
  }
  let header: EnvelopeHeader;
  try {
    header = readHeader(Buffer.from(bytes.buffer, bytes.byteOffset, bytes.byteLength));
  } catch (err) {
    const why = err instanceof ProtocolError ? err.message : String(err);
    throw new RosterError('RosterEncoding', `not a roster: ${why}`, { cause: err });
  }
  if (header.type !== 'ROSTER') {
    throw new RosterError('RosterEncoding', `not a roster: a ${header.type} message`);
  }
  if (header.sender.kind !== 'certificate') {
    throw new RosterError('RosterEncoding', 'not a roster: it does not carry the certificate of its CA');
  }
  if (header.target !== '') throw new RosterError('RosterEncoding', 'not a roster: it names a target');
  return header;
}

/**
 * The certificate a roster says signed it, without any trust in it: for `inspect`, which shows
 * the CA's fingerprint for a person to compare. Everything else verifies against a CA it holds.
 */
export function rosterSigner(bytes: Uint8Array): Certificate {
  const header = readRosterHeader(bytes);
  if (header.sender.kind !== 'certificate') throw new RosterError('RosterEncoding', 'no CA certificate');
  try {
    return Certificate.fromDer(header.sender.der);
  } catch (err) {
    throw new RosterError('RosterEncoding', 'not a roster: its CA certificate is unreadable', { cause: err });
  }
}

function listedCertificate(
  entry: { name: string; certificate: Buffer },
  role: 'member' | 'relay',
  ca: Certificate,
): RosterEntry {
  let cert: Certificate;
  try {
    cert = Certificate.fromDer(entry.certificate);
    // Not the validity window: an expired member must not make the roster unreadable (it could not
    // be removed any more). Whoever admits a certificate checks its window when it is presented.
    validateCertificate(cert, ca, { role, checkValidityPeriod: false });
  } catch (err) {
    if (!(err instanceof PkiError)) throw err;
    throw new RosterError('RosterCertificate', `the roster's ${role} "${entry.name}": ${err.message}`, {
      cause: err,
    });
  }
  if (cert.name !== entry.name) {
    throw new RosterError(
      'RosterCertificate',
      `the roster lists ${role} "${entry.name}" with the certificate of "${cert.name.slice(0, 80)}"`,
    );
  }
  return { name: entry.name, certificate: cert, fingerprintHex: cert.fingerprintHex };
}

/**
 * The checks beyond the schema, shared by verifyRoster and signRoster (so nothing is signed that
 * verification would refuse). Returns the parsed member and relay certificates.
 */
export function checkRosterBody(
  body: RosterBody,
  ca: Certificate,
): { members: RosterEntry[]; relays: RosterEntry[] } {
  if (body.groupId !== ca.fingerprintHex) {
    throw new RosterError(
      'RosterForeignGroup',
      `the roster is for group ${body.groupId}, not for this group (${ca.fingerprintHex})`,
    );
  }
  const members = body.members.map((m) => listedCertificate(m, 'member', ca));
  const relays = body.relays.map((r) => listedCertificate(r, 'relay', ca));
  const names = new Set<string>();
  const fingerprints = new Set<string>();
  for (const entry of [...members, ...relays]) {
    if (names.has(entry.name))
      throw new RosterError('RosterDuplicate', `the roster lists "${entry.name}" twice`);
    if (fingerprints.has(entry.fingerprintHex)) {
      throw new RosterError('RosterDuplicate', `the roster lists the certificate of "${entry.name}" twice`);
    }
    names.add(entry.name);
    fingerprints.add(entry.fingerprintHex);
  }
  const removed = new Set<string>();
  for (const r of body.removed) {
    if (removed.has(r.fingerprint)) {
      throw new RosterError('RosterDuplicate', `the roster removes the certificate of "${r.name}" twice`);
    }
    removed.add(r.fingerprint);
    if (fingerprints.has(r.fingerprint)) {
      throw new RosterError(
        'RosterRemovedMember',
        `the roster lists "${r.name}" with a certificate it also lists as removed`,
      );
    }
  }
  return { members, relays };
}

/**
 * Verifies a signed roster (the bytes of roster.scx or of a ROSTER frame) against the group CA
 * and returns it. Throws a RosterError naming the first check that failed.
 */
export function verifyRoster(bytes: Uint8Array, ca: Certificate): Roster {
  if (!ca.isCa) throw new RosterError('RosterForeignGroup', `"${ca.name}" is not a group CA certificate`);
  const header = readRosterHeader(bytes);
  if (header.sender.kind !== 'certificate' || !header.sender.der.equals(ca.der)) {
    throw new RosterError('RosterForeignGroup', `the roster was not issued by the group CA "${ca.name}"`);
  }
  try {
    verifyHeader(header, ca.publicKey);
  } catch (err) {
    throw new RosterError('RosterSignature', "the roster's signature does not verify with the group CA", {
      cause: err,
    });
  }
  if (header.body.length > LIMITS.rosterBodyBytes) {
    throw new RosterError('RosterLimit', `the roster body is over ${LIMITS.rosterBodyBytes} bytes`);
  }
  let body: RosterBody;
  try {
    body = decodeBody('ROSTER', header.body);
  } catch (err) {
    throw new RosterError('RosterSchema', (err as Error).message, { cause: err });
  }
  const { members, relays } = checkRosterBody(body, ca);
  return new Roster(VERIFIED, { bytes, ca, body, members, relays });
}
