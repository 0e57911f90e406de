/**
 * A member's prekeys without a network (client/prekeys.ts, engine-prekeys.ts, state/prekeys.ts):
 * rotation and erasure on their schedule, kept in the encrypted store across a reopen, the private
 * key overwritten on erasure; the others' prekeys verified against the trusted certificate with
 * typed refusals (signature, identity, validity, rollback across a restart, conflict).
 */
import { randomBytes } from 'node:crypto';
import { mkdtempSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { beforeAll, describe, expect, it } from 'vitest';
import { eraseRetiredKeys } from '../../src-main/client/engine-keys.js';
import { PrekeyDriver } from '../../src-main/client/engine-prekeys.js';
import { EpochKeyring } from '../../src-main/client/epoch-keyring.js';
import { MemoryEpochStore } from '../../src-main/client/options.js';
import { MemoryPrekeyStore, OwnPrekeys, PeerPrekeys, prekeyPolicy } from '../../src-main/client/prekeys.js';
import { MemberStateStore } from '../../src-main/client/state/member-store.js';
import type { LocalIdentity } from '../../src-main/core/pki/local-identity.js';
import { createPrekey, PrekeyError, signPrekey, type SignedPrekey } from '../../src-main/core/pki/prekey.js';
import type { BodyOf } from '../../src-main/core/protocol/schemas.js';
import { makeLoadedGroup } from '../helpers/client-identities.js';

let ids: Record<string, LocalIdentity>;
const id = (n: string): LocalIdentity => ids[n] as LocalIdentity;
const DAY = 86_400_000;
const T0 = 1_800_000_000_000;

beforeAll(() => {
  ids = makeLoadedGroup(['alice', 'bob']).identities;
});

function peerPrekey(
  member: string,
  serial: number,
  at = T0,
  signer = member,
  lifetimeMs = 14 * DAY,
): SignedPrekey {
  const fresh = createPrekey(member, serial, at, lifetimeMs);
  fresh.privateKey.fill(0);
  return signPrekey(fresh.prekey, id(signer));
}

function refusal(fn: () => unknown): string {
  try {
    fn();
  } catch (err) {
    if (err instanceof PrekeyError) return err.code;
    throw err;
  }
  return 'accepted';
}

describe('own prekeys', () => {
  it('rotates on the period, and erases a retired private key only after its successor was published for the retention window', () => {
    const store = new MemoryPrekeyStore();
    const policy = prekeyPolicy({ rotationMs: DAY, retentionMs: 3 * DAY });
    const own = new OwnPrekeys('alice', id('alice'), store, policy);
    const first = own.ensureCurrent(T0);
    expect(first.signed.serial).toBe(1);
    expect(own.ensureCurrent(T0 + DAY - 1)).toBe(first);
    const second = own.ensureCurrent(T0 + DAY);
    expect(second.signed.serial).toBe(2);
    // Not published yet: the old one stays however long.
    expect(own.eraseDue(T0 + 100 * DAY)).toEqual([]);
    own.published(2, T0 + DAY);
    expect(own.eraseDue(T0 + 4 * DAY - 1)).toEqual([]);
    expect(own.privateKey(1)).toBeDefined();
    expect(own.eraseDue(T0 + 4 * DAY)).toEqual([1]);
    expect(own.privateKey(1)).toBeUndefined();
    expect([...store.own.keys()]).toEqual([2]);
    // The current one is never erased.
    expect(own.eraseDue(T0 + 1000 * DAY)).toEqual([]);
    // "Renew keys": a new one at once, whatever the schedule.
    expect(own.ensureCurrent(T0 + 4 * DAY, true).signed.serial).toBe(3);
    // Above the serial the relay holds (a lost store).
    expect(own.ensureCurrent(T0 + 4 * DAY, true, 10).signed.serial).toBe(11);
  });

  it('keeps prekeys in the encrypted store across a reopen, and overwrites an erased private key', () => {
    const path = join(mkdtempSync(join(tmpdir(), 'scx-prekeys-')), 'state.db');
    const key = randomBytes(32);
    const owner = { groupId: 'ab'.repeat(32), member: 'alice' };
    const policy = prekeyPolicy({ rotationMs: DAY, retentionMs: DAY });
    let store = MemberStateStore.open(path, key, owner);
    let own = new OwnPrekeys('alice', id('alice'), store, policy);
    const first = own.ensureCurrent(T0);
    own.published(1, T0);
    own.ensureCurrent(T0 + DAY);
    own.published(2, T0 + DAY);
    const peers = new PeerPrekeys(store);
    expect(peers.accept(peerPrekey('bob', 4), id('bob').certificate, T0)).toBe(true);
    store.close();

    store = MemberStateStore.open(path, key, owner);
    own = new OwnPrekeys('alice', id('alice'), store, policy);
    expect(own.heldSerials).toEqual([1, 2]);
    expect(own.privateKey(1)?.equals(first.privateKey)).toBe(true);
    expect(own.eraseDue(T0 + 2 * DAY)).toEqual([1]);
    // Rollback is checked against what was accepted before the restart.
    const reopened = new PeerPrekeys(store);
    expect(refusal(() => reopened.accept(peerPrekey('bob', 3), id('bob').certificate, T0))).toBe(
      'PrekeyRollback',
    );
    store.close();
    store = MemberStateStore.open(path, key, owner);
    expect(new OwnPrekeys('alice', id('alice'), store, policy).heldSerials).toEqual([2]);
    store.close();
  });
});

describe("the others' prekeys", () => {
  it('refuses a bad prekey with its code and keeps the one held', () => {
    const peers = new PeerPrekeys(undefined);
    const bob = id('bob').certificate;
    expect(peers.accept(peerPrekey('bob', 2), bob, T0)).toBe(true);
    expect(refusal(() => peers.accept(peerPrekey('bob', 3, T0, 'alice'), bob, T0))).toBe('PrekeySignature');
    expect(refusal(() => peers.accept(peerPrekey('alice', 3), bob, T0))).toBe('PrekeyIdentity');
    expect(refusal(() => peers.accept(peerPrekey('bob', 3, T0, 'bob', DAY), bob, T0 + DAY))).toBe(
      'PrekeyExpired',
    );
    expect(refusal(() => peers.accept(peerPrekey('bob', 3, T0 + DAY), bob, T0))).toBe('PrekeyNotYetValid');
    expect(refusal(() => peers.accept(peerPrekey('bob', 1), bob, T0))).toBe('PrekeyRollback');
    expect(refusal(() => peers.accept(peerPrekey('bob', 2), bob, T0))).toBe('PrekeyConflict');
    expect(peers.usable(bob, T0)?.serial).toBe(2);
    // Another certificate of that name (a re-issued member) holds nothing yet.
    expect(peers.usable(id('alice').certificate, T0)).toBeUndefined();
    // Expired: nothing to seal to (the sender falls back, docs/security.md).
    expect(peers.usable(bob, T0 + 14 * DAY)).toBeUndefined();
  });

  it('the driver publishes once per session, reports refusals with their code, and goes above the relay’s serial of ours', () => {
    const sent: BodyOf<'PREKEY'>[] = [];
    const reports: string[] = [];
    let now = T0;
    const driver = new PrekeyDriver({
      self: 'alice',
      signer: id('alice'),
      store: new MemoryPrekeyStore(),
      policy: prekeyPolicy({ rotationMs: DAY }),
      now: () => now,
      certificateFor: (n) => id(n)?.certificate,
      sendPrekey: (b) => sent.push(b),
      online: () => true,
      report: (code) => reports.push(code),
    });
    // The relay holds alice's serial 7 (from a store she lost): her first goes above it.
    driver.onPrekeys({ session: Buffer.alloc(32), prekeys: [peerPrekey('alice', 7), peerPrekey('bob', 1)] });
    driver.publish();
    driver.publish();
    expect(sent.map((b) => b.prekey.serial)).toEqual([8]);
    driver.onPrekey('bob', { prekey: peerPrekey('bob', 1, T0, 'alice') });
    driver.onPrekey('bob', { prekey: peerPrekey('alice', 9) });
    expect(reports).toEqual(['PrekeySignature', 'PrekeyIdentity']);
    expect(driver.peers.usable(id('bob').certificate, now)?.serial).toBe(1);
    now += DAY;
    driver.tick();
    expect(sent.map((b) => b.prekey.serial)).toEqual([8, 9]);
    driver.sessionDown();
    driver.publish();
    expect(sent.map((b) => b.prekey.serial)).toEqual([8, 9, 9]);
  });
});

describe('epoch-key erasure', () => {
  it('erases a key once its successor has been established for the retention window, never the current one', () => {
    const store = new MemoryEpochStore();
    const keyring = new EpochKeyring('ab'.repeat(32), 1000, () => T0);
    const derived = (n: number) => ({ key: Buffer.alloc(32, n), safetyNumber: `${n}` });
    const save = (epoch: number, at: number, readOnly: boolean) =>
      store.saveKey({
        epoch,
        key: Buffer.alloc(32, epoch),
        rosterVersion: 1,
        members: ['alice', 'bob'],
        contributors: ['alice'],
        initiator: 'alice',
        safetyNumber: `${epoch}`,
        readOnly,
        establishedAt: at,
        messages: 0,
        sentSeq: 0,
      });
    keyring.installReadOnly(1, derived(1), ['alice', 'bob'], 'alice');
    keyring.installReadOnly(2, derived(2), ['alice', 'bob'], 'alice');
    keyring.install(3, derived(3), ['alice', 'bob'], 'alice');
    save(1, T0, true);
    save(2, T0 + 100, true);
    save(3, T0 + 200, false);
    expect(eraseRetiredKeys(keyring, store, T0 + 1099, 1000)).toEqual([]);
    expect(eraseRetiredKeys(keyring, store, T0 + 1100, 1000)).toEqual([1]);
    expect(keyring.knows(1)).toBe(true); // remembered as retired, no longer held
    expect(keyring.open(1, 'bob', 1, Buffer.alloc(12), Buffer.alloc(16)).ok).toBe(false);
    expect(eraseRetiredKeys(keyring, store, T0 + 10_000_000, 1000)).toEqual([2]);
    expect(store.loadKeys().map((k) => k.epoch)).toEqual([3]);
    expect(keyring.currentEpoch).toBe(3);
  });
});
