/**
 * Which certificate belongs to whom. The relay's PRESENCE says who is connected and with which
 * certificate fingerprint; the certificates themselves arrive in CERT_RESPONSE and are trusted only
 * after this member validated each against its own group CA (role member) and found the
 * fingerprint PRESENCE announced. A certificate is never trusted because the relay sent it.
 */
import type { Certificate } from '../core/pki/certificate.js';
import type { CertificateValidator } from '../core/pki/validate.js';
import type { Member } from './types.js';

type Status = 'pending' | 'valid' | 'rejected' | 'gone';

export type AcceptResult = { ok: true; certificate: Certificate } | { ok: false; reason: string };

/** Certificates of departed members stay known this long (count), so their late frames still verify. */
const MAX_CACHED = 4096;

export class CertificateDirectory {
  /** Validated certificates by fingerprint hex. */
  private readonly byFingerprint = new Map<string, Certificate>();
  /** The latest PRESENCE: name -> announced fingerprint. */
  private expected = new Map<string, string>();
  private readonly status = new Map<string, Status>();
  /** Names asked for in a CERT_REQUEST whose answer has not arrived (name -> fingerprint asked for). */
  private readonly requested = new Map<string, string>();

  constructor(
    private readonly validator: CertificateValidator,
    private readonly self: Certificate,
  ) {
    this.byFingerprint.set(self.fingerprintHex, self);
  }

  /**
   * Takes a new PRESENCE member list. Returns the names whose certificate must be fetched (held
   * nowhere and not already asked for).
   */
  applyPresence(members: readonly Member[]): string[] {
    this.expected = new Map(members.map((m) => [m.name, m.fingerprint]));
    if (!this.expected.has(this.self.name)) this.expected.set(this.self.name, this.self.fingerprintHex);
    this.status.clear();
    const missing: string[] = [];
    for (const [name, fp] of this.expected) {
      const known = this.byFingerprint.get(fp);
      if (known && known.name === name) {
        this.status.set(name, 'valid');
      } else {
        this.status.set(name, 'pending');
        if (this.requested.get(name) !== fp) {
          this.requested.set(name, fp);
          missing.push(name);
        }
      }
    }
    return missing;
  }

  /** A certificate from CERT_RESPONSE: validated against the CA and the announced fingerprint. */
  accept(name: string, certificate: Certificate): AcceptResult {
    this.requested.delete(name);
    const announced = this.expected.get(name);
    try {
      this.validator.validate(certificate, { role: 'member' });
    } catch (err) {
      if (announced !== undefined) this.status.set(name, 'rejected');
      return { ok: false, reason: `certificate of ${name} refused: ${(err as Error).message}` };
    }
    if (certificate.name !== name) {
      if (announced !== undefined) this.status.set(name, 'rejected');
      return {
        ok: false,
        reason: `the relay answered for ${name} with the certificate of ${certificate.name}`,
      };
    }
    if (announced !== undefined && announced !== certificate.fingerprintHex) {
      // Not necessarily an attack (the member may have reconnected with a new certificate in
      // between); the next PRESENCE asks again. Never use a certificate PRESENCE did not announce.
      this.status.set(name, 'rejected');
      return {
        ok: false,
        reason: `certificate of ${name} does not have the fingerprint the relay announced`,
      };
    }
    this.cache(certificate);
    if (announced !== undefined) this.status.set(name, 'valid');
    return { ok: true, certificate };
  }

  /**
   * A certificate from the CA-signed roster: validated against our own CA (role member) like any
   * other, then known by fingerprint, so frames of members who are offline now (stored
   * KEY_DISTRIBUTIONs) verify. It says nothing about who is online; PRESENCE still does.
   */
  trust(certificate: Certificate): boolean {
    try {
      this.validator.validate(certificate, { role: 'member' });
    } catch {
      return false; // e.g. expired: the roster may list it, we do not take its frames
    }
    if (!this.byFingerprint.has(certificate.fingerprintHex)) this.cache(certificate);
    return true;
  }

  /** CERT_RESPONSE listed the name as unknown: the member has left in the meantime. */
  markUnknown(name: string): void {
    this.requested.delete(name);
    if (this.expected.has(name)) this.status.set(name, 'gone');
  }

  /** Every member of the latest PRESENCE is either validated or settled as unusable. */
  get resolved(): boolean {
    for (const s of this.status.values()) if (s === 'pending') return false;
    return true;
  }

  /** Members of the latest PRESENCE whose certificate validated (self included), sorted by name. */
  validMembers(): Member[] {
    const out: Member[] = [];
    for (const [name, fp] of this.expected)
      if (this.status.get(name) === 'valid') out.push({ name, fingerprint: fp });
    return out.sort((a, b) => (a.name < b.name ? -1 : a.name > b.name ? 1 : 0));
  }

  /** The validated certificate the current PRESENCE names for `name`. */
  certificateOf(name: string): Certificate | undefined {
    const fp = this.expected.get(name);
    if (fp === undefined || this.status.get(name) !== 'valid') return undefined;
    return this.byFingerprint.get(fp);
  }

  /** A validated certificate by fingerprint (also of members who have since left). */
  byFingerprintHex(fp: string): Certificate | undefined {
    return this.byFingerprint.get(fp);
  }

  /** Whether frames from this fingerprint should wait for a CERT_RESPONSE rather than be refused. */
  isPending(fp: string): boolean {
    for (const [name, announced] of this.expected) {
      if (announced === fp) return this.status.get(name) === 'pending';
    }
    return false;
  }

  /** Names still waiting for a CERT_REQUEST answer; forgets that they were asked for, to ask again. */
  takePending(): string[] {
    const out: string[] = [];
    for (const [name, s] of this.status) {
      if (s === 'pending') {
        this.requested.delete(name);
        out.push(name);
      }
    }
    return out;
  }

  /** A new session: outstanding requests died with the old connection. */
  resetSession(): void {
    this.requested.clear();
  }

  private cache(certificate: Certificate): void {
    this.byFingerprint.delete(certificate.fingerprintHex);
    this.byFingerprint.set(certificate.fingerprintHex, certificate);
    if (this.byFingerprint.size > MAX_CACHED) {
      for (const [fp, cert] of this.byFingerprint) {
        if (cert !== this.self) {
          this.byFingerprint.delete(fp);
          break;
        }
      }
    }
  }
}
