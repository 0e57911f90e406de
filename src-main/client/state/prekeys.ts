/**
 * Prekeys in the member's encrypted state store (DESIGN.md §10.8): its own X25519 prekeys (the
 * private parts HPKE envelopes to it open with) and the latest verified prekey of every other
 * member (so a rollback is refused across restarts too). secure_delete is on for this store: an
 * erased private key is overwritten in the file, not left in a free page.
 */
import type Database from 'better-sqlite3-multiple-ciphers';
import { prekeyFromWire, prekeyToWire, type SignedPrekey } from '../../core/pki/prekey.js';
import type { OwnPrekey } from '../prekeys.js';
import { StateStoreError } from './errors.js';

type Db = InstanceType<typeof Database>;

/** Migration 5 (member-store.ts's list; never edit it once shipped). */
export const PREKEYS_MIGRATION = `
CREATE TABLE own_prekeys (
  serial INTEGER PRIMARY KEY CHECK (serial >= 1),
  signed TEXT NOT NULL,
  private_key BLOB NOT NULL CHECK (length(private_key) = 32),
  published_at INTEGER
) STRICT;
CREATE TABLE peer_prekeys (
  member TEXT PRIMARY KEY,
  fingerprint TEXT NOT NULL,
  signed TEXT NOT NULL
) STRICT;
`;

function parseSigned(path: string, json: string): SignedPrekey {
  try {
    return prekeyFromWire(JSON.parse(json) as unknown);
  } catch (err) {
    throw new StateStoreError('StateStoreCorrupt', `${path}: a stored prekey does not parse`, { cause: err });
  }
}

export class PrekeyTable {
  constructor(
    private readonly db: Db,
    private readonly path: string,
  ) {}

  loadOwn(): OwnPrekey[] {
    const rows = this.db
      .prepare('SELECT serial, signed, private_key, published_at FROM own_prekeys ORDER BY serial')
      .all() as { serial: number; signed: string; private_key: Buffer; published_at: number | null }[];
    return rows.map((r) => ({
      signed: parseSigned(this.path, r.signed),
      privateKey: Buffer.from(r.private_key),
      ...(r.published_at !== null ? { publishedAt: r.published_at } : {}),
    }));
  }

  saveOwn(p: OwnPrekey): void {
    this.db
      .prepare('INSERT INTO own_prekeys (serial, signed, private_key, published_at) VALUES (?, ?, ?, ?)')
      .run(p.signed.serial, JSON.stringify(prekeyToWire(p.signed)), p.privateKey, p.publishedAt ?? null);
  }

  markPublished(serial: number, at: number): void {
    this.db
      .prepare('UPDATE own_prekeys SET published_at = ? WHERE serial = ? AND published_at IS NULL')
      .run(at, serial);
  }

  eraseOwn(serial: number): void {
    // Overwrite first, then delete (secure_delete zeroes the freed page as well).
    this.db.prepare('UPDATE own_prekeys SET private_key = zeroblob(32) WHERE serial = ?').run(serial);
    this.db.prepare('DELETE FROM own_prekeys WHERE serial = ?').run(serial);
  }

  loadPeers(): { prekey: SignedPrekey; fingerprint: string }[] {
    const rows = this.db.prepare('SELECT fingerprint, signed FROM peer_prekeys').all() as {
      fingerprint: string;
      signed: string;
    }[];
    return rows.map((r) => ({ prekey: parseSigned(this.path, r.signed), fingerprint: r.fingerprint }));
  }

  savePeer(prekey: SignedPrekey, fingerprint: string): void {
    this.db
      .prepare(
        `INSERT INTO peer_prekeys (member, fingerprint, signed) VALUES (?, ?, ?)
         ON CONFLICT (member) DO UPDATE SET fingerprint = excluded.fingerprint, signed = excluded.signed`,
      )
      .run(prekey.member, fingerprint, JSON.stringify(prekeyToWire(prekey)));
  }
}
