/**
 * cluster.failover_ms (issue 10): in-process ChatEngine members with their encrypted stores (as
 * `chat` runs them), given every node's address, on three `relay --cluster` nodes (cluster-kit.ts).
 * alice is on node 1 ([n1, n2, n3]); bob on node 2 ([n2, n3, n1]). Per round: bob starts on his
 * store and agrees on the key with alice; alice sends LIVE texts and bob shows them; node 2 is
 * killed with SIGKILL (t0) and alice at once sends AWAY texts (stored through node 1 while bob has
 * no node). Measured from t0 until bob is Chatting again on another node and has shown every AWAY
 * text (login on node 3, SYNC from his offset, the replay). cluster.failover_login_ms: t0 until
 * bob is Chatting again. Median of ROUNDS; node 2 is started again on its port between rounds.
 *
 * Knobs: the engine's default reconnect backoff (250 ms doubling, jitter 0.5: the first retry
 * after 125-250 ms) and the relay's default presence TTL (30 s; the failover does not wait for it:
 * bob logs in on node 3 while node 2's entry for him is still listed). The relays' heartbeats are
 * the CLI's defaults; a SIGKILL closes bob's socket at once, so no heartbeat timeout is involved.
 */
import type { EngineEvent } from '../../src-main/client/engine-types.js';
import type { LocalIdentity } from '../../src-main/core/pki/index.js';
import type { NatsCluster } from '../../test/helpers/nats-servers.js';
import { percentile, type BenchResult } from '../harness.js';
import { BenchStore, Member, sleep } from './client-kit.js';
import { NODES, startNode, type ClusterGroup } from './cluster-kit.js';
import type { Child } from './relay-kit.js';

const ROUNDS = 3;
const LIVE = 20;
const AWAY = 200;
const TEXT_CHARS = 1000;
/** The engines' nodes: the relay's default limits but the admission cap per address (one host). */
const NODE_FLAGS = [
  '--max-pending-per-address',
  '128',
  '--heartbeat-interval-ms',
  '5000',
  '--heartbeat-timeout-ms',
  '15000',
];

const textOf = (tag: string, i: number): string =>
  `${tag} ${String(i).padStart(6, '0')} `.padEnd(TEXT_CHARS, 'x');

/** Until both are Chatting under one key (same epoch, same safety number). */
async function agree(a: Member, b: Member): Promise<void> {
  const deadline = performance.now() + 60_000;
  for (;;) {
    const [ka, kb] = [a, b].map((m) => (m.engine.state === 'Chatting' ? m.engine.key : undefined));
    if (ka && kb && ka.epoch === kb.epoch && ka.safetyNumber === kb.safetyNumber) return;
    if (performance.now() > deadline) throw new Error('alice and bob did not agree on a key');
    await sleep(1);
  }
}

const addr = (n: Child): { host: string; port: number } => ({ host: '127.0.0.1', port: n.port });

interface Round {
  totalMs: number;
  loginMs: number;
  timeline: string;
}

async function round(
  r: number,
  group: ClusterGroup,
  alice: Member,
  bobStore: BenchStore,
  nodes: Child[],
): Promise<Round> {
  const [n1, n2, n3] = nodes as [Child, Child, Child];
  const [, bobId] = group.identities as [LocalIdentity, LocalIdentity];
  const opened = bobStore.open();
  const bob = new Member(bobId, 0, {
    store: opened,
    roster: group.roster,
    relay: [addr(n2), addr(n3), addr(n1)],
  });
  try {
    const shown = new Set<string>();
    const events: { at: number; e: EngineEvent }[] = [];
    bob.onEvent = (e) => {
      if (e.event === 'message' && e.from === 'alice') shown.add(e.text.slice(0, 20));
      events.push({ at: performance.now(), e });
    };
    bob.engine.start();
    await agree(alice, bob);
    for (let i = 0; i < LIVE; i++) alice.engine.send(textOf(`live${r}`, i));
    await bob.until(() => [...shown].filter((t) => t.startsWith(`live${r} `)).length >= LIVE, 'LIVE shown');

    const awayShown = (): number => [...shown].filter((t) => t.startsWith(`away${r} `)).length;
    const t0 = performance.now();
    n2.proc.kill('SIGKILL');
    for (let i = 0; i < AWAY; i++) alice.engine.send(textOf(`away${r}`, i));
    let loginAt = Number.NaN;
    let left = false;
    await bob.until(
      () => {
        if (bob.engine.state !== 'Chatting') left = true;
        else if (left && Number.isNaN(loginAt)) loginAt = performance.now();
        return !Number.isNaN(loginAt) && awayShown() >= AWAY;
      },
      `back and ${AWAY} shown`,
      60_000,
    );
    const end = performance.now();
    const timeline = events
      .filter((x) => x.at >= t0 && x.e.event === 'state')
      .map((x) => {
        const e = x.e as Extract<EngineEvent, { event: 'state' }>;
        return `${(x.at - t0).toFixed(0)} ${e.state}${e.relay ? ` ${e.relay === `127.0.0.1:${n3.port}` ? 'n3' : e.relay}` : ''}`;
      })
      .join(', ');
    return { totalMs: end - t0, loginMs: loginAt - t0, timeline };
  } finally {
    bob.onEvent = undefined;
    await bob.engine.stop();
    opened.close();
  }
}

export async function clusterFailover(
  group: ClusterGroup,
  nats: NatsCluster,
  dir: string,
): Promise<BenchResult[]> {
  const nodes: Child[] = [];
  const [aliceId, bobId] = group.identities as [LocalIdentity, LocalIdentity];
  const aliceStore = new BenchStore(aliceId, dir);
  const bobStore = new BenchStore(bobId, dir);
  let alice: Member | undefined;
  let aliceOpened: ReturnType<BenchStore['open']> | undefined;
  try {
    for (let i = 0; i < NODES; i++) nodes.push(await startNode(group, nats, i, dir, NODE_FLAGS));
    const [n1, n2, n3] = nodes as [Child, Child, Child];
    aliceOpened = aliceStore.open();
    alice = new Member(aliceId, 0, {
      store: aliceOpened,
      roster: group.roster,
      relay: [addr(n1), addr(n2), addr(n3)],
    });
    alice.engine.start();
    const rounds: Round[] = [];
    for (let r = 0; r < ROUNDS; r++) {
      if (r > 0) nodes[1] = await startNode(group, nats, 1, dir, [...NODE_FLAGS, '--port', String(n2.port)]);
      rounds.push(await round(r, group, alice, bobStore, nodes));
    }
    for (const [i, x] of rounds.entries())
      console.log(
        `  (failover round ${i + 1}: back ${x.loginMs.toFixed(0)} ms, caught up ${x.totalMs.toFixed(0)} ms; bob: ${x.timeline})`,
      );
    return [
      {
        name: 'cluster.failover_ms',
        value: percentile(
          rounds.map((x) => x.totalMs),
          50,
        ),
        unit: 'ms',
      },
      {
        name: 'cluster.failover_login_ms',
        value: percentile(
          rounds.map((x) => x.loginMs),
          50,
        ),
        unit: 'ms',
      },
    ];
  } finally {
    await alice?.engine.stop();
    aliceOpened?.close();
    await Promise.all(nodes.map((n) => n.stop()));
  }
}
