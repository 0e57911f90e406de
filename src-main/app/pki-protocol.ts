/**
 * Messages between the app service and its PKI worker thread (pki-worker.ts). Plain data only:
 * byte arrays, strings and numbers cross the boundary; PkiError travels as {code, message} and is
 * rebuilt on the other side so callers keep their typed errors.
 */
import type { PkiErrorCode } from '../core/pki/errors.js';
import type { RosterErrorCode } from '../core/roster/errors.js';

export interface ReadBundleRequest {
  id: number;
  op: 'readBundle';
  /** The .p12 file; its buffer is transferred to the worker, which zeroes it after reading. */
  bytes: Uint8Array;
  password: string;
  /** false: the certificates only; the private key stays in the worker (the CA check). */
  withKey?: boolean;
}

export interface CreateGroupRequest {
  id: number;
  op: 'createGroup';
  groupName: string;
  members: string[];
  relayName: string;
  password: string;
  kdfIterations: number;
}

/** One roster change, signed with the CA key inside the worker (the organiser's tools). */
export type RosterChangeSpec =
  | { kind: 'add-member'; name: string; password: string; kdfIterations: number }
  | { kind: 'remove-member'; name: string; reason: string };

export interface ChangeRosterRequest {
  id: number;
  op: 'changeRoster';
  /** ca.p12; transferred, zeroed by the worker. */
  caBytes: Uint8Array;
  caPassword: string;
  /** The group's fingerprint: a CA bundle of another group is refused (UnexpectedCa). */
  groupId: string;
  /** The newest roster known (signed envelope), the base of the change. */
  roster: Uint8Array;
  change: RosterChangeSpec;
}

export type PkiRequest = ReadBundleRequest | CreateGroupRequest | ChangeRosterRequest;

/** The next roster (signed), and for an added member the new bundle. */
export interface RosterChangeData {
  roster: Uint8Array;
  version: number;
  bundle: Uint8Array | null;
  fingerprintHex: string | null;
}

/** What readBundle returns, as plain data. */
export interface BundleData {
  certificateDer: Uint8Array;
  /** null: the holder is the CA itself (the organiser's ca.p12). */
  caDer: Uint8Array | null;
  /** Empty when the request said withKey: false. */
  privateKeyPem: string;
}

/**
 * A new group's files, in the order ca.pem, ca.p12, the members' bundles, the relay's bundle,
 * roster.scx (v1, signed by the CA in the worker).
 */
export interface GroupData {
  caFingerprintHex: string;
  files: { name: string; bytes: Uint8Array }[];
}

export type WorkerError =
  | { kind: 'pki'; code: PkiErrorCode; message: string }
  | { kind: 'roster'; code: RosterErrorCode; message: string }
  | { kind: 'other'; message: string };

export type PkiResponse =
  | { id: number; ok: true; value: BundleData | GroupData | RosterChangeData }
  | { id: number; ok: false; error: WorkerError };

/** Every PkiErrorCode, so a code from the worker is checked before a PkiError is rebuilt. */
export const PKI_ERROR_CODES = [
  'InvalidName',
  'WrongPassword',
  'CorruptBundle',
  'MissingKey',
  'MissingCertificate',
  'KeyMismatch',
  'BadCertificate',
  'NotIssuedByCa',
  'IssuerNotCa',
  'Expired',
  'NotYetValid',
  'BadKeyUsage',
  'WrongRole',
  'BundleIntegrity',
  'WeakKey',
  'UnexpectedCa',
] as const satisfies readonly PkiErrorCode[];

// A type error here means PkiErrorCode gained a code that PKI_ERROR_CODES lacks.
const allCodesListed: Exclude<PkiErrorCode, (typeof PKI_ERROR_CODES)[number]> extends never ? true : never =
  true;
void allCodesListed;

export function isPkiErrorCode(code: unknown): code is PkiErrorCode {
  return typeof code === 'string' && (PKI_ERROR_CODES as readonly string[]).includes(code);
}

/** A copy in a fresh ArrayBuffer of exactly its size, safe to transfer (Buffers may share a pool). */
export function transferableCopy(bytes: Uint8Array): Uint8Array {
  const copy = new Uint8Array(bytes.byteLength);
  copy.set(bytes);
  return copy;
}

/** Every RosterErrorCode, checked like PKI_ERROR_CODES. */
export const ROSTER_ERROR_CODES = [
  'RosterEncoding',
  'RosterSignature',
  'RosterForeignGroup',
  'RosterSchema',
  'RosterCertificate',
  'RosterDuplicate',
  'RosterRemovedMember',
  'RosterLimit',
  'RosterRollback',
  'RosterConflict',
  'RosterUnknownMember',
] as const satisfies readonly RosterErrorCode[];

const allRosterCodesListed: Exclude<RosterErrorCode, (typeof ROSTER_ERROR_CODES)[number]> extends never
  ? true
  : never = true;
void allRosterCodesListed;

export function isRosterErrorCode(code: unknown): code is RosterErrorCode {
  return typeof code === 'string' && (ROSTER_ERROR_CODES as readonly string[]).includes(code);
}
