/**
 * A member's prekeys (DESIGN.md §10.8, docs/protocol.md "Prekeys"), without I/O: its own (the
 * private parts it opens HPKE envelopes with, rotated and erased on schedule) and the others' (the
 * latest verified prekey of each member, which it seals to). The engine drives it: it publishes
 * what `ensureCurrent` returns and feeds in every prekey the relay hands it.
 *
 * Erasure (prekey.ts `prekeyErasable`): a private prekey is erased once its successor was published
 * and the relay's retention window has passed since: no envelope sealed to it can still be stored.
 * The store overwrites it (secure_delete), it is not merely forgotten.
 */
import {
  createPrekey,
  DEFAULT_PREKEY_ROTATION_MS,
  prekeyErasable,
  prekeyRotationDue,
  signPrekey,
  verifyPrekey,
  type PrekeySigner,
  type SignedPrekey,
} from '../core/pki/prekey.js';
import type { Certificate } from '../core/pki/certificate.js';

/** The relay's default log retention (DESIGN.md §10.3): how long a sealed envelope may wait. */
export const DEFAULT_PREKEY_RETENTION_MS = 30 * 24 * 60 * 60 * 1000;

export interface OwnPrekey {
  signed: SignedPrekey;
  /** Raw X25519 private key; zeroed when erased. */
  privateKey: Buffer;
  /** When it was first sent to the relay on a logged-in session (ms), if it was. */
  publishedAt?: number;
}

/**
 * Where prekeys are kept across restarts (the CLI passes its MemberStateStore). Every write is
 * durable when it returns: a prekey is stored before it is published, so nothing is ever sealed to
 * a key this member could lose.
 */
export interface PrekeyStore {
  loadOwnPrekeys(): OwnPrekey[];
  saveOwnPrekey(prekey: OwnPrekey): void;
  markPrekeyPublished(serial: number, at: number): void;
  /** Overwrites and deletes the private key of `serial`. */
  eraseOwnPrekey(serial: number): void;
  /** The latest accepted prekey of each other member (rollback is checked across restarts). */
  loadPeerPrekeys(): { prekey: SignedPrekey; fingerprint: string }[];
  savePeerPrekey(prekey: SignedPrekey, fingerprint: string): void;
}

/** Lives as long as the process (tests). */
export class MemoryPrekeyStore implements PrekeyStore {
  readonly own = new Map<number, OwnPrekey>();
  readonly peers = new Map<string, { prekey: SignedPrekey; fingerprint: string }>();
  loadOwnPrekeys(): OwnPrekey[] {
    return [...this.own.values()].map((p) => ({ ...p, privateKey: Buffer.from(p.privateKey) }));
  }
  saveOwnPrekey(p: OwnPrekey): void {
    this.own.set(p.signed.serial, { ...p, privateKey: Buffer.from(p.privateKey) });
  }
  markPrekeyPublished(serial: number, at: number): void {
    const p = this.own.get(serial);
    if (p && p.publishedAt === undefined) p.publishedAt = at;
  }
  eraseOwnPrekey(serial: number): void {
    this.own.get(serial)?.privateKey.fill(0);
    this.own.delete(serial);
  }
  loadPeerPrekeys(): { prekey: SignedPrekey; fingerprint: string }[] {
    return [...this.peers.values()];
  }
  savePeerPrekey(prekey: SignedPrekey, fingerprint: string): void {
    this.peers.set(prekey.member, { prekey, fingerprint });
  }
}

export interface PrekeyPolicy {
  /** A new prekey this long after the current one became valid (default 7 days). */
  rotationMs: number;
  /** Each prekey is valid this long (default two rotation periods). */
  lifetimeMs: number;
  /** The relay's retention: how long after a successor is published the old private key stays. */
  retentionMs: number;
}

export function prekeyPolicy(o: Partial<PrekeyPolicy>): PrekeyPolicy {
  const rotationMs = o.rotationMs ?? DEFAULT_PREKEY_ROTATION_MS;
  return {
    rotationMs,
    lifetimeMs: o.lifetimeMs ?? 2 * rotationMs,
    retentionMs: o.retentionMs ?? DEFAULT_PREKEY_RETENTION_MS,
  };
}

export class OwnPrekeys {
  private readonly keys = new Map<number, OwnPrekey>();

  constructor(
    private readonly member: string,
    private readonly signer: PrekeySigner,
    private readonly store: PrekeyStore,
    private readonly policy: PrekeyPolicy,
  ) {
    for (const p of store.loadOwnPrekeys()) this.keys.set(p.signed.serial, p);
  }

  /** The newest prekey (the one others should seal to), if any. */
  get current(): OwnPrekey | undefined {
    let best: OwnPrekey | undefined;
    for (const p of this.keys.values()) if (!best || p.signed.serial > best.signed.serial) best = p;
    return best;
  }

  /** Serials whose private key is still held (tests, diagnostics). */
  get heldSerials(): number[] {
    return [...this.keys.keys()].sort((a, b) => a - b);
  }

  /**
   * The current prekey, a new one first if there is none or rotation is due (or `force`: "renew
   * keys"). A new one is stored before it is returned; the caller publishes it. Its serial is above
   * the current one's and above `floor` (the serial the relay holds of ours).
   */
  ensureCurrent(now: number, force = false, floor = 0): OwnPrekey {
    const current = this.current;
    if (current && !force && !prekeyRotationDue(current.signed, now, this.policy.rotationMs)) return current;
    const serial = Math.max(current?.signed.serial ?? 0, floor) + 1;
    const fresh = createPrekey(this.member, serial, now, this.policy.lifetimeMs);
    const own: OwnPrekey = { signed: signPrekey(fresh.prekey, this.signer), privateKey: fresh.privateKey };
    this.store.saveOwnPrekey(own);
    this.keys.set(serial, own);
    return own;
  }

  published(serial: number, at: number): void {
    const p = this.keys.get(serial);
    if (!p || p.publishedAt !== undefined) return;
    this.store.markPrekeyPublished(serial, at);
    p.publishedAt = at;
  }

  /** The private key of `serial`, if still held (a copy the caller zeroes). */
  privateKey(serial: number): Buffer | undefined {
    const p = this.keys.get(serial);
    return p ? Buffer.from(p.privateKey) : undefined;
  }

  /**
   * Erases every private prekey whose successor has been published for the retention window.
   * Returns the erased serials.
   */
  eraseDue(now: number): number[] {
    const sorted = [...this.keys.values()].sort((a, b) => a.signed.serial - b.signed.serial);
    const erased: number[] = [];
    for (let i = 0; i < sorted.length - 1; i++) {
      const p = sorted[i] as OwnPrekey;
      // The earliest publication of any successor: senders moved on from then.
      let since: number | undefined;
      for (const s of sorted.slice(i + 1)) {
        if (s.publishedAt !== undefined)
          since = since === undefined ? s.publishedAt : Math.min(since, s.publishedAt);
      }
      const erasure = {
        retentionMs: this.policy.retentionMs,
        ...(since !== undefined ? { successorInUseSince: since } : {}),
      };
      if (!prekeyErasable(erasure, now)) continue;
      this.store.eraseOwnPrekey(p.signed.serial);
      p.privateKey.fill(0);
      this.keys.delete(p.signed.serial);
      erased.push(p.signed.serial);
    }
    return erased;
  }
}

/** The latest verified prekey of each other member. */
export class PeerPrekeys {
  private readonly held = new Map<string, { prekey: SignedPrekey; fingerprint: string }>();

  constructor(private readonly store: PrekeyStore | undefined) {
    for (const p of store?.loadPeerPrekeys() ?? []) this.held.set(p.prekey.member, p);
  }

  /**
   * Verifies `signed` against `certificate` (the CA-validated certificate this member trusts for
   * that name) at `now`, and keeps it if it is newer. Throws PrekeyError (signature, identity,
   * validity, rollback against the highest serial seen for that certificate, conflict). Returns
   * false for the prekey already held.
   */
  accept(signed: SignedPrekey, certificate: Certificate, now: number): boolean {
    const h = this.held.get(certificate.name);
    const previous = h && h.fingerprint === certificate.fingerprintHex ? h.prekey : undefined;
    verifyPrekey(signed, certificate, now, previous ? { previous } : {});
    if (previous && previous.serial === signed.serial) return false;
    const entry = { prekey: signed, fingerprint: certificate.fingerprintHex };
    this.store?.savePeerPrekey(signed, certificate.fingerprintHex);
    this.held.set(signed.member, entry);
    return true;
  }

  /** The prekey to seal to for `certificate`'s member now: held, of that certificate, valid now. */
  usable(certificate: Certificate, now: number): SignedPrekey | undefined {
    const h = this.held.get(certificate.name);
    if (!h || h.fingerprint !== certificate.fingerprintHex) return undefined;
    return now >= h.prekey.notBefore && now < h.prekey.notAfter ? h.prekey : undefined;
  }
}
