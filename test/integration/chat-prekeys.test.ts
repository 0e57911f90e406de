/**
 * Prekeys end to end (issue 11, step 2): three in-process engines with prekey stores against a real
 * relay process. They publish their prekeys, each takes the others', and the epoch that "renew
 * keys" starts is sealed with HPKE to the prekeys: every KEY_DISTRIBUTION of it in the relay's log
 * carries `hpke`, none opens with its target's RSA key, and the chat under it reaches everyone.
 * A member without a prekey store is sealed to with RSA-OAEP (the documented fallback).
 */
import { mkdtempSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterEach, describe, expect, it } from 'vitest';
import { MemoryPrekeyStore } from '../../src-main/client/prekeys.js';
import { keyDistributionAad } from '../../src-main/client/key-schedule.js';
import type { LocalIdentity } from '../../src-main/core/pki/local-identity.js';
import { decodeBody, readHeader } from '../../src-main/core/protocol/index.js';
import { SqliteRelayLog } from '../../src-main/relay/log/sqlite-log.js';
import { makeLoadedGroup } from '../helpers/client-identities.js';
import { TestMember } from '../helpers/client-engine.js';
import { startRelay, type RelayProcess } from '../helpers/relay-process.js';
import { viewOf } from '../helpers/store-relay.js';

let relay: RelayProcess | undefined;

/**
 * Waits until `predicate` holds, checking it every 20 ms: a prekey's arrival emits no engine event
 * (it is in the store the test passed), so there is nothing else to wait on. Not a timing assertion.
 */
async function until(predicate: () => boolean, what: string, timeoutMs = 20_000): Promise<void> {
  const deadline = Date.now() + timeoutMs;
  while (!predicate()) {
    if (Date.now() > deadline) throw new Error(`timed out waiting for ${what}`);
    await new Promise((r) => setTimeout(r, 20));
  }
}
let members: TestMember[] = [];

afterEach(async () => {
  await Promise.all(members.map((m) => m.engine.stop()));
  members = [];
  await relay?.stop();
  relay = undefined;
});

describe('HPKE-sealed epochs through a real relay', () => {
  it('renew keys: the next epoch is sealed to every prekey, and the RSA keys open none of it', async () => {
    const g = makeLoadedGroup(['alice', 'bob', 'carol']);
    const dataDir = mkdtempSync(join(tmpdir(), 'scx-chat-prekeys-'));
    relay = await startRelay(g.group.relayBundle, ['--data-dir', dataDir]);
    const names = ['alice', 'bob', 'carol'];
    const stores = new Map(names.map((n) => [n, new MemoryPrekeyStore()]));
    members = names.map(
      (n) =>
        new TestMember(g.identities[n] as LocalIdentity, (relay as RelayProcess).port, {
          prekeyStore: stores.get(n) as MemoryPrekeyStore,
        }),
    );
    for (const m of members) m.engine.start();
    for (const m of members) await m.waitForKey(names);
    // Everyone holds the others' prekeys (verified and stored: MemoryPrekeyStore.peers).
    for (const m of members) {
      const peers = (stores.get(m.name) as MemoryPrekeyStore).peers;
      await until(() => names.every((n) => n === m.name || peers.has(n)), `${m.name}: the others’ prekeys`);
    }
    const [alice, bob, carol] = members as [TestMember, TestMember, TestMember];
    const before = alice.engine.key?.epoch ?? 0;
    alice.engine.requestRekey();
    for (const m of members) {
      await m.waitFor(
        () => (m.engine.key?.epoch ?? 0) > before && m.engine.state === 'Chatting',
        'the new epoch',
      );
    }
    const epoch = alice.engine.key?.epoch as number;
    for (const m of members) await m.waitFor(() => m.engine.key?.epoch === epoch, `epoch ${epoch}`);
    alice.engine.send('sealed to prekeys');
    for (const m of [bob, carol]) {
      await m.waitFor(() => m.of('message').some((e) => e.text === 'sealed to prekeys'), 'the message');
    }
    for (const m of members) {
      expect(m.of('error').filter((e) => e.code.startsWith('Prekey'))).toEqual([]);
    }
    // alice published a new prekey for "renew keys": serial 2 at the relay.
    await relay.waitForLog(
      (l) => l.event === 'prekey-stored' && l.name === 'alice' && l.serial === 2,
      'serial 2',
    );
    await Promise.all(members.map((m) => m.engine.stop()));
    members = [];
    await relay.stop();
    relay = undefined;

    const log = SqliteRelayLog.open(dataDir);
    try {
      let sealed = 0;
      for (const target of names) {
        for (const entry of await viewOf(log, target)) {
          const h = readHeader(entry.frame);
          if (h.type !== 'KEY_DISTRIBUTION') continue;
          const body = decodeBody('KEY_DISTRIBUTION', h.body);
          if (body.epoch !== epoch) continue;
          sealed++;
          expect(body.hpke).toBeDefined();
          expect(body.wrappedKey).toBeUndefined();
          const rsa = g.identities[target] as LocalIdentity;
          expect(() =>
            rsa.openEnvelope(
              {
                wrappedKey: body.hpke?.enc ?? Buffer.alloc(0),
                iv: Buffer.alloc(12),
                ciphertext: body.ciphertext,
              },
              keyDistributionAad(rsa.groupId, epoch, entry.sender, target),
            ),
          ).toThrow();
        }
      }
      expect(sealed).toBe(2); // one per member but the initiator
    } finally {
      await log.close();
    }
  });

  it('a member without a prekey store still gets the key (RSA-OAEP), the others HPKE', async () => {
    const g = makeLoadedGroup(['alice', 'bob', 'carol']);
    const dataDir = mkdtempSync(join(tmpdir(), 'scx-chat-prekeys-'));
    relay = await startRelay(g.group.relayBundle, ['--data-dir', dataDir]);
    const names = ['alice', 'bob', 'carol'];
    const stores = new Map(['alice', 'bob'].map((n) => [n, new MemoryPrekeyStore()]));
    members = names.map((n) => {
      const store = stores.get(n);
      return new TestMember(g.identities[n] as LocalIdentity, (relay as RelayProcess).port, {
        ...(store ? { prekeyStore: store } : {}),
      });
    });
    for (const m of members) m.engine.start();
    for (const m of members) await m.waitForKey(names);
    for (const [n, s] of stores) {
      const other = n === 'alice' ? 'bob' : 'alice';
      await until(() => s.peers.has(other), `${n}: the prekey of ${other}`);
    }
    const [alice, , carol] = members as [TestMember, TestMember, TestMember];
    const before = alice.engine.key?.epoch ?? 0;
    alice.engine.requestRekey();
    for (const m of members) await m.waitFor(() => (m.engine.key?.epoch ?? 0) > before, 'the new epoch');
    const epoch = alice.engine.key?.epoch as number;
    alice.engine.send('to everyone');
    await carol.waitFor(() => carol.of('message').some((e) => e.text === 'to everyone'), 'the message');
    await Promise.all(members.map((m) => m.engine.stop()));
    members = [];
    await relay.stop();
    relay = undefined;
    const log = SqliteRelayLog.open(dataDir);
    try {
      const kinds: Record<string, string> = {};
      for (const target of names) {
        for (const entry of await viewOf(log, target)) {
          const h = readHeader(entry.frame);
          if (h.type !== 'KEY_DISTRIBUTION' || h.target !== target) continue;
          const body = decodeBody('KEY_DISTRIBUTION', h.body);
          if (body.epoch === epoch) kinds[target] = body.hpke ? 'hpke' : 'rsa';
        }
      }
      expect(kinds.carol).toBe('rsa');
      expect(Object.values(kinds).filter((k) => k === 'hpke')).toHaveLength(1);
    } finally {
      await log.close();
    }
  });
});
