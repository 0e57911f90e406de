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

/** What became of the prekeys another cluster node stored in the shared meta. */
export type PrekeyAdoption =
  /** `changed`: the members whose held prekey is now another one (maybe none). */
  { kind: 'merged'; changed: string[] } | { kind: 'rejected'; message: string };

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
    const parsed = parseStored(bytes);
    if (typeof parsed === 'string') {
      this.log.warn({ event: 'prekeys-store-invalid' }, `stored prekeys ${parsed}: ignored`);
      return;
    }
    for (const p of parsed) this.#held.set(p.prekey.member, p);
    this.log.info({ event: 'prekeys', count: this.#held.size }, 'prekeys loaded');
  }

  /**
   * The prekeys another cluster node stored in the shared meta (cluster/wiring.ts), merged into the
   * held ones member by member: of two prekeys of one certificate the higher serial, of two
   * certificates of one name the one `certificateOf` (the held roster) lists, else the shared
   * one. Each node writes its whole set, so two nodes storing at once can lose one's write; a
   * node that held something the shared value lacks writes the merge back, and the meta ends
   * with every node's latest. Never throws: a failed write-back is logged.
   */
  adopt(bytes: Buffer, certificateOf: (name: string) => string | undefined): Promise<PrekeyAdoption> {
    const run = this.#queue.then(() => this.#adopt(bytes, certificateOf));
    this.#queue = run.catch(() => undefined);
    return run;
  }

  async #adopt(bytes: Buffer, certificateOf: (name: string) => string | undefined): Promise<PrekeyAdoption> {
    const parsed = parseStored(bytes);
    if (typeof parsed === 'string') return { kind: 'rejected', message: `shared prekeys ${parsed}` };
    const next = new Map(this.#held);
    const changed: string[] = [];
    const incoming = new Set<string>();
    let writeBack = false;
    for (const e of parsed) {
      const name = e.prekey.member;
      incoming.add(name);
      const h = next.get(name);
      if (!h) {
        next.set(name, e);
        changed.push(name);
        continue;
      }
      if (sameEntry(h, e)) continue;
      const sameCertificate = h.fingerprint === e.fingerprint;
      const keepHeld = sameCertificate
        ? h.prekey.serial >= e.prekey.serial
        : certificateOf(name) === h.fingerprint;
      if (keepHeld) {
        // One serial signed twice is the member's doing: kept, but not fought over between nodes.
        if (!sameCertificate || h.prekey.serial > e.prekey.serial) writeBack = true;
      } else {
        next.set(name, e);
        changed.push(name);
      }
    }
    for (const name of next.keys()) if (!incoming.has(name)) writeBack = true;
    if (next.size > LIMITS.members) return { kind: 'rejected', message: 'too many shared prekeys' };
    this.#held.clear();
    for (const [name, e] of next) this.#held.set(name, e);
    if (writeBack && this.store) {
      await this.store.setMeta(PREKEYS_META_KEY, this.#serialised()).catch((err: unknown) => {
        this.log.warn(
          { event: 'prekey-store-failed', err: String(err) },
          'writing the merged prekeys back failed: the next change writes them',
        );
      });
    }
    for (const name of changed) {
      const p = this.#held.get(name)?.prekey;
      if (p) {
        this.log.info(
          { event: 'prekey-shared', name, serial: p.serial, notAfter: p.notAfter },
          'prekey from another node',
        );
      }
    }
    return { kind: 'merged', changed };
  }

  #serialised(from: Iterable<HeldPrekey> = this.#held.values()): Buffer {
    const json = JSON.stringify(
      [...from].map((e) => ({ fingerprint: e.fingerprint, prekey: prekeyToWire(e.prekey) })),
    );
    return Buffer.from(json, 'utf8');
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
      if (this.store) await this.store.setMeta(PREKEYS_META_KEY, this.#serialised(next.values()));
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

/** The stored prekeys, or what is wrong with them. */
function parseStored(bytes: Buffer): HeldPrekey[] | string {
  let parsed: unknown;
  try {
    parsed = JSON.parse(bytes.toString('utf8'));
  } catch {
    return 'are not JSON';
  }
  const result = StoredPrekeys.safeParse(parsed);
  return result.success ? result.data : 'do not pass the schema';
}

function sameEntry(a: HeldPrekey, b: HeldPrekey): boolean {
  return (
    a.fingerprint === b.fingerprint &&
    a.prekey.serial === b.prekey.serial &&
    a.prekey.signature.equals(b.prekey.signature)
  );
}
