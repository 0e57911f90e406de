/**
 * The engine's driver with several relay addresses, over the in-memory transport and a ManualClock:
 * which address each connection goes to, that the member SYNCs from where it stood after failing
 * over, and that a relay of the group CA that the held roster does not list is refused before it
 * learns who we are.
 */
import { beforeAll, describe, expect, it, vi } from 'vitest';
import { ManualClock } from '../../src-main/client/clock.js';
import { ChatEngine } from '../../src-main/client/engine.js';
import type { ConnectRelay } from '../../src-main/client/engine-transport.js';
import type { EngineEvent } from '../../src-main/client/engine-types.js';
import type { LogHistory } from '../../src-main/client/log-follower.js';
import type { ChatEngineOptions } from '../../src-main/client/options.js';
import { writeBundle } from '../../src-main/core/pki/bundle.js';
import { issueCertificate } from '../../src-main/core/pki/issue.js';
import { LocalIdentity } from '../../src-main/core/pki/local-identity.js';
import { decodeBody, isLinkFrame, readHeader } from '../../src-main/core/protocol/index.js';
import { buildRoster, signRoster, verifyRoster, type Roster } from '../../src-main/core/roster/index.js';
import { makeLoadedGroup, type LoadedGroup } from '../helpers/client-identities.js';
import { TEST_KDF_ITERATIONS, TEST_PASSWORD } from '../helpers/group.js';
import { MemoryRelay, type MemoryLink } from '../helpers/memory-relay.js';

let g: LoadedGroup;
let alice: LocalIdentity;
let node1: LocalIdentity;
let node2: LocalIdentity;
/** A relay certificate of the same group CA that no roster lists. */
let rogue: LocalIdentity;
/** v1 over alice and bob, listing node1 and node2 as the group's relays. */
let roster: Roster;

function relayIdentity(name: string): LocalIdentity {
  const credential = issueCertificate(g.group.ca, { name, role: 'relay' });
  const bundle = writeBundle(credential, g.group.ca.certificate, TEST_PASSWORD, {
    kdfIterations: TEST_KDF_ITERATIONS,
  });
  return LocalIdentity.fromBundleFile(bundle, TEST_PASSWORD, 'relay');
}

beforeAll(() => {
  g = makeLoadedGroup(['alice', 'bob']);
  alice = g.identities.alice as LocalIdentity;
  node1 = g.relayHost().relay;
  node2 = relayIdentity('relay2');
  rogue = relayIdentity('rogue');
  const body = buildRoster({
    ca: g.group.ca.certificate,
    name: 'Test group',
    members: [alice.certificate, (g.identities.bob as LocalIdentity).certificate],
    relays: [node1.certificate, node2.certificate],
  });
  roster = verifyRoster(signRoster(body, g.group.ca), g.group.ca.certificate);
});

const STREAM = 'a'.repeat(32);
/** A member that processed the log up to offset 41 of STREAM before. */
const historyAt41 = (): LogHistory => ({
  has: () => false,
  recordBatch: (messages) => messages.map(() => true),
  markStored: () => undefined,
  position: () => ({ streamId: STREAM, offset: 41 }),
});

/** Relays by port: 4001, 4002, … in the order given. */
function cluster(relays: MemoryRelay[]): ConnectRelay {
  return (request, handlers) => {
    const relay = relays[request.relay.port - 4001];
    if (!relay) throw new Error(`no relay at port ${request.relay.port}`);
    return relay.connect(request, handlers);
  };
}

function engineWith(relays: MemoryRelay[], clock: ManualClock, options: Partial<ChatEngineOptions> = {}) {
  const events: EngineEvent[] = [];
  const engine = new ChatEngine({
    identity: alice,
    relay: relays.map((_, i) => ({ host: '127.0.0.1', port: 4001 + i })),
    clock,
    connect: cluster(relays),
    random: () => 0,
    backoff: { initialMs: 250, maxMs: 10_000, multiplier: 2, jitter: 0.5 },
    ...options,
  });
  engine.on((e) => events.push(e));
  const states = () => events.flatMap((e) => (e.event === 'state' ? [e] : []));
  const errors = () => events.flatMap((e) => (e.event === 'error' ? [e.code] : []));
  return { engine, states, errors };
}

async function logIn(relay: MemoryRelay, engine: ChatEngine): Promise<MemoryLink> {
  const link = relay.last;
  relay.hello(link, STREAM);
  await vi.waitFor(() => expect(link.types()).toContain('CONNECTION'));
  relay.presence(link, 1, [alice]);
  expect(engine.machine.link.phase).toBe('online');
  return link;
}

function syncOf(link: MemoryLink) {
  const frame = link.written.find((f) => !isLinkFrame(f) && readHeader(f).type === 'SYNC');
  if (!frame) throw new Error('no SYNC written');
  return decodeBody('SYNC', readHeader(frame).body);
}

/** Runs the retry timer that the last Reconnecting armed. */
function retryNow(clock: ManualClock, states: () => { state: string; retryInMs?: number }[]): void {
  const waiting = states()
    .filter((s) => s.state === 'Reconnecting')
    .at(-1);
  clock.advance(waiting?.retryInMs ?? 0);
}

describe('engine failover across relay addresses', () => {
  it('on losing its node, goes to the next address and SYNCs from where it stood', async () => {
    const clock = new ManualClock();
    const [a, b] = [new MemoryRelay(node1), new MemoryRelay(node2)];
    const { engine, states } = engineWith([a, b], clock, { roster, history: historyAt41() });
    engine.start();
    const first = await logIn(a, engine);
    await vi.waitFor(() => expect(first.types()).toContain('SYNC'));
    expect(syncOf(first)).toMatchObject({ streamId: STREAM, afterOffset: 41 });

    first.close('connection closed by the relay'); // node 1 died
    await vi.waitFor(() => expect(engine.machine.link.phase).toBe('waiting'));
    expect(states().at(-1)).toMatchObject({ state: 'Reconnecting', retryInMs: 250 });
    retryNow(clock, states);
    expect(b.requests.map((r) => r.relay)).toEqual([{ host: '127.0.0.1', port: 4002 }]);
    // With several addresses the Connecting event names the one being tried (added last).
    const connecting = states().filter((s) => s.state === 'Connecting');
    expect(connecting.map((s) => s.relay)).toEqual(['127.0.0.1:4001', '127.0.0.1:4002']);
    expect(Object.keys(connecting[1] ?? {}).at(-1)).toBe('relay');

    const second = await logIn(b, engine);
    await vi.waitFor(() => expect(second.types()).toContain('SYNC'));
    expect(syncOf(second)).toMatchObject({ streamId: STREAM, afterOffset: 41 });

    // Stays on node 2 while it works; losing it wraps round to node 1.
    second.close('connection closed by the relay');
    await vi.waitFor(() => expect(engine.machine.link.phase).toBe('waiting'));
    retryNow(clock, states);
    expect(a.requests).toHaveLength(2);
    await engine.stop('bye');
    expect(clock.pending).toBe(0);
  });

  it('one address: the state events carry no relay field, as before', async () => {
    const clock = new ManualClock();
    const a = new MemoryRelay(node1);
    const { engine, states } = engineWith([a], clock, {
      relay: { host: '127.0.0.1', port: 4001 },
    });
    engine.start();
    await logIn(a, engine);
    expect(states().every((s) => !('relay' in s))).toBe(true);
    await engine.stop('bye');
  });

  it('refuses a relay that the held roster does not list before sending CONNECTION, and moves on', async () => {
    const clock = new ManualClock();
    const [bad, good] = [new MemoryRelay(rogue), new MemoryRelay(node2)];
    const { engine, states, errors } = engineWith([bad, good], clock, { roster });
    engine.start();
    const link = bad.last;
    bad.hello(link, STREAM);
    await vi.waitFor(() => expect(engine.machine.link.phase).toBe('waiting'));
    expect(link.types()).not.toContain('CONNECTION');
    expect(link.closedWith).toBe('relay "rogue" is not listed among the relays of roster v1');
    expect(errors()).toEqual(['RelayNotInRoster']);
    retryNow(clock, states);
    await logIn(good, engine);
    expect(engine.machine.link).toMatchObject({ phase: 'online', relay: 1, distrusted: [] });
    await engine.stop('bye');
  });

  it('with the unlisted relay as its only address the member fails; without a roster it is taken', async () => {
    {
      const clock = new ManualClock();
      const bad = new MemoryRelay(rogue);
      const { engine, states } = engineWith([bad], clock, { roster });
      engine.start();
      bad.hello(bad.last, STREAM);
      await vi.waitFor(() => expect(engine.state).toBe('Failed'));
      expect(states().at(-1)?.reason).toBe('relay "rogue" is not listed among the relays of roster v1');
      await engine.stop('bye');
      expect(clock.pending).toBe(0);
    }
    // No roster held yet (a first login): any relay certificate of the group CA is accepted.
    const clock = new ManualClock();
    const bad = new MemoryRelay(rogue);
    const { engine } = engineWith([bad], clock);
    engine.start();
    await logIn(bad, engine);
    await engine.stop('bye');
  });

  it('a newer roster that no longer lists the relay it is on ends that session', async () => {
    const clock = new ManualClock();
    const [a, b] = [new MemoryRelay(node1), new MemoryRelay(node2)];
    const { engine, errors } = engineWith([a, b], clock, { roster });
    engine.start();
    const link = await logIn(a, engine);
    const body = buildRoster({
      ca: g.group.ca.certificate,
      name: 'Test group',
      members: [alice.certificate],
      relays: [node2.certificate],
    });
    const v2 = verifyRoster(signRoster({ ...body, version: 2 }, g.group.ca), g.group.ca.certificate);
    engine.useRoster(v2);
    await vi.waitFor(() => expect(engine.machine.link.phase).toBe('waiting'));
    expect(link.closedWith).toBe('relay "relay" is not listed among the relays of roster v2');
    expect(errors()).toContain('RelayNotInRoster');
    expect(engine.machine.link).toMatchObject({ relay: 1, distrusted: [0] });
    await engine.stop('bye');
  });
});
