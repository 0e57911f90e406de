/**
 * The engine's driver (src-main/client/engine.ts) over an in-memory transport and a ManualClock:
 * no socket and no waiting on real time. The relay is played by the test (HELLO, PRESENCE, its
 * HEARTBEAT, each signed with the relay's key and bound to the session as the real relay does);
 * what the engine writes is read back from the link. Backoff, heartbeats, reconnecting and stop
 * are checked through the public API, and after every stop no timer of the engine may be left.
 */
import { decodeJsonBody } from '../../src-main/core/protocol/json-body.js';
import { BODY_SCHEMAS } from '../../src-main/core/protocol/schemas.js';
import { beforeAll, describe, expect, it, vi } from 'vitest';
import { ManualClock } from '../../src-main/client/clock.js';
import { ChatEngine } from '../../src-main/client/engine.js';
import type { EngineEvent } from '../../src-main/client/engine-types.js';
import type { LogHistory } from '../../src-main/client/log-follower.js';
import type { ChatEngineOptions } from '../../src-main/client/options.js';
import type { LocalIdentity } from '../../src-main/core/pki/local-identity.js';
import {
  decodeBody,
  encodeDelivered,
  encodeLive,
  encodeStored,
  isLinkFrame,
  readHeader,
  sealMessage,
} from '../../src-main/core/protocol/index.js';
import { makeLoadedGroup, type LoadedGroup } from '../helpers/client-identities.js';
import { MemoryRelay, type MemoryLink } from '../helpers/memory-relay.js';
import { Bus } from '../helpers/key-bus.js';
import { EpochKeyring } from '../../src-main/client/epoch-keyring.js';
import { encodeChatPlaintext } from '../../src-main/client/chat-codec.js';

let g: LoadedGroup;
let relayId: LocalIdentity;
let alice: LocalIdentity;
let bob: LocalIdentity;

beforeAll(() => {
  g = makeLoadedGroup(['alice', 'bob']);
  relayId = g.relayHost().relay;
  alice = g.identities.alice as LocalIdentity;
  bob = g.identities.bob as LocalIdentity;
});

/** A history that holds nothing yet (a fresh member store). */
const emptyHistory = (): LogHistory => ({
  has: () => false,
  recordBatch: (messages) => messages.map(() => true),
  markStored: () => undefined,
  position: () => undefined,
});

/**
 * An earlier run: alice and bob key epoch 1 between them (the key-establishment machines over an
 * in-memory bus); returns alice's KEY_DISTRIBUTION for bob as the relay stored it, signed by her.
 */
function storedKeyForBob(): Buffer {
  return keyedRun().stored;
}

/** As storedKeyForBob, with alice's keyring for epoch 1 (she can seal messages under it). */
function keyedRun(): { stored: Buffer; aliceRing: EpochKeyring } {
  const bus = new Bus([alice, bob]);
  const toBob: Buffer[] = [];
  bus.filter = (w) => {
    if (w.type === 'KEY_DISTRIBUTION' && w.to === 'bob') toBob.push(w.bytes);
    return true;
  };
  bus.setMembership(['alice', 'bob'], 1);
  bus.run();
  expect(bus.last('bob')?.contributors).toEqual(['alice', 'bob']);
  const body = decodeJsonBody(BODY_SCHEMAS.KEY_DISTRIBUTION, toBob[0] as Buffer, 'KEY_DISTRIBUTION');
  const k = bus.last('alice');
  if (!k) throw new Error('alice has no key');
  const aliceRing = new EpochKeyring(alice.groupId, 10_000);
  aliceRing.install(1, k.derived, ['alice', 'bob'], 'alice');
  const stored = sealMessage(
    'KEY_DISTRIBUTION',
    { kind: 'fingerprint', fingerprint: alice.certificate.fingerprint },
    'bob',
    body,
    (d) => alice.sign(d),
  );
  return { stored, aliceRing };
}

/** alice's next chat message under epoch 1, signed, as she would write it. */
function aliceSays(ring: EpochKeyring, text: string): Buffer {
  const sealed = ring.seal('alice', encodeChatPlaintext({ text, sentAt: 1 }));
  return sealMessage(
    'ENCRYPTED_TEXT',
    { kind: 'fingerprint', fingerprint: alice.certificate.fingerprint },
    '',
    sealed,
    (d) => alice.sign(d),
  );
}

function engineFor(relay: MemoryRelay, clock: ManualClock, options: Partial<ChatEngineOptions> = {}) {
  const events: EngineEvent[] = [];
  const engine = new ChatEngine({
    identity: alice,
    ...options,
    relay: { host: '127.0.0.1', port: 4000 },
    clock,
    connect: relay.connect,
    random: () => 0,
    backoff: { initialMs: 250, maxMs: 10_000, multiplier: 2, jitter: 0.5 },
  });
  engine.on((e) => events.push(e));
  const states = () => events.flatMap((e) => (e.event === 'state' ? [e] : []));
  return { engine, events, states };
}

/** Logs in on the newest link: HELLO, the engine's CONNECTION, then the first PRESENCE. */
async function logIn(relay: MemoryRelay, engine: ChatEngine): Promise<MemoryLink> {
  const link = relay.last;
  relay.hello(link);
  await vi.waitFor(() => expect(link.types()).toContain('CONNECTION'));
  relay.presence(link, 1, [alice]);
  expect(engine.machine.link.phase).toBe('online');
  // The session's HEARTBEAT is signed once, right after HELLO.
  await vi.waitFor(() => expect(engine.session?.heartbeatFrame).toBeDefined());
  return link;
}

describe('engine driver over an in-memory transport', () => {
  it('backs off 250, 500, 1000, 2000 ms (jitter from the injected random) while every connection is refused', async () => {
    const clock = new ManualClock();
    const relay = new MemoryRelay(relayId);
    relay.refusing = true;
    const { engine, states } = engineFor(relay, clock);
    engine.start();
    const delays: (number | undefined)[] = [];
    for (let i = 0; i < 4; i++) {
      await vi.waitFor(() => expect(states().filter((s) => s.state === 'Reconnecting')).toHaveLength(i + 1));
      const retry = states().at(-1);
      expect(retry?.reason).toBe('connect ECONNREFUSED 127.0.0.1:4000');
      delays.push(retry?.retryInMs);
      clock.advance((retry?.retryInMs ?? 0) - 1);
      expect(relay.links).toHaveLength(i + 1);
      clock.advance(1);
      expect(relay.links).toHaveLength(i + 2);
    }
    expect(delays).toEqual([250, 500, 1000, 2000]);
    await vi.waitFor(() => expect(engine.state).toBe('Reconnecting'));

    // Stopped while waiting to retry: Disconnected, no timer left, no attempt after.
    await engine.stop('bye');
    expect(engine.state).toBe('Disconnected');
    expect(clock.pending).toBe(0);
    clock.advance(60_000);
    expect(relay.links).toHaveLength(5);
  });

  it('writes a HEARTBEAT after 5 s of quiet, closes after 15 s without a frame, and reconnects from 250 ms', async () => {
    const clock = new ManualClock();
    const relay = new MemoryRelay(relayId);
    const { engine, states } = engineFor(relay, clock);
    engine.start();
    const first = await logIn(relay, engine);
    const beats = (link: MemoryLink) => link.types().filter((t) => t === 'HEARTBEAT').length;

    // The relay talks every 4 s: the link stays up, and we beat every 5 s.
    for (let t = 0; t < 20_000; t += 4_000) {
      clock.advance(4_000);
      relay.heartbeat(first);
    }
    expect(first.isOpen).toBe(true);
    expect(beats(first)).toBe(4);

    // Then nothing: at 15 s of silence the engine closes the link and shows why.
    clock.advance(14_999);
    expect(first.isOpen).toBe(true);
    clock.advance(2_500);
    expect(first.isOpen).toBe(false);
    expect(first.closedWith).toBe('Relay not responding: nothing received for 15 s');
    await vi.waitFor(() => expect(engine.state).toBe('Reconnecting'));
    expect(states().at(-1)).toMatchObject({
      reason: 'Relay not responding: nothing received for 15 s',
      retryInMs: 250,
      cause: 'relay-silent', // a code for the app, which never reads the words
    });
    clock.advance(250);
    expect(relay.links).toHaveLength(2);
    const second = await logIn(relay, engine);
    expect(second).not.toBe(first);
    // The code belonged to that close only.
    expect(
      states()
        .filter((s) => s.state !== 'Reconnecting')
        .every((s) => s.cause === undefined),
    ).toBe(true);

    // Stopped while online: DISCONNECT is written, the link ended, no timer left.
    await engine.stop('bye');
    expect(second.types().at(-1)).toBe('DISCONNECT');
    expect(second.isOpen).toBe(false);
    expect(engine.state).toBe('Disconnected');
    expect(clock.pending).toBe(0);
    clock.advance(60_000);
    expect(relay.links).toHaveLength(2);
  });

  it('stopped while connecting (no HELLO yet): the link is closed at once, Disconnected, no timer left', async () => {
    const clock = new ManualClock();
    const relay = new MemoryRelay(relayId);
    const { engine } = engineFor(relay, clock);
    engine.start();
    expect(engine.state).toBe('Connecting');
    expect(clock.pending).toBe(1); // the login deadline
    await engine.stop('bye');
    expect(relay.last.isOpen).toBe(false);
    expect(engine.state).toBe('Disconnected');
    expect(clock.pending).toBe(0);
    clock.advance(60_000);
    expect(relay.links).toHaveLength(1);
    expect(relay.last.types()).toEqual([]);
  });

  it('a login that never completes is given up after the login deadline and retried', async () => {
    const clock = new ManualClock();
    const relay = new MemoryRelay(relayId);
    const { engine, states } = engineFor(relay, clock);
    engine.start();
    clock.advance(10_000);
    expect(relay.last.isOpen).toBe(false);
    await vi.waitFor(() => expect(engine.state).toBe('Reconnecting'));
    expect(states().at(-1)?.reason).toMatch(/did not complete the login within/);
    clock.advance(states().at(-1)?.retryInMs ?? 0);
    expect(relay.links).toHaveLength(2);
    await engine.stop('bye');
    expect(clock.pending).toBe(0);
  });

  it('stopped before it started: Disconnected, nothing opened', async () => {
    const clock = new ManualClock();
    const relay = new MemoryRelay(relayId);
    const { engine } = engineFor(relay, clock);
    await engine.stop('bye');
    expect(engine.state).toBe('Disconnected');
    expect(relay.links).toEqual([]);
    expect(clock.pending).toBe(0);
  });

  /**
   * 344d72d, carried into the driver (followsLog): bob, not the initiator, comes online without a
   * key. On a session that follows the log, every key sealed for him reaches him through it, so he
   * does not ask alice (REKEY_REQUEST) in the first attempt; on a session without a log he asks at
   * once.
   */
  it('a member that follows the log does not ask for a missing key in the first attempt; without a log it asks at once', async () => {
    const rekeyRequests = (link: MemoryLink) =>
      link.written
        .filter((f) => !isLinkFrame(f))
        .map((f) => readHeader(f))
        .filter((h) => h.type === 'REKEY_REQUEST')
        .map((h) => ({ target: h.target, body: decodeBody('REKEY_REQUEST', h.body) }));
    const comeOnline = async (relay: MemoryRelay, engine: ChatEngine, streamId?: string) => {
      const link = relay.last;
      relay.hello(link, streamId);
      await vi.waitFor(() => expect(link.types()).toContain('CONNECTION'));
      relay.presence(link, 1, [alice, bob]);
      await vi.waitFor(() => expect(link.types()).toContain('CERT_REQUEST'));
      relay.certificates(link, [alice]);
      expect(engine.members.map((m) => m.name)).toEqual(['alice', 'bob']);
      return link;
    };

    // Without a log: live at the first PRESENCE, and he asks alice straight away.
    {
      const clock = new ManualClock();
      const relay = new MemoryRelay(relayId);
      const { engine } = engineFor(relay, clock, { identity: bob, keyEstablishmentTimeoutMs: 2_000 });
      engine.start();
      const link = await comeOnline(relay, engine);
      await vi.waitFor(() => expect(rekeyRequests(link)).toHaveLength(1));
      expect(rekeyRequests(link)[0]).toMatchObject({ target: 'alice', body: { reason: 'key-missing' } });
      await engine.stop('bye');
      expect(clock.pending).toBe(0);
    }

    // Following the log: SYNC, then LIVE; no request while the first attempt runs.
    const clock = new ManualClock();
    const relay = new MemoryRelay(relayId);
    const { engine } = engineFor(relay, clock, {
      identity: bob,
      keyEstablishmentTimeoutMs: 2_000,
      history: emptyHistory(),
    });
    engine.start();
    const link = await comeOnline(relay, engine, 'a'.repeat(32));
    await vi.waitFor(() => expect(link.types()).toContain('SYNC'));
    link.handlers.onFrame(encodeLive(0));
    expect(engine.session?.caughtUp).toBe(true);
    expect(engine.state).toBe('KeyEstablishment');
    // Whatever is being signed has been written by now (the same wait saw CONNECTION and SYNC).
    await new Promise((resolve) => setTimeout(resolve, 200));
    expect(rekeyRequests(link)).toEqual([]);
    clock.advance(1_999);
    await new Promise((resolve) => setTimeout(resolve, 100));
    expect(rekeyRequests(link)).toEqual([]);
    // The key timer: attempt 2, whose initiator (of the two online) is bob himself: he starts the
    // round, and still never crossed alice's with a request of his own.
    clock.advance(1);
    await vi.waitFor(() => expect(link.types()).toContain('NONCE_REQUEST'));
    expect(rekeyRequests(link)).toEqual([]);
    expect(engine.machine.shown.reason).toBe('attempt 2: initiator bob');
    await engine.stop('bye');
    expect(clock.pending).toBe(0);
  });

  /**
   * The epochs landing, carried into the driver (replayingBacklog): a KEY_DISTRIBUTION stored in
   * the log from a round bob answered in an earlier run names him as a contributor. The new bob
   * does not know what he answered then, so from the backlog (before LIVE) it is accepted on
   * alice's signature; the same frame arriving live on a session without a log is refused.
   */
  it('accepts a stored key from the backlog that names it as a contributor of an earlier run', async () => {
    const stored = storedKeyForBob();

    // The new run: a fresh bob that follows the log gets it in the replay.
    const clock = new ManualClock();
    const relay = new MemoryRelay(relayId);
    const { engine, events } = engineFor(relay, clock, { identity: bob, history: emptyHistory() });
    engine.start();
    const link = relay.last;
    relay.hello(link, 'b'.repeat(32));
    await vi.waitFor(() => expect(link.types()).toContain('CONNECTION'));
    relay.presence(link, 1, [alice, bob]);
    await vi.waitFor(() => expect(link.types()).toContain('CERT_REQUEST'));
    relay.certificates(link, [alice]);
    await vi.waitFor(() => expect(link.types()).toContain('SYNC'));
    link.handlers.onFrame(encodeDelivered(1, stored));
    link.handlers.onFrame(encodeLive(1));
    const problems = () => events.flatMap((e) => (e.event === 'error' ? [e.message] : []));
    await vi.waitFor(() => expect(engine.key?.epoch).toBe(1));
    expect(engine.key?.contributors).toEqual(['alice', 'bob']);
    expect(engine.state).toBe('Chatting');
    expect(problems()).toEqual([]);

    await engine.stop('bye');
    expect(clock.pending).toBe(0);

    // The same frame live, on a session without a log, to a bob who did not answer: refused.
    const clock2 = new ManualClock();
    const relay2 = new MemoryRelay(relayId);
    const other = engineFor(relay2, clock2, { identity: bob, keyEstablishmentTimeoutMs: 60_000 });
    other.engine.start();
    const link2 = relay2.last;
    relay2.hello(link2);
    await vi.waitFor(() => expect(link2.types()).toContain('CONNECTION'));
    relay2.presence(link2, 1, [alice, bob]);
    await vi.waitFor(() => expect(link2.types()).toContain('CERT_REQUEST'));
    relay2.certificates(link2, [alice]);
    link2.handlers.onFrame(stored);
    const problems2 = () => other.events.flatMap((e) => (e.event === 'error' ? [e.message] : []));
    await vi.waitFor(() => expect(problems2().join(' ')).toMatch(/never answered/));
    expect(other.engine.key).toBeUndefined();
    await other.engine.stop('bye');
    expect(clock2.pending).toBe(0);
  });

  it('a message typed while reconnecting goes out once after the reconnect; one the log acknowledged is not written again', async () => {
    const clock = new ManualClock();
    const relay = new MemoryRelay(relayId);
    const { engine, events } = engineFor(relay, clock, { identity: bob, history: emptyHistory() });
    const chats = (link: MemoryLink) =>
      link.written.filter((f) => !isLinkFrame(f) && readHeader(f).type === 'ENCRYPTED_TEXT');
    /** Logs in on the newest link with alice online, replays `replay`, then LIVE. */
    const session = async (replay: Buffer[]) => {
      const link = relay.last;
      relay.hello(link, 'c'.repeat(32));
      await vi.waitFor(() => expect(link.types()).toContain('CONNECTION'));
      relay.presence(link, 1, [alice, bob]);
      if (engine.state === 'CertExchange') {
        await vi.waitFor(() => expect(link.types()).toContain('CERT_REQUEST'));
        relay.certificates(link, [alice]);
      }
      await vi.waitFor(() => expect(link.types()).toContain('SYNC'));
      replay.forEach((f, i) => link.handlers.onFrame(encodeDelivered(i + 1, f)));
      link.handlers.onFrame(encodeLive(replay.length));
      await vi.waitFor(() => expect(engine.state).toBe('Chatting'));
      return link;
    };
    engine.start();
    const first = await session([storedKeyForBob()]);
    expect(engine.key?.epoch).toBe(1);

    engine.send('before');
    await vi.waitFor(() => expect(chats(first)).toHaveLength(1));
    // The relay stores it: STORED for bob's first logged frame of this session.
    first.handlers.onFrame(encodeStored([{ n: 1, offset: 2 }]));
    await vi.waitFor(() => expect(events.some((e) => e.event === 'sent')).toBe(true));

    // The link drops; a message typed now waits in the queue.
    first.close('read ECONNRESET');
    await vi.waitFor(() => expect(engine.state).toBe('Reconnecting'));
    engine.send('while away');
    expect(engine.pending).toBe(1);
    clock.advance(250);
    expect(relay.links).toHaveLength(2);
    const second = await session([]);
    expect(engine.key?.epoch).toBe(1); // a reconnect keeps the key
    await vi.waitFor(() => expect(chats(second)).toHaveLength(1));
    // Give the pipeline every chance to write something twice.
    await new Promise((resolve) => setTimeout(resolve, 200));
    clock.advance(10_000);
    await new Promise((resolve) => setTimeout(resolve, 100));
    expect(chats(second)).toHaveLength(1);
    expect(chats(second)[0]?.equals(chats(first)[0] as Buffer)).toBe(false);
    const sentTexts = events.flatMap((e) => (e.event === 'outgoing' && e.status === 'sent' ? [e.text] : []));
    expect(sentTexts).toEqual(['before', 'while away']);
    await engine.stop('bye');
    expect(clock.pending).toBe(0);
  });

  it('on a relay that keeps a log, a chat frame outside DELIVERED is left to the replay: it never jumps ahead of the frames before it', async () => {
    const { stored, aliceRing } = keyedRun();
    const [first, second] = [aliceSays(aliceRing, 'first'), aliceSays(aliceRing, 'second')];
    const clock = new ManualClock();
    const relay = new MemoryRelay(relayId);
    const { engine, events } = engineFor(relay, clock, { identity: bob, history: emptyHistory() });
    engine.start();
    const link = relay.last;
    relay.hello(link, 'd'.repeat(32));
    await vi.waitFor(() => expect(link.types()).toContain('CONNECTION'));
    relay.presence(link, 1, [alice, bob]);
    await vi.waitFor(() => expect(link.types()).toContain('CERT_REQUEST'));
    relay.certificates(link, [alice]);
    await vi.waitFor(() => expect(link.types()).toContain('SYNC'));
    // The relay sent 'second' bare (it reached the session before the relay took its SYNC), then
    // the replay brings the key and both messages in log order.
    link.handlers.onFrame(second);
    link.handlers.onFrame(encodeDelivered(1, stored));
    link.handlers.onFrame(encodeDelivered(2, first));
    link.handlers.onFrame(encodeDelivered(3, second));
    link.handlers.onFrame(encodeLive(3));
    const shown = () => events.flatMap((e) => (e.event === 'message' ? [e.text] : []));
    await vi.waitFor(() => expect(shown()).toEqual(['first', 'second']));
    expect(events.filter((e) => e.event === 'error')).toEqual([]);
    await engine.stop('bye');
    expect(clock.pending).toBe(0);
  });
});
