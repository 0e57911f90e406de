/**
 * Relay nodes sharing one group through NATS JetStream (docs/relay.md "Cluster"), all real
 * processes on 127.0.0.1: a 3-server nats-server cluster (test/helpers/nats-servers.ts, stopped by
 * PID), three `securechat-x relay --cluster` nodes, each connected to another NATS server, and
 * `securechat-x chat --json` members, one per node:
 *
 * - alice on node 1, bob on node 2, carol on node 3 key together (nonce requests and responses
 *   cross nodes over NATS, key distributions through the shared log), chat every way with one
 *   safety number; then carol leaves, alice and bob go on, everything is stopped (relays, NATS)
 *   and started again: carol catches up on what she missed, once each and in log order, and the
 *   histories hold every message;
 * - a removal published on node 2 drops carol on node 3 and refuses her there at login.
 *
 * Every wait is for an event (a line, a key, a message), never for a time.
 */
import { execFile } from 'node:child_process';
import { mkdtempSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { promisify } from 'node:util';
import { jetstreamManager } from '@nats-io/jetstream';
import { afterEach, describe, expect, it } from 'vitest';
import { makeLoadedGroup, type LoadedGroup } from '../helpers/client-identities.js';
import {
  ChatProcess,
  cleanup,
  FAST_RELAY_FLAGS,
  publishRoster,
  runCli,
  startRelay,
  waitForAgreedKey,
  type ChatJsonEvent,
  type RelayProcess,
} from '../helpers/client-processes.js';
import { TEST_PASSWORD } from '../helpers/group.js';
import { startNats, waitForStreamLeaders, type NatsCluster } from '../helpers/nats-servers.js';
import { CLI } from '../helpers/relay-process.js';

const run = promisify(execFile);
let running: { kill(): Promise<unknown> }[] = [];
let clusters: NatsCluster[] = [];

afterEach(async () => {
  await cleanup(...running);
  running = [];
  await Promise.all(clusters.map((c) => c.stop()));
  clusters = [];
});

async function nats(): Promise<NatsCluster> {
  const c = await startNats(3);
  clusters.push(c);
  return c;
}

/** Node `i` of the relay cluster, connected to NATS server `i`. */
async function node(
  g: LoadedGroup,
  cluster: NatsCluster,
  i: number,
  extra: string[] = [],
): Promise<RelayProcess> {
  const url = cluster.servers[i]?.url;
  if (url === undefined) throw new Error(`no NATS server ${i}`);
  const r = await startRelay(g.group.relayBundle, 0, [
    ...FAST_RELAY_FLAGS,
    '--roster',
    g.group.rosterPath,
    '--cluster',
    url,
    '--replicas',
    String(cluster.servers.length),
    ...extra,
  ]);
  running.push(r);
  return r;
}

/** Resolves once the relay has logged a line with `"event":"<event>"` on stderr. */
function relayLogged(r: RelayProcess, event: string, timeoutMs = 60_000): Promise<Record<string, unknown>> {
  return new Promise((resolve, reject) => {
    let seen = '';
    let buffered = '';
    const timer = setTimeout(() => {
      r.proc.stderr.off('data', onData);
      reject(new Error(`the relay logged no ${event} within ${timeoutMs} ms: ${seen.slice(-4000)}`));
    }, timeoutMs);
    const onData = (d: Buffer): void => {
      seen += d.toString();
      buffered += d.toString();
      const lines = buffered.split('\n');
      buffered = lines.pop() ?? '';
      for (const line of lines) {
        if (!line.includes(`"event":"${event}"`)) continue;
        clearTimeout(timer);
        r.proc.stderr.off('data', onData);
        resolve(JSON.parse(line) as Record<string, unknown>);
        return;
      }
    };
    r.proc.stderr.on('data', onData);
    void r.exited.then((code) => reject(new Error(`relay exited (${code}) before logging ${event}`)));
  });
}

const onlineOf = (p: ChatProcess): string[] =>
  ((p.of('members').at(-1)?.members as { name: string }[] | undefined) ?? []).map((x) => x.name);

async function streamNames(cluster: NatsCluster): Promise<string[]> {
  const jsm = await jetstreamManager(await cluster.connect());
  const names: string[] = [];
  for await (const name of jsm.streams.names()) names.push(name);
  return names;
}

interface Member {
  name: string;
  state: string;
}

function members(names: string[]): Record<string, Member> {
  return Object.fromEntries(
    names.map((n) => [n, { name: n, state: mkdtempSync(join(tmpdir(), `scx-state-${n}-`)) }]),
  );
}

function chat(g: LoadedGroup, m: Member | undefined, relay: RelayProcess): ChatProcess {
  if (m === undefined) throw new Error('no such member');
  const p = ChatProcess.start(m.name, g.group.bundles[m.name] as string, relay.address, {
    stateDir: m.state,
  });
  running.push(p);
  return p;
}

const messagesOf = (p: ChatProcess) =>
  p.of('message') as unknown as { from: string; text: string; offset?: number }[];

async function historyTexts(g: LoadedGroup, m: Member | undefined): Promise<string[]> {
  if (m === undefined) throw new Error('no such member');
  const { stdout } = await run(
    process.execPath,
    [CLI, 'history', '--bundle', g.group.bundles[m.name] as string, '--state-dir', m.state, '--json'],
    { env: { ...process.env, SECURECHAT_PASSWORD: TEST_PASSWORD }, maxBuffer: 64 * 1024 * 1024 },
  );
  return stdout
    .trim()
    .split('\n')
    .filter((l) => l.length > 0)
    .map((l) => (JSON.parse(l) as ChatJsonEvent).text as string);
}

async function leave(p: ChatProcess): Promise<void> {
  p.end();
  expect(await p.exited).toBe(0);
}

describe('relay cluster on NATS JetStream', { timeout: 300_000 }, () => {
  it('alice, bob and carol on three nodes key, chat every way with one safety number; a full restart keeps histories and catch-up', async () => {
    const g = makeLoadedGroup(['alice', 'bob', 'carol']);
    const m = members(['alice', 'bob', 'carol']);
    const cluster = await nats();
    const nodes = [await node(g, cluster, 0), await node(g, cluster, 1), await node(g, cluster, 2)];
    const alice = chat(g, m.alice, nodes[0] as RelayProcess);
    const bob = chat(g, m.bob, nodes[1] as RelayProcess);
    let carol = chat(g, m.carol, nodes[2] as RelayProcess);
    const all = [alice, bob, carol];
    const { safetyNumber } = await waitForAgreedKey(all, ['alice', 'bob', 'carol'], 60_000);
    expect(safetyNumber).toMatch(/^\d{5}( \d{5}){5}$/);

    for (const p of all) p.send(`hello from ${p.name}`);
    for (const to of all) {
      for (const from of all) {
        if (from !== to) await to.waitForMessage(from.name, `hello from ${from.name}`, 60_000);
      }
    }
    // Each message once, on every other node.
    for (const to of all) {
      const hellos = messagesOf(to).filter((x) => x.text.startsWith('hello from '));
      expect(hellos.map((x) => x.text).sort()).toEqual(
        all.filter((p) => p !== to).map((p) => `hello from ${p.name}`),
      );
    }

    // Live across nodes while two nodes append at once: each frame once, in log order, to each.
    for (let i = 1; i <= 50; i++) {
      alice.send(`burst alice ${i}`);
      bob.send(`burst bob ${i}`);
    }
    await carol.waitForMessage('alice', 'burst alice 50', 60_000);
    await carol.waitForMessage('bob', 'burst bob 50', 60_000);
    await alice.waitForMessage('bob', 'burst bob 50', 60_000);
    await bob.waitForMessage('alice', 'burst alice 50', 60_000);
    const burst = (p: ChatProcess) => messagesOf(p).filter((x) => x.text.startsWith('burst '));
    const seen = burst(carol);
    expect(seen).toHaveLength(100);
    const live = seen.map((x) => x.offset as number);
    expect(live.every((o, i) => i === 0 || o > (live[i - 1] as number))).toBe(true);
    for (const [who, p] of [
      ['alice', bob],
      ['bob', alice],
      ['alice', carol],
      ['bob', carol],
    ] as const) {
      expect(
        burst(p)
          .filter((x) => x.from === who)
          .map((x) => x.text),
      ).toEqual(Array.from({ length: 50 }, (_, i) => `burst ${who} ${i + 1}`));
    }

    await leave(carol);
    for (let i = 1; i <= 20; i++) {
      alice.send(`alice ${i}`);
      bob.send(`bob ${i}`);
    }
    await bob.waitForMessage('alice', 'alice 20', 60_000);
    await alice.waitForMessage('bob', 'bob 20', 60_000);
    await leave(alice);
    await leave(bob);

    // Everything down, then up again on the same NATS store directories.
    for (const r of nodes) {
      await r.kill();
      expect(await r.exited).toBe(0);
    }
    const streams = await streamNames(cluster);
    await cluster.restartAll();
    // Each stream (the log, its meta, presence) elects its leader after the restart: wait for them.
    await waitForStreamLeaders(await cluster.connect(), streams);
    const again = [await node(g, cluster, 0), await node(g, cluster, 1), await node(g, cluster, 2)];
    carol = chat(g, m.carol, again[2] as RelayProcess);
    await carol.waitFor(
      (p) => messagesOf(p).filter((x) => /^(alice|bob) \d+$/.test(x.text)).length >= 40,
      '40 messages caught up',
      120_000,
    );
    const got = messagesOf(carol).filter((x) => /^(alice|bob) \d+$/.test(x.text));
    expect(got).toHaveLength(40);
    const offsets = got.map((x) => x.offset as number);
    expect(offsets.every((o, i) => i === 0 || o > (offsets[i - 1] as number))).toBe(true);
    for (const who of ['alice', 'bob']) {
      expect(got.filter((x) => x.from === who).map((x) => x.text)).toEqual(
        Array.from({ length: 20 }, (_, i) => `${who} ${i + 1}`),
      );
    }
    await leave(carol);

    const expected = [
      ...['alice', 'bob', 'carol'].map((n) => `hello from ${n}`),
      ...Array.from({ length: 50 }, (_, i) => [`burst alice ${i + 1}`, `burst bob ${i + 1}`]).flat(),
      ...Array.from({ length: 20 }, (_, i) => [`alice ${i + 1}`, `bob ${i + 1}`]).flat(),
    ].sort();
    expect((await historyTexts(g, m.carol)).sort()).toEqual(expected);
    expect((await historyTexts(g, m.alice)).sort()).toEqual(expected);
  });

  it('a removal published on node 2 drops carol on node 3 and refuses her there', async () => {
    const g = makeLoadedGroup(['alice', 'bob', 'carol', 'dave']);
    const m = members(['alice', 'bob', 'carol']);
    const cluster = await nats();
    const nodes = [await node(g, cluster, 0), await node(g, cluster, 1), await node(g, cluster, 2)];
    const alice = chat(g, m.alice, nodes[0] as RelayProcess);
    const carol = chat(g, m.carol, nodes[2] as RelayProcess);
    await waitForAgreedKey([alice, carol], ['alice', 'carol'], 60_000);

    g.group.changeRoster({ kind: 'remove-member', name: 'carol', reason: 'left the team' });
    const published = await publishRoster(
      g.group.rosterPath,
      g.group.bundles.dave as string,
      (nodes[1] as RelayProcess).address,
    );
    expect(published).toMatchObject({ code: 0, stdout: 'published roster v2\n' });
    expect(await carol.exited).toBe(4);
    const removed = carol.of('error').filter((e) => e.code === 'Removed');
    expect(removed[0]?.message).toMatch(/carol was removed from this group \(left the team\)/);
    await alice.waitFor((p) => p.of('roster').some((e) => e.version === 2), 'roster v2 on node 1');

    const retry = chat(g, m.carol, nodes[2] as RelayProcess);
    expect(await retry.exited).toBe(4);
    expect(retry.of('error').some((e) => e.code === 'Removed')).toBe(true);
  });

  it('a node that dies is forgotten once the presence TTL passes: the others list its members no more', async () => {
    const g = makeLoadedGroup(['alice', 'bob']);
    const m = members(['alice', 'bob']);
    const cluster = await nats();
    const ttl = ['--presence-ttl-ms', '3000'];
    const n1 = await node(g, cluster, 0, ttl);
    const n2 = await node(g, cluster, 1, ttl);
    const alice = chat(g, m.alice, n1);
    const bob = chat(g, m.bob, n2);
    await waitForAgreedKey([alice, bob], ['alice', 'bob'], 60_000);
    expect(onlineOf(alice)).toEqual(['alice', 'bob']);

    // No clean shutdown: nobody deletes bob's entry, only its TTL ends it.
    await n2.kill('SIGKILL');
    await alice.waitFor((p) => !onlineOf(p).includes('bob'), 'bob gone from PRESENCE', 60_000);
    expect(onlineOf(alice)).toEqual(['alice']);
    await bob.kill();
  });

  it('a node that loses NATS closes its members with Unavailable, refuses them until NATS is back, then takes them again and follows the log', async () => {
    const g = makeLoadedGroup(['alice', 'bob']);
    const m = members(['alice', 'bob']);
    const cluster = await startNats(1);
    clusters.push(cluster);
    const n1 = await node(g, cluster, 0, ['--log-level', 'info']);
    const alice = chat(g, m.alice, n1);
    await alice.waitFor((p) => p.state === 'Chatting', 'Chatting', 60_000);
    const lost = relayLogged(n1, 'cluster-lost');

    await cluster.kill9(0);
    expect((await lost).reason).toMatch(/lost its NATS server/);
    await alice.waitFor((p) => p.of('error').some((e) => e.code === 'Unavailable'), 'ERROR Unavailable');
    // Her client tries again and is refused the same way until NATS is back.
    await alice.waitFor(
      (p) => p.of('error').filter((e) => e.code === 'Unavailable').length >= 2,
      'Unavailable at a second login',
      60_000,
    );
    const regained = relayLogged(n1, 'cluster-regained');
    // Refused since the loss, so a Chatting from here on is a login after NATS came back.
    const before = alice.events.length;
    await cluster.restart(0);
    await regained;
    await alice.waitFor(
      (p) => p.events.slice(before).some((e) => e.event === 'state' && e.state === 'Chatting'),
      'Chatting again',
      60_000,
    );
    // The node follows the log again: a frame stored now reaches alice live.
    const bob = chat(g, m.bob, n1);
    await waitForAgreedKey([alice, bob], ['alice', 'bob'], 60_000);
    bob.send('after the outage');
    await alice.waitForMessage('bob', 'after the outage', 60_000);
    await leave(bob);
    await leave(alice);
  });

  it('cluster flags: usage errors exit 2 naming the flag', async () => {
    const relay = (...flags: string[]) => runCli(['relay', '--bundle', 'no-such.p12', ...flags]);
    expect(await relay('--presence-ttl-ms', '5000')).toMatchObject({
      code: 2,
      stderr: expect.stringMatching(/--presence-ttl-ms needs --cluster/) as unknown,
    });
    for (const bad of ['999', '3600001', '5s', '']) {
      expect(await relay('--cluster', 'nats://127.0.0.1:4222', '--presence-ttl-ms', bad)).toMatchObject({
        code: 2,
        stderr: expect.stringMatching(/--presence-ttl-ms must be 1000-3600000/) as unknown,
      });
    }
    expect(await relay('--replicas', '3')).toMatchObject({
      code: 2,
      stderr: expect.stringMatching(/--replicas needs --cluster/) as unknown,
    });
  });
});
