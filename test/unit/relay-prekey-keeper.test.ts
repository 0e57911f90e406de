/**
 * PrekeyKeeper.adopt, the cluster side of the relay's prekeys: two keepers on one store stand for
 * two nodes on the shared meta. Each node writes its whole set, so one's write can hide the
 * other's; the merge takes the newer prekey per member, writes back what the shared value lacks,
 * never goes back a serial, and between two certificates of one name keeps the roster's.
 */
import { createPrivateKey } from 'node:crypto';
import { mkdtempSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import pino from 'pino';
import { afterEach, describe, expect, it } from 'vitest';
import { signPss } from '../../src-main/core/crypto/index.js';
import {
  createGroupCa,
  createPrekey,
  issueCertificate,
  signPrekey,
  type Credential,
  type SignedPrekey,
} from '../../src-main/core/pki/index.js';
import { SqliteRelayLog } from '../../src-main/relay/log/sqlite-log.js';
import { PREKEYS_META_KEY, PrekeyKeeper } from '../../src-main/relay/prekey-keeper.js';

const silent = pino({ level: 'silent' });
const ca = createGroupCa({ name: 'Keeper Test CA' });
const alice = issueCertificate(ca, { name: 'alice', role: 'member' });
const bob = issueCertificate(ca, { name: 'bob', role: 'member' });
const NOW = Date.now();

function prekey(by: Credential, serial: number): SignedPrekey {
  const { prekey: p, privateKey } = createPrekey(by.certificate.name, serial, NOW - 1000);
  privateKey.fill(0);
  const key = createPrivateKey(by.privateKeyPem);
  return signPrekey(p, { sign: (data) => signPss(key, data) });
}

const certs = [alice, bob].map((c) => ({
  name: c.certificate.name,
  fingerprintHex: c.certificate.fingerprintHex,
}));
const rosterOf =
  (...listed: Credential[]) =>
  (name: string): string | undefined =>
    listed.find((c) => c.certificate.name === name)?.certificate.fingerprintHex;

let stores: SqliteRelayLog[] = [];
afterEach(async () => {
  await Promise.all(stores.map((s) => s.close()));
  stores = [];
});

function sharedStore(): SqliteRelayLog {
  const s = SqliteRelayLog.open(mkdtempSync(join(tmpdir(), 'scx-prekey-keeper-')));
  stores.push(s);
  return s;
}

async function shared(store: SqliteRelayLog): Promise<Buffer> {
  const bytes = await store.getMeta(PREKEYS_META_KEY);
  if (!bytes) throw new Error('no prekeys in the meta');
  return bytes;
}

const serials = (k: PrekeyKeeper): Record<string, number> =>
  Object.fromEntries(k.validFor(certs).map((p) => [p.member, p.serial]));

describe('PrekeyKeeper.adopt (prekeys shared between cluster nodes)', () => {
  it('two nodes storing at once: the merge is written back and both end with both', async () => {
    const store = sharedStore();
    const node1 = new PrekeyKeeper(store, silent);
    const node2 = new PrekeyKeeper(store, silent);
    expect((await node1.offer(prekey(alice, 1), alice.certificate)).kind).toBe('stored');
    // node 2 has not seen alice's yet: its write holds bob's only and hides alice's.
    expect((await node2.offer(prekey(bob, 1), bob.certificate)).kind).toBe('stored');
    const afterNode2 = await shared(store);
    expect(await node1.adopt(afterNode2, rosterOf(alice, bob))).toEqual({ kind: 'merged', changed: ['bob'] });
    const merged = await shared(store);
    expect(merged.equals(afterNode2)).toBe(false); // node 1 wrote alice's back
    expect(await node2.adopt(merged, rosterOf(alice, bob))).toEqual({ kind: 'merged', changed: ['alice'] });
    expect((await shared(store)).equals(merged)).toBe(true); // nothing more to write: settled
    expect(serials(node1)).toEqual({ alice: 1, bob: 1 });
    expect(serials(node2)).toEqual({ alice: 1, bob: 1 });
  });

  it('a shared value with an older serial does not go back, and the newer one is written back', async () => {
    const store = sharedStore();
    const node1 = new PrekeyKeeper(store, silent);
    const node2 = new PrekeyKeeper(store, silent);
    await node2.offer(prekey(alice, 1), alice.certificate);
    const old = await shared(store);
    await node1.adopt(old, rosterOf(alice));
    await node1.offer(prekey(alice, 2), alice.certificate);
    expect(await node2.adopt(await shared(store), rosterOf(alice))).toEqual({
      kind: 'merged',
      changed: ['alice'],
    });
    // The old value seen late (a write that landed last): kept at 2 and 2 written back.
    expect(await node2.adopt(old, rosterOf(alice))).toEqual({ kind: 'merged', changed: [] });
    expect(serials(node2)).toEqual({ alice: 2 });
    const back = new PrekeyKeeper(store, silent);
    await back.load();
    expect(serials(back)).toEqual({ alice: 2 });
  });

  it('two certificates of one name: the one the roster lists is kept', async () => {
    const again = issueCertificate(ca, { name: 'alice', role: 'member' });
    const storeOld = sharedStore();
    const storeNew = sharedStore();
    await new PrekeyKeeper(storeOld, silent).offer(prekey(alice, 3), alice.certificate);
    await new PrekeyKeeper(storeNew, silent).offer(prekey(again, 1), again.certificate);
    const oldBytes = await shared(storeOld);
    const newBytes = await shared(storeNew);

    const node = new PrekeyKeeper(sharedStore(), silent);
    await node.adopt(oldBytes, rosterOf(again));
    // The re-added certificate's serial 1 replaces the removed one's 3: the roster lists it.
    expect(await node.adopt(newBytes, rosterOf(again))).toEqual({ kind: 'merged', changed: ['alice'] });
    expect(node.validFor([{ name: 'alice', fingerprintHex: again.certificate.fingerprintHex }])).toHaveLength(
      1,
    );
    // And the old certificate's, shared late, does not come back.
    expect(await node.adopt(oldBytes, rosterOf(again))).toEqual({ kind: 'merged', changed: [] });
    expect(node.validFor([{ name: 'alice', fingerprintHex: again.certificate.fingerprintHex }])).toHaveLength(
      1,
    );
  });

  it('shared bytes that are not prekeys are refused and nothing held changes', async () => {
    const node = new PrekeyKeeper(sharedStore(), silent);
    await node.offer(prekey(bob, 1), bob.certificate);
    for (const bad of ['not json', '[{"fingerprint":"00","prekey":{}}]', '{}']) {
      expect((await node.adopt(Buffer.from(bad), rosterOf(bob))).kind).toBe('rejected');
    }
    expect(serials(node)).toEqual({ bob: 1 });
  });
});
