/**
 * Failures during a burst with the members on different relay nodes (issue 10's tests), all real
 * processes on 127.0.0.1: a 3-server nats-server JetStream cluster, three `relay --cluster` nodes
 * with their own bundles (relay, relay2, relay3 from `group create` and `group add-member --relay`),
 * node i connected to NATS server i, stream replicas 3; `chat --json` members alice on node 1,
 * bob on node 2, carol on node 3, each given every node (their own first).
 *
 * - Node 1 is killed with SIGKILL during a 2,000-message burst from alice: she fails over to node
 *   2, and every message she saw `sent` reaches bob and carol exactly once, in order. bob and carol
 *   never change node, so everything they got crossed nodes through the shared stream.
 * - One NATS server is killed with SIGKILL during the burst: nothing acknowledged is lost (the
 *   stream's other replicas hold it), the burst completes, and the members go on chatting every
 *   way, whichever node the lost server's members moved to.
 */
import { mkdtempSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterEach, describe, expect, it } from 'vitest';
import {
  ChatProcess,
  cleanup,
  FAST_RELAY_FLAGS,
  runCli,
  startRelay,
  waitForAgreedKey,
  type RelayProcess,
} from '../helpers/client-processes.js';
import { FAST_ISSUE, id, messagesOf, sentOf, triedRelays } from '../helpers/chat-json-views.js';
import { startNats, type NatsCluster } from '../helpers/nats-servers.js';

let running: { kill(): Promise<unknown> }[] = [];
let nats: NatsCluster | undefined;

afterEach(async () => {
  await cleanup(...running);
  running = [];
  await nats?.stop();
  nats = undefined;
});

const NAMES = ['alice', 'bob', 'carol'] as const;
const TOTAL = 2000;

interface Cluster {
  nodes: RelayProcess[];
  /** What each node wrote to stderr so far (its log lines). */
  logs: string[];
  alice: ChatProcess;
  bob: ChatProcess;
  carol: ChatProcess;
}

/** The group (roster v3 lists three relays), NATS, three nodes and three keyed members. */
async function startCluster(): Promise<Cluster> {
  const dir = mkdtempSync(join(tmpdir(), 'scx-cluster-kill-'));
  const created = await runCli([
    'group',
    'create',
    '--out',
    dir,
    '--members',
    NAMES.join(','),
    ...FAST_ISSUE,
  ]);
  expect(created.code, created.stderr).toBe(0);
  for (const relay of ['relay2', 'relay3']) {
    const added = await runCli([
      'group',
      'add-member',
      '--ca',
      join(dir, 'ca.p12'),
      '--name',
      relay,
      '--relay',
      ...FAST_ISSUE,
    ]);
    expect(added.code, added.stderr).toBe(0);
  }
  nats = await startNats(3);
  const cluster = nats;
  const nodes: RelayProcess[] = [];
  const logs: string[] = [];
  for (const [i, bundle] of ['relay', 'relay2', 'relay3'].entries()) {
    const r = await startRelay(join(dir, `${bundle}.p12`), 0, [
      ...FAST_RELAY_FLAGS,
      '--roster',
      join(dir, 'roster.scx'),
      '--cluster',
      cluster.servers[i]?.url ?? '',
      '--replicas',
      '3',
    ]);
    running.push(r);
    nodes.push(r);
    logs.push('');
    r.proc.stderr.on('data', (d: Buffer) => (logs[i] += d.toString()));
  }
  const [n1, n2, n3] = nodes.map((n) => n.address) as [string, string, string];
  const lists: Record<(typeof NAMES)[number], string> = {
    alice: `${n1},${n2},${n3}`,
    bob: `${n2},${n3},${n1}`,
    carol: `${n3},${n2},${n1}`,
  };
  const [alice, bob, carol] = NAMES.map((n) => {
    const p = ChatProcess.start(n, join(dir, `${n}.p12`), lists[n]);
    running.push(p);
    return p;
  }) as [ChatProcess, ChatProcess, ChatProcess];
  await waitForAgreedKey([alice, bob, carol], [...NAMES]);
  expect(triedRelays(alice)).toEqual([n1]);
  expect(triedRelays(bob)).toEqual([n2]);
  expect(triedRelays(carol)).toEqual([n3]);
  return { nodes, logs, alice, bob, carol };
}

/** Sends the burst from alice and resolves once `atLeast` of it is acknowledged. */
async function burst(alice: ChatProcess, atLeast: number): Promise<void> {
  for (let i = 1; i <= TOTAL; i++) alice.send(`burst ${i}`);
  await alice.waitFor((p) => sentOf(p).length >= atLeast, `${atLeast} acknowledged`, 120_000);
}

/** Waits for the whole burst to be acknowledged; each receiver has every acknowledged one, once, in order. */
async function everyAcknowledgedOnceInOrder(c: Cluster): Promise<void> {
  await c.alice.waitFor(
    (p) => new Set(sentOf(p).map(id)).size >= TOTAL,
    `all ${TOTAL} acknowledged`,
    300_000,
  );
  const acknowledged = new Set(sentOf(c.alice).map(id));
  for (const p of [c.bob, c.carol]) {
    await p.waitFor(
      (x) =>
        new Set(
          messagesOf(x)
            .filter((m) => m.from === 'alice')
            .map(id),
        ).size >= acknowledged.size,
      `${acknowledged.size} messages from alice`,
      300_000,
    );
    const got = messagesOf(p).filter((m) => m.from === 'alice');
    const ids = got.map(id);
    expect(new Set(ids).size, `${p.name}: each message once`).toBe(ids.length);
    for (const a of acknowledged) expect(ids.includes(a), `${p.name} has ${a}`).toBe(true);
    const numbers = got.map((m) => Number(/^burst (\d+)$/.exec(m.text)?.[1]));
    expect(numbers).toEqual([...numbers].sort((x, y) => x - y));
  }
}

/** Each member sends one line after the burst: the other two show it. */
async function chatEveryWay(c: Cluster, tag: string): Promise<void> {
  const all = [c.alice, c.bob, c.carol];
  for (const from of all) from.send(`${tag} from ${from.name}`);
  for (const from of all) {
    for (const to of all) {
      if (to === from) continue;
      await to.waitFor(
        (x) => messagesOf(x).some((m) => m.from === from.name && m.text === `${tag} from ${from.name}`),
        `${to.name}: ${tag} from ${from.name}`,
        120_000,
      );
    }
  }
}

describe('failures during a burst, members on different relay nodes (3 NATS servers, 3 nodes)', () => {
  it('node 1 killed -9 during a 2,000-message burst: alice fails over, bob and carol get every acknowledged message once, in order', async () => {
    const c = await startCluster();
    const [n1, n2, n3] = c.nodes as [RelayProcess, RelayProcess, RelayProcess];
    await burst(c.alice, 300);
    const sentBeforeKill = new Set(sentOf(c.alice).map(id)).size;
    await n1.kill('SIGKILL');
    expect(sentBeforeKill, 'node 1 died during the burst').toBeLessThan(TOTAL);
    await everyAcknowledgedOnceInOrder(c);
    expect(triedRelays(c.alice).slice(0, 2)).toEqual([n1.address, n2.address]);
    // bob and carol stayed on their nodes: the burst reached them across nodes, carol's live.
    expect(triedRelays(c.bob)).toEqual([n2.address]);
    expect(triedRelays(c.carol)).toEqual([n3.address]);
    await chatEveryWay(c, 'after the kill');
  }, 600_000);

  it('one NATS server killed -9 during the burst: nothing acknowledged is lost and the cluster goes on', async () => {
    const c = await startCluster();
    await burst(c.alice, 300);
    const sentBeforeKill = new Set(sentOf(c.alice).map(id)).size;
    // bob's node's server: node 2 loses NATS, says Unavailable, and bob moves on; the stream keeps
    // two of its three replicas, so node 1 goes on storing alice's burst.
    await (nats as NatsCluster).kill9(1);
    expect(sentBeforeKill, 'the server died during the burst').toBeLessThan(TOTAL);
    await everyAcknowledgedOnceInOrder(c);
    // The loss did hit node 2: it said why, and bob moved on to the next node of his list.
    expect(c.logs[1]).toContain('"event":"cluster-lost"');
    const [, n2, n3] = c.nodes as [RelayProcess, RelayProcess, RelayProcess];
    expect(triedRelays(c.bob).slice(0, 2)).toEqual([n2.address, n3.address]);
    await chatEveryWay(c, 'after the NATS server');
  }, 600_000);
});
