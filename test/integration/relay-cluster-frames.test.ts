/**
 * Two relay nodes of one group in this process (RelayServer with a JetStreamRelayLog and a
 * ClusterNode each) on a real nats-server, with raw protocol members, to see the frames
 * themselves rather than what a client makes of them (a client drops duplicates, a raw member does
 * not): every logged frame reaches every member of both nodes once, as DELIVERED with its offset
 * (bare to a v1 session), in log order, never back to its sender; its sender gets STORED; PRESENCE
 * lists both nodes' members; NONCE_REQUEST and CERT_REQUEST work for a member on the other node.
 */
import { pino } from 'pino';
import { afterEach, beforeAll, describe, expect, it } from 'vitest';
import type { BodyOf } from '../../src-main/core/protocol/index.js';
import { ClusterNode } from '../../src-main/relay/cluster/node.js';
import { JetStreamRelayLog } from '../../src-main/relay/log/jetstream-log.js';
import { RelayServer } from '../../src-main/relay/server.js';
import { startNats, type NatsCluster } from '../helpers/nats-servers.js';
import { chatBody, must, RawMember } from '../helpers/raw-member.js';
import { storeTestGroup, type StoreTestGroup } from '../helpers/store-relay.js';

const silent = pino({ level: 'silent' });
let g: StoreTestGroup;
let nats: NatsCluster | undefined;
const nodes: { relay: RelayServer; node: ClusterNode; log: JetStreamRelayLog; port: number }[] = [];
const open: RawMember[] = [];

beforeAll(() => {
  g = storeTestGroup(['alice', 'bob', 'carol', 'dave']);
});

afterEach(async () => {
  for (const m of open.splice(0)) m.destroy();
  for (const n of nodes.splice(0)) {
    await n.relay.close();
    await n.node.stop();
    await n.log.close();
  }
  await nats?.stop();
  nats = undefined;
});

async function startNode(cluster: NatsCluster): Promise<number> {
  const identity = g.id('relay');
  const log = await JetStreamRelayLog.connect(cluster.urls, { groupId: identity.groupId });
  const node = await ClusterNode.open({ log, identity, logger: silent });
  const relay = new RelayServer({
    identity,
    store: log,
    cluster: node,
    roster: g.rosterBytes(),
    logger: silent,
    limits: { presenceIntervalMs: 0, rateFramesPerSec: 0 },
  });
  const { port } = await relay.listen({ host: '127.0.0.1', port: 0 });
  nodes.push({ relay, node, log, port });
  return port;
}

async function member(name: string, port: number, synced = true): Promise<RawMember> {
  const m = await RawMember.join(g.id(name), { port });
  open.push(m);
  if (synced) {
    m.sync('', 0);
    await m.waitLive();
  }
  return m;
}

describe('relay cluster: frames across two nodes', { timeout: 120_000 }, () => {
  it('each logged frame reaches every member of both nodes once, with its offset, in log order', async () => {
    nats = await startNats(1);
    const a = await startNode(nats);
    const b = await startNode(nats);
    const alice = await member('alice', a);
    const dave = await member('dave', a, false); // v1: bare envelopes
    const bob = await member('bob', b);
    const carol = await member('carol', b);
    const everyone = ['alice', 'bob', 'carol', 'dave'];
    for (const m of [alice, bob, carol, dave]) await m.waitForPresence(everyone);

    // Two nodes appending at once.
    const fromAlice: Buffer[] = [];
    const fromBob: Buffer[] = [];
    for (let seq = 1; seq <= 100; seq++) {
      const fa = alice.seal('ENCRYPTED_TEXT', '', chatBody(seq, 300));
      const fb = bob.seal('ENCRYPTED_TEXT', '', chatBody(seq, 300));
      fromAlice.push(fa);
      fromBob.push(fb);
      alice.sendPayload(fa);
      bob.sendPayload(fb);
    }
    await alice.until(() => alice.storedAcks().length >= 100, 60_000, 'alice: 100 acks');
    await bob.until(() => bob.storedAcks().length >= 100, 60_000, 'bob: 100 acks');
    const offsetOf = new Map<Buffer, number>();
    alice.storedAcks().forEach((ack, i) => offsetOf.set(must(fromAlice[i]), ack.offset));
    bob.storedAcks().forEach((ack, i) => offsetOf.set(must(fromBob[i]), ack.offset));
    const inLogOrder = [...offsetOf].sort((x, y) => x[1] - y[1]);

    await carol.until(() => carol.delivered().length >= 200, 60_000, 'carol: 200 DELIVERED');
    await alice.until(() => alice.delivered().length >= 100, 60_000, 'alice: 100 DELIVERED');
    await bob.until(() => bob.delivered().length >= 100, 60_000, 'bob: 100 DELIVERED');
    await dave.until(() => dave.ofType('ENCRYPTED_TEXT').length >= 200, 60_000, 'dave: 200 chats');
    // The last of them may still be in flight: a marker after everything, then counts are final.
    const marker = carol.seal('ENCRYPTED_TEXT', '', chatBody(1));
    carol.sendPayload(marker);
    await alice.until(() => alice.delivered().some((f) => f.raw.equals(marker)), 60_000, 'marker');
    await dave.until(() => dave.ofType('ENCRYPTED_TEXT').some((f) => f.raw.equals(marker)), 60_000, 'marker');
    await bob.until(() => bob.delivered().some((f) => f.raw.equals(marker)), 60_000, 'marker');

    const expectDelivered = (m: RawMember, frames: [Buffer, number][]): void => {
      const got = m.delivered().filter((f) => !f.raw.equals(marker));
      expect(got.map((f) => f.offset)).toEqual(frames.map(([, o]) => o));
      expect(got.map((f) => f.raw)).toEqual(frames.map(([f]) => f));
    };
    expectDelivered(carol, inLogOrder);
    expectDelivered(
      alice,
      inLogOrder.filter(([f]) => fromBob.includes(f)),
    );
    expectDelivered(
      bob,
      inLogOrder.filter(([f]) => fromAlice.includes(f)),
    );
    expect(
      dave
        .ofType('ENCRYPTED_TEXT')
        .filter((f) => !f.raw.equals(marker))
        .map((f) => f.raw),
    ).toEqual(inLogOrder.map(([f]) => f));
    expect(dave.delivered()).toEqual([]);
  });

  it('nonce requests, key distributions and certificates for a member on the other node', async () => {
    nats = await startNats(1);
    const a = await startNode(nats);
    const b = await startNode(nats);
    const alice = await member('alice', a);
    const bob = await member('bob', b);
    for (const m of [alice, bob]) await m.waitForPresence(['alice', 'bob']);

    const request: BodyOf<'NONCE_REQUEST'> = {
      epoch: 1,
      membershipVersion: 1,
      rosterVersion: 1,
      members: ['alice', 'bob'],
      challenge: Buffer.alloc(256, 7),
    };
    const nonce = alice.seal('NONCE_REQUEST', 'bob', request);
    alice.sendPayload(nonce);
    await bob.until(() => bob.ofType('NONCE_REQUEST').length >= 1, 30_000, 'NONCE_REQUEST');
    expect(bob.ofType('NONCE_REQUEST').map((f) => f.raw)).toEqual([nonce]);

    const kd = alice.seal('KEY_DISTRIBUTION', 'bob', {
      epoch: 1,
      wrappedKey: Buffer.alloc(256, 1),
      iv: Buffer.alloc(12, 2),
      ciphertext: Buffer.alloc(64, 3),
    });
    alice.sendPayload(kd);
    await bob.until(() => bob.delivered().some((f) => f.raw.equals(kd)), 30_000, 'KEY_DISTRIBUTION');

    alice.sendPayload(alice.seal('CERT_REQUEST', '', { names: ['bob'] }));
    const response = await alice.until(() => alice.ofType('CERT_RESPONSE').at(-1), 30_000, 'CERT_RESPONSE');
    const body = response.body as BodyOf<'CERT_RESPONSE'>;
    expect(body.certificates.map((c) => c.name)).toEqual(['bob']);
    expect(must(body.certificates[0]).certificate.equals(g.id('bob').certificate.der)).toBe(true);
    expect(alice.errors()).toEqual([]);
  });
});
