/**
 * Erasure in the member's state store, read as a thief reads it (test/helpers/sqlcipher-pages.ts):
 * every page of the encrypted file and of its write-ahead log, decrypted with the store key. An
 * erased epoch key or private prekey must be in none of them while the store is still open (a
 * running member, or one killed before it closed its store), not merely gone from SQLite's view.
 */
import { randomBytes } from 'node:crypto';
import { mkdtempSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { describe, expect, it } from 'vitest';
import { MemberStateStore } from '../../src-main/client/state/member-store.js';
import type { StoredEpochKey } from '../../src-main/client/state/epoch-keys.js';
import { createPrekey, signPrekey } from '../../src-main/core/pki/prekey.js';
import { pagesHolding } from '../helpers/sqlcipher-pages.js';

const owner = { groupId: 'ab'.repeat(32), member: 'alice' };
const T0 = 1_800_000_000_000;
/** Prekeys are stored as signed; what signs them does not matter to the store. */
const signer = { sign: () => randomBytes(256) };

function epochKey(epoch: number, key: Buffer): StoredEpochKey {
  return {
    epoch,
    key,
    rosterVersion: 1,
    members: ['alice', 'bob'],
    contributors: ['alice', 'bob'],
    initiator: 'alice',
    safetyNumber: `${epoch}`,
    readOnly: false,
    establishedAt: T0 + epoch,
    messages: 0,
    sentSeq: 0,
  };
}

describe('state store erasure', () => {
  it('leaves no copy of an erased epoch key or private prekey in the file or its WAL', () => {
    const path = join(mkdtempSync(join(tmpdir(), 'scx-erasure-')), 'm.db');
    const storeKey = randomBytes(32);
    const store = MemberStateStore.open(path, storeKey, owner);
    try {
      const oldKey = randomBytes(32);
      store.saveKey(epochKey(1, oldKey));
      store.saveKey(epochKey(2, randomBytes(32)));
      const fresh = createPrekey('alice', 1, T0);
      const oldPrekey = Buffer.from(fresh.privateKey);
      store.saveOwnPrekey({ signed: signPrekey(fresh.prekey, signer), privateKey: fresh.privateKey });
      // The method finds them while they are held: the assertions below can fail.
      expect(pagesHolding(path, storeKey, oldKey)).toBeGreaterThan(0);
      expect(pagesHolding(path, storeKey, oldPrekey)).toBeGreaterThan(0);

      store.eraseKey(1);
      store.eraseOwnPrekey(1);
      expect(store.loadKeys().map((k) => k.epoch)).toEqual([2]);
      expect(store.loadOwnPrekeys()).toEqual([]);
      expect(pagesHolding(path, storeKey, oldKey)).toBe(0);
      expect(pagesHolding(path, storeKey, oldPrekey)).toBe(0);
    } finally {
      store.close();
    }
  });
});
