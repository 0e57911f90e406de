/**
 * Prekeys across relay nodes (issue 10 with issue 11's prekeys), real processes on 127.0.0.1: a
 * nats-server with JetStream, three `securechat-x relay --cluster` nodes on it, and three
 * in-process engines with prekey stores, alice on node 1, bob on node 2, carol on node 3.
 *
 * A PREKEY stored by one node is in the shared meta, so every node holds it and sends it to its
 * own members: each member ends up with the prekeys of the members on the other nodes (which no
 * node but the storing one had before), and the epoch that "renew keys" starts is sealed with HPKE
 * to them: every KEY_DISTRIBUTION of it in the shared stream carries `hpke`, none opens with its
 * target's RSA key (the proof of chat-prekeys.test.ts), and the chat under it reaches everyone.
 */
import { afterEach, describe, expect, it } from 'vitest';
import { keyDistributionAad } from '../../src-main/client/key-schedule.js';
import { MemoryPrekeyStore } from '../../src-main/client/prekeys.js';
import type { LocalIdentity } from '../../src-main/core/pki/local-identity.js';
import { decodeBody, readHeader } from '../../src-main/core/protocol/index.js';
import { JetStreamRelayLog } from '../../src-main/relay/log/jetstream-log.js';
import { makeLoadedGroup } from '../helpers/client-identities.js';
import { TestMember } from '../helpers/client-engine.js';
import { cleanup, FAST_RELAY_FLAGS, startRelay, type RelayProcess } from '../helpers/client-processes.js';
import { startNats, type NatsCluster } from '../helpers/nats-servers.js';
import { viewOf } from '../helpers/store-relay.js';

let relays: RelayProcess[] = [];
let members: TestMember[] = [];
let nats: NatsCluster | undefined;

afterEach(async () => {
  await Promise.all(members.map((m) => m.engine.stop()));
  members = [];
  await cleanup(...relays);
  relays = [];
  await nats?.stop();
  nats = undefined;
});

/**
 * Waits until `predicate` holds, checking it every 20 ms: a prekey's arrival emits no engine event
 * (it is in the store the test passed), so there is nothing else to wait on. Not a timing assertion.
 */
async function until(predicate: () => boolean, what: string, timeoutMs = 60_000): Promise<void> {
  const deadline = Date.now() + timeoutMs;
  while (!predicate()) {
    if (Date.now() > deadline) throw new Error(`timed out waiting for ${what}`);
    await new Promise((r) => setTimeout(r, 20));
  }
}

describe('prekeys shared between relay nodes', () => {
  it('members on three nodes take each other’s prekeys, and renew keys seals to them (HPKE, no RSA)', async () => {
    const names = ['alice', 'bob', 'carol'];
    const g = makeLoadedGroup(names);
    nats = await startNats(1);
    const cluster = nats;
    for (let i = 0; i < 3; i++) {
      relays.push(
        await startRelay(g.group.relayBundle, 0, [
          ...FAST_RELAY_FLAGS,
          '--roster',
          g.group.rosterPath,
          '--cluster',
          cluster.urls.join(','),
        ]),
      );
    }
    const stores = new Map(names.map((n) => [n, new MemoryPrekeyStore()]));
    members = names.map(
      (n, i) =>
        new TestMember(g.identities[n] as LocalIdentity, (relays[i] as RelayProcess).port, {
          prekeyStore: stores.get(n) as MemoryPrekeyStore,
        }),
    );
    for (const m of members) m.engine.start();
    for (const m of members) await m.waitForKey(names);
    // Every prekey was stored by one node only: the others' members have it through the meta.
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
    alice.engine.send('sealed to prekeys across nodes');
    for (const m of [bob, carol]) {
      await m.waitFor(
        () => m.of('message').some((e) => e.text === 'sealed to prekeys across nodes'),
        'the message',
      );
    }
    for (const m of members) {
      expect(m.of('error').filter((e) => e.code.startsWith('Prekey'))).toEqual([]);
    }
    await Promise.all(members.map((m) => m.engine.stop()));
    members = [];
    await cleanup(...relays);
    relays = [];

    const log = await JetStreamRelayLog.open({
      nc: await cluster.connect(),
      groupId: (g.identities.alice as LocalIdentity).groupId,
    });
    try {
      let sealed = 0;
      for (const target of names) {
        for (const entry of await viewOf(log, target)) {
          const h = readHeader(entry.frame);
          if (h.type !== 'KEY_DISTRIBUTION' || h.target !== target) continue;
          const body = decodeBody('KEY_DISTRIBUTION', h.body);
          if (body.epoch !== epoch) continue;
          sealed++;
          expect(body.hpke, `${entry.sender} -> ${target}`).toBeDefined();
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
      expect(sealed).toBe(2); // one per member but the initiator, each on another node than alice
    } finally {
      await log.close();
    }
  }, 300_000);
});
