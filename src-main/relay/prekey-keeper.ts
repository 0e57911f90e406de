/**
 * The relay's prekeys (DESIGN.md §10.8, docs/protocol.md "Prekeys"): the latest signed X25519
 * prekey of each member, verified against the member's own certificate (the one its login proved)
 * and kept durably in the store's meta under `prekeys`, so envelopes can be sealed to an offline
 * member's prekey after a relay restart.
 *
 * A PREKEY is verified before it is parsed (the envelope's signature), then checked as a prekey:
 * identity, signature, validity and never back (a serial below the held one is PrekeyRejected,
 * PrekeyRollback; the held serial with other content, PrekeyConflict). The same prekey again is
 * ignored (a replayed frame). Offers are handled one at a time, so a slow store write never lets an
 * older prekey overtake a newer one. Nothing here throws on bad input: it answers with a verdict.
 */
import type { Logger } from 'pino';
import type { Certificate } from '../core/pki/certificate.js';
import { PrekeyError, prekeyToWire, verifyPrekey, type SignedPrekey } from '../core/pki/prekey.js';
import { z } from 'zod';
import { LIMITS, SignedPrekeySchema } from '../core/protocol/schemas.js';
import type { RelayLog } from './log/types.js';

/** The store meta key: a JSON array of the held prekeys, wire form. */
export const PREKEYS_META_KEY = 'prekeys';

/**
 * Each prekey with the fingerprint of the certificate it was verified with: a member whose
 * certificate was replaced (removed, then added again with a new one) starts its serials afresh,
 * so the old certificate's serial must not count against the new one.
 */
const StoredPrekeys = z
  .array(z.strictObject({ fingerprint: z.string().regex(/^[0-9a-f]{64}$/), prekey: SignedPrekeySchema }))
  .max(LIMITS.members);

interface HeldPrekey {
  fingerprint: string;
  prekey: SignedPrekey;
}

export type PrekeyOffer =
  /** Newer than the held one (or the first): stored durably, and now held. */
  | { kind: 'stored'; prekey: SignedPrekey }
  /** The held prekey again, byte for byte: nothing to do. */
  | { kind: 'same' }
  | { kind: 'rejected'; code: PrekeyError['code'] | 'PrekeyStoreFailed'; message: string };

export class PrekeyKeeper {
  readonly #held = new Map<string, HeldPrekey>();
  #queue: Promise<unknown> = Promise.resolve();

  constructor(
    private readonly store: RelayLog | undefined,
    private readonly log: Logger,
    private readonly now: () => number = Date.now,
  ) {}

  /** Reads the stored prekeys (listen(), before anyone is admitted). A damaged entry is dropped. */
  async load(): Promise<void> {
    const bytes = this.store ? await this.store.getMeta(PREKEYS_META_KEY) : undefined;
    if (!bytes) return;
    let parsed: unknown;
    try {
      parsed = JSON.parse(bytes.toString('utf8'));
    } catch {
      this.log.warn({ event: 'prekeys-store-invalid' }, 'stored prekeys are not JSON: ignored');
      return;
    }
    const result = StoredPrekeys.safeParse(parsed);
    if (!result.success) {
      this.log.warn({ event: 'prekeys-store-invalid' }, 'stored prekeys do not pass the schema: ignored');
      return;
    }
    for (const p of result.data) this.#held.set(p.prekey.member, p);
    this.log.info({ event: 'prekeys', count: this.#held.size }, 'prekeys loaded');
  }

  /**
   * The held prekeys of these certificates (the roster's members) that are still valid now: what a
   * member gets in PREKEYS at login. A prekey of another certificate of that name is left out.
   */
  validFor(certificates: Iterable<{ name: string; fingerprintHex: string }>): SignedPrekey[] {
    const now = this.now();
    const out: SignedPrekey[] = [];
    for (const c of certificates) {
      const h = this.#held.get(c.name);
      if (!h || h.fingerprint !== c.fingerprintHex) continue;
      if (now >= h.prekey.notBefore && now < h.prekey.notAfter) out.push(h.prekey);
    }
    return out.sort((a, b) => (a.member < b.member ? -1 : a.member > b.member ? 1 : 0));
  }

  get size(): number {
    return this.#held.size;
  }

  /**
   * A PREKEY body's prekey (schema-checked) from the member whose login proved `certificate` (its
   * CA validation is done). Resolves with what became of it.
   */
  offer(signed: SignedPrekey, certificate: Certificate): Promise<PrekeyOffer> {
    const run = this.#queue.then(() => this.#offer(signed, certificate));
    this.#queue = run.catch(() => undefined);
    return run;
  }

  async #offer(signed: SignedPrekey, certificate: Certificate): Promise<PrekeyOffer> {
    const h = this.#held.get(certificate.name);
    const previous = h && h.fingerprint === certificate.fingerprintHex ? h.prekey : undefined;
    try {
      verifyPrekey(signed, certificate, this.now(), previous ? { previous } : {});
    } catch (err) {
      if (err instanceof PrekeyError) return { kind: 'rejected', code: err.code, message: err.message };
      throw err;
    }
    if (previous && previous.serial === signed.serial && previous.signature.equals(signed.signature)) {
      return { kind: 'same' };
    }
    const next = new Map(this.#held);
    // Bounded: expired prekeys (of members long gone) make room before the store would overflow.
    if (!next.has(signed.member) && next.size >= LIMITS.members) {
      const now = this.now();
      for (const [name, e] of next) if (now >= e.prekey.notAfter) next.delete(name);
      if (next.size >= LIMITS.members) {
        return { kind: 'rejected', code: 'PrekeyStoreFailed', message: 'the relay holds too many prekeys' };
      }
    }
    const entry = { fingerprint: certificate.fingerprintHex, prekey: signed };
    next.set(signed.member, entry);
    try {
      if (this.store) {
        const json = JSON.stringify(
          [...next.values()].map((e) => ({ fingerprint: e.fingerprint, prekey: prekeyToWire(e.prekey) })),
        );
        await this.store.setMeta(PREKEYS_META_KEY, Buffer.from(json, 'utf8'));
      }
    } catch (err) {
      this.log.error({ event: 'prekey-store-failed', err: String(err) }, 'storing a prekey failed');
      return { kind: 'rejected', code: 'PrekeyStoreFailed', message: 'the relay could not store the prekey' };
    }
    this.#held.clear();
    for (const [name, e] of next) this.#held.set(name, e);
    this.log.info(
      { event: 'prekey-stored', name: signed.member, serial: signed.serial, notAfter: signed.notAfter },
      'prekey stored',
    );
    return { kind: 'stored', prekey: signed };
  }
}
