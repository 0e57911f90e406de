/**
 * The engine's prekeys, the thin driver over prekeys.ts: publishes this member's current prekey once
 * per live session (and each rotation), takes the others' from PREKEYS (at login) and PREKEY (live),
 * each verified against the certificate this member trusts for that name, and erases retired
 * private prekeys on schedule. A refused prekey is reported with its PrekeyError code and changes
 * nothing: the one held before stays.
 */
import type { Certificate } from '../core/pki/certificate.js';
import { PrekeyError, type SignedPrekey } from '../core/pki/prekey.js';
import type { BodyOf } from '../core/protocol/schemas.js';
import type { KeyEstablishment } from './key-establishment.js';
import type { ChatEngineOptions, ResolvedOptions } from './options.js';
import {
  OwnPrekeys,
  PeerPrekeys,
  prekeyPolicy,
  type OwnPrekey,
  type PrekeyPolicy,
  type PrekeyStore,
} from './prekeys.js';

export interface PrekeyDriverDeps {
  self: string;
  signer: { sign(data: Uint8Array): Buffer };
  store: PrekeyStore;
  policy: PrekeyPolicy;
  now: () => number;
  /** The CA-validated certificate this member trusts for `name` (the roster's, else PRESENCE's). */
  certificateFor(name: string): Certificate | undefined;
  /** Signs and queues a PREKEY (nothing happens without an open session). */
  sendPrekey(body: BodyOf<'PREKEY'>): void;
  /** A session is logged in now. */
  online(): boolean;
  report(code: string, message: string): void;
}

export class PrekeyDriver {
  readonly own: OwnPrekeys;
  readonly peers: PeerPrekeys;
  /** The serial published on the current session (undefined: not yet). */
  private publishedSerial: number | undefined;
  /** Our own prekey as the relay holds it (PREKEYS): a new prekey must go above its serial. */
  private relayOwn: SignedPrekey | undefined;

  constructor(private readonly d: PrekeyDriverDeps) {
    this.own = new OwnPrekeys(d.self, d.signer, d.store, d.policy);
    this.peers = new PeerPrekeys(d.store);
  }

  /** The relay's retention: also when epoch keys are erased (engine-keys.ts). */
  get retentionMs(): number {
    return this.d.policy.retentionMs;
  }

  /** The session ended: the next one publishes again. */
  sessionDown(): void {
    this.publishedSerial = undefined;
  }

  /**
   * Live on a session: make sure the relay holds our current prekey (one frame; the relay ignores
   * the one it holds). A prekey due for rotation is replaced first.
   */
  publish(force = false): void {
    if (!this.d.online()) return;
    const now = this.d.now();
    let current: OwnPrekey;
    try {
      const held = this.own.current?.signed;
      const r = this.relayOwn;
      // The relay holds one of ours we do not (a lost or restored store): go above it, or the
      // relay refuses ours as a rollback or a conflict.
      const behind =
        r !== undefined &&
        (held === undefined ||
          r.serial > held.serial ||
          (r.serial === held.serial && !r.signature.equals(held.signature)));
      current = this.own.ensureCurrent(now, force || behind, r?.serial ?? 0);
    } catch (err) {
      this.d.report('StateStoreFailed', `a new prekey could not be stored: ${(err as Error).message}`);
      return;
    }
    if (this.publishedSerial === current.signed.serial) return;
    this.d.sendPrekey({ prekey: current.signed });
    this.publishedSerial = current.signed.serial;
    try {
      this.own.published(current.signed.serial, now);
    } catch (err) {
      this.d.report(
        'StateStoreFailed',
        `the prekey's publication could not be stored: ${(err as Error).message}`,
      );
    }
  }

  /** The periodic check (the engine's rotation timer): rotate if due, erase what may go. */
  tick(): void {
    this.publish();
    try {
      this.own.eraseDue(this.d.now());
    } catch (err) {
      this.d.report('StateStoreFailed', `a retired prekey could not be erased: ${(err as Error).message}`);
    }
  }

  /** PREKEYS from the relay (relay-signed, session checked): each one verified on its own. */
  onPrekeys(body: BodyOf<'PREKEYS'>): void {
    for (const p of body.prekeys) this.take(p, 'relay');
  }

  /** A PREKEY forwarded from `sender` (its envelope signature verified with its certificate). */
  onPrekey(sender: string, body: BodyOf<'PREKEY'>): void {
    if (body.prekey.member !== sender) {
      this.d.report('PrekeyIdentity', `${sender} sent the prekey of "${body.prekey.member}"`);
      return;
    }
    this.take(body.prekey, sender);
  }

  private take(p: SignedPrekey, from: string): void {
    if (p.member === this.d.self) {
      // Ours as the relay holds it: after a lost store, our next serial must go above it.
      if (!this.relayOwn || p.serial >= this.relayOwn.serial) this.relayOwn = p;
      return;
    }
    const cert = this.d.certificateFor(p.member);
    if (!cert) return; // not a member we know: nothing to seal to it, nothing to refuse
    try {
      this.peers.accept(p, cert, this.d.now());
    } catch (err) {
      if (err instanceof PrekeyError) {
        this.d.report(err.code, `prekey of ${p.member} (from ${from}) refused: ${err.message}`);
        return;
      }
      this.d.report(
        'StateStoreFailed',
        `a prekey of ${p.member} could not be stored: ${(err as Error).message}`,
      );
    }
  }
}

/** The engine's driver, if the options give a prekey store. */
export function createPrekeyDriver(
  options: ChatEngineOptions,
  o: ResolvedOptions,
  handshake: KeyEstablishment,
  io: { send(body: BodyOf<'PREKEY'>): void; online(): boolean; report(code: string, message: string): void },
): PrekeyDriver | undefined {
  const store = options.prekeyStore;
  if (!store) return undefined;
  return new PrekeyDriver({
    self: o.identity.name,
    signer: o.identity,
    store,
    policy: prekeyPolicy({
      ...(options.prekeyRotationMs !== undefined ? { rotationMs: options.prekeyRotationMs } : {}),
      ...(options.prekeyRetentionMs !== undefined ? { retentionMs: options.prekeyRetentionMs } : {}),
    }),
    now: o.now,
    certificateFor: (name) => handshake.trustedCertificate(name),
    sendPrekey: io.send,
    online: io.online,
    report: io.report,
  });
}
