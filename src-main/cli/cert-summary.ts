/** What `inspect` and `group` print about a certificate, as text for people and as JSON for scripts. */
import type { Certificate } from '../core/pki/certificate.js';

export interface CertificateSummary {
  identity: string;
  role: string;
  issuer: string;
  serial: string;
  notBefore: string;
  notAfter: string;
  /** "valid", "expired" or "not yet valid" at the time of inspection. */
  status: 'valid' | 'expired' | 'not yet valid';
  keyBits: number;
  /** Upper-case hex in groups of four. */
  fingerprint: string;
  /** 64 lowercase hex characters. */
  fingerprintHex: string;
}

const ROLE_TEXT: Record<Certificate['role'], string> = {
  ca: 'group CA (keyCertSign, cRLSign)',
  member: 'member (clientAuth)',
  relay: 'relay (serverAuth)',
  unknown: 'unknown (no SecureChat-X role)',
};

export function summarize(cert: Certificate, now = new Date()): CertificateSummary {
  const status = now < cert.notBefore ? 'not yet valid' : now > cert.notAfter ? 'expired' : 'valid';
  return {
    identity: cert.name,
    role: cert.role,
    issuer: cert.issuerName,
    serial: cert.serialHex,
    notBefore: cert.notBefore.toISOString(),
    notAfter: cert.notAfter.toISOString(),
    status,
    keyBits: cert.keyBits,
    fingerprint: cert.fingerprintDisplay,
    fingerprintHex: cert.fingerprintHex,
  };
}

/** Label column wide enough for every label used by the commands that print summaries. */
export const LABEL_WIDTH = 16;

export function labelled(label: string, value: string): string {
  return `${`${label}:`.padEnd(LABEL_WIDTH)}${value}`;
}

function statusText(s: CertificateSummary): string {
  if (s.status === 'expired') return `EXPIRED on ${s.notAfter}`;
  if (s.status === 'not yet valid') return `NOT YET VALID until ${s.notBefore}`;
  return 'valid';
}

export function summaryLines(s: CertificateSummary): string[] {
  return [
    labelled('identity', s.identity),
    labelled('role', ROLE_TEXT[s.role as Certificate['role']] ?? s.role),
    labelled('issuer', s.issuer),
    labelled('serial', s.serial),
    labelled('valid from', s.notBefore),
    labelled('valid to', `${s.notAfter}${s.status === 'valid' ? '' : `  (${s.status.toUpperCase()})`}`),
    labelled('key', `RSA ${s.keyBits} bits`),
    labelled('fingerprint', `${s.fingerprint}  (SHA-256)`),
    labelled('raw', s.fingerprintHex),
    labelled('status', statusText(s)),
  ];
}
