/**
 * Epoch keys in the member's encrypted state store (state/epoch-keys.ts) and their restore into the
 * engine's keyring (engine-keys.ts): a restarted member has its current key back, the others
 * read-only, its own sequence numbers continue above what it reserved, only the newest 64 are kept.
 */
import { randomBytes } from 'node:crypto';
import { mkdtempSync, readFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { describe, expect, it } from 'vitest';
import { restoreKeys } from '../../src-main/client/engine-keys.js';
import { EpochKeyring } from '../../src-main/client/epoch-keyring.js';
import { MemoryEpochStore, type EpochStore } from '../../src-main/client/options.js';
import { MAX_STORED_EPOCH_KEYS, type StoredEpochKey } from '../../src-main/client/state/epoch-keys.js';
import { MemberStateStore, SCHEMA_VERSION } from '../../src-main/client/state/member-store.js';

const G = 'cd'.repeat(32);
const owner = { groupId: G, member: 'alice' };

function stored(epoch: number, over: Partial<StoredEpochKey> = {}): StoredEpochKey {
  return {
    epoch,
    key: Buffer.alloc(32, epoch % 256),
    rosterVersion: 2,
    members: ['alice', 'bob', 'carol'],
    contributors: ['alice', 'bob'],
    initiator: 'alice',
    safetyNumber: `00000 00000 00000 00000 00000 ${String(epoch).padStart(5, '0')}`,
    readOnly: false,
    establishedAt: 1_000 + epoch,
    messages: 0,
    sentSeq: 0,
    ...over,
  };
}

function openStore(path: string, key: Buffer): MemberStateStore {
  return MemberStateStore.open(path, key, owner);
}

describe('epoch keys in the state store', () => {
  it('survive a reopen with every field; a newer current key makes the older ones read-only', () => {
    const path = join(mkdtempSync(join(tmpdir(), 'scx-keys-')), 'm.db');
    const dbKey = randomBytes(32);
    const a = openStore(path, dbKey);
    expect(SCHEMA_VERSION).toBeGreaterThanOrEqual(3); // meta, history, epoch keys (and whatever follows)
    a.saveKey(stored(1));
    a.saveKey(stored(2, { contributors: ['alice'] }));
    a.saveMessages(2, 42);
    a.saveSentSeq(2, 1001);
    a.saveSentSeq(2, 5); // never lowers the reservation
    a.close();
    const b = openStore(path, dbKey);
    const keys = b.loadKeys();
    b.close();
    expect(keys.map((k) => [k.epoch, k.readOnly])).toEqual([
      [1, true],
      [2, false],
    ]);
    expect(keys[1]).toEqual(stored(2, { contributors: ['alice'], messages: 42, sentSeq: 1001 }));
    // Encrypted at rest: neither the key bytes nor the member names are in the file.
    const file = readFileSync(path);
    expect(file.includes(Buffer.alloc(32, 2))).toBe(false);
    expect(file.includes(Buffer.from('contributors'))).toBe(false);
  });

  it(`keeps only the newest ${MAX_STORED_EPOCH_KEYS} epochs`, () => {
    const store = openStore(join(mkdtempSync(join(tmpdir(), 'scx-keys-')), 'm.db'), randomBytes(32));
    for (let e = 1; e <= MAX_STORED_EPOCH_KEYS + 6; e++) store.saveKey(stored(e));
    const epochs = store.loadKeys().map((k) => k.epoch);
    store.close();
    expect(epochs.length).toBe(MAX_STORED_EPOCH_KEYS);
    expect(epochs[0]).toBe(7);
    expect(epochs.at(-1)).toBe(MAX_STORED_EPOCH_KEYS + 6);
  });

  it('restore: the newest current key is current again, older ones decrypt read-only, sealing continues above the reservation', () => {
    for (const store of [
      new MemoryEpochStore(),
      openStore(join(mkdtempSync(join(tmpdir(), 'scx-keys-')), 'm.db'), randomBytes(32)),
    ] as EpochStore[]) {
      const sender = new EpochKeyring(G, 10_000);
      sender.install(4, { key: Buffer.alloc(32, 4), safetyNumber: 's4' }, ['alice', 'bob'], 'alice');
      const old = sender.seal('bob', Buffer.from('under epoch 4'));
      store.saveKey?.(stored(4));
      store.saveKey?.(stored(5, { rosterVersion: 3 }));
      store.saveSentSeq?.(5, 1000);
      const ring = new EpochKeyring(G, 10_000);
      expect(restoreKeys(ring, store)).toBe(2);
      expect(ring.currentEpoch).toBe(5);
      expect(ring.current?.contributors).toEqual(['alice', 'bob']);
      expect(ring.currentInfo?.rosterVersion).toBe(3);
      expect(ring.currentInfo?.establishedAt).toBe(1005);
      expect(ring.highestEpoch).toBe(5);
      expect(ring.seal('alice', Buffer.from('x')).seq).toBe(1001);
      const opened = ring.open(4, 'bob', old.seq, old.iv, old.ciphertext);
      expect(opened.ok && opened.plaintext.toString()).toBe('under epoch 4');
      expect(ring.lookup(4)?.matches(Buffer.alloc(32, 4))).toBe(true);
      expect(ring.lookup(4)?.matches(Buffer.alloc(32, 9))).toBe(false);
      if (store instanceof MemberStateStore) store.close();
    }
  });

  it("restore: a key's replay window resumes above the history's highest sequence number per sender", () => {
    const store = openStore(join(mkdtempSync(join(tmpdir(), 'scx-keys-')), 'm.db'), randomBytes(32));
    store.saveKey(stored(5));
    // bob was 12,000 messages into epoch 5 when this member stopped: beyond one window from 0.
    store.history.record({
      from: 'bob',
      text: 'the last one shown',
      epoch: 5,
      seq: 12_000,
      sentAt: 1,
      receivedAt: 1,
      own: false,
    });
    const bob = new EpochKeyring(G, 10_000);
    bob.install(5, { key: Buffer.alloc(32, 5), safetyNumber: 's5' }, ['alice', 'bob', 'carol'], 'alice', {
      sentSeq: 11_999,
    });
    const again = bob.seal('bob', Buffer.from('seen before the restart'));
    const next = bob.seal('bob', Buffer.from('the next one'));
    expect([again.seq, next.seq]).toEqual([12_000, 12_001]);
    const ring = new EpochKeyring(G, 10_000);
    restoreKeys(ring, store);
    const replayed = ring.open(5, 'bob', again.seq, again.iv, again.ciphertext);
    expect(replayed.ok ? 'opened' : replayed.code).toBe('Replay');
    const opened = ring.open(5, 'bob', next.seq, next.iv, next.ciphertext);
    expect(opened.ok && opened.plaintext.toString()).toBe('the next one');
    store.close();
  });
});
