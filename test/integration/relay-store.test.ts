/**
 * The relay with its store (protocol v2, issue 9), in-process on 127.0.0.1 with raw members:
 * v1 sessions unchanged, STORED acks, DELIVERED offsets, KEY_DISTRIBUTION for an offline member,
 * SYNC from the start and from the middle, GAP (lost-log, retention, ahead), SYNC at most once,
 * bad SYNC bodies, a failing append.
 */
import { afterEach, beforeAll, describe, expect, it } from 'vitest';
import type { LocalIdentity } from '../../src-main/core/pki/local-identity.js';
import { sealMessage, type BodyOf } from '../../src-main/core/protocol/index.js';
import { RelayServer } from '../../src-main/relay/server.js';
import { chatBody, must, RawMember } from '../helpers/raw-member.js';
import {
  startStoreRelay,
  storeTestGroup,
  viewOf,
  type StoreRelay,
  type StoreTestGroup,
} from '../helpers/store-relay.js';

let g: StoreTestGroup;
const id = (name: string): LocalIdentity => g.id(name);
const NAMES = ['alice', 'bob', 'carol', 'dave'];

let r: StoreRelay;
const open: RawMember[] = [];

async function joinAs(name: string): Promise<RawMember> {
  const m = await RawMember.join(id(name), { port: r.port });
  open.push(m);
  return m;
}

/** A member that sent SYNC and has seen LIVE. */
async function syncedAs(name: string, streamId = '', afterOffset = 0): Promise<RawMember> {
  const m = await joinAs(name);
  m.sync(streamId, afterOffset);
  await m.waitLive();
  return m;
}

const kd = (epoch: number): BodyOf<'KEY_DISTRIBUTION'> => ({
  epoch,
  wrappedKey: Buffer.alloc(256, epoch),
  iv: Buffer.alloc(12, 3),
  ciphertext: Buffer.alloc(64, epoch),
});

beforeAll(() => {
  g = storeTestGroup(NAMES);
});

afterEach(async () => {
  for (const m of open.splice(0)) m.destroy();
  await r?.close();
});

describe('relay with a store: v1 sessions', { timeout: 60_000 }, () => {
  it('announces the stream id in HELLO, stores chat, and sends v1 members bare envelopes, no link frames', async () => {
    r = await startStoreRelay(id('relay'), { roster: g.rosterBytes() });
    const alice = await joinAs('alice');
    const bob = await joinAs('bob');
    const carol = await joinAs('carol');
    for (const m of [alice, bob, carol]) await m.waitForPresence(['alice', 'bob', 'carol']);
    expect(must(alice.hello).streamId).toBe(r.store.streamId);
    const frames = [1, 2, 3].map((seq) => alice.seal('ENCRYPTED_TEXT', '', chatBody(seq, 1000)));
    for (const f of frames) alice.sendPayload(f);
    for (const m of [bob, carol]) {
      await m.until(() => m.ofType('ENCRYPTED_TEXT').length >= 3, 10_000, 'chat');
      expect(m.ofType('ENCRYPTED_TEXT').map((f) => f.raw)).toEqual(frames);
      expect(m.links).toEqual([]);
    }
    // The sender's STORED would have gone out in the turn that delivered to bob; bob answers only now.
    const marker = bob.seal('ENCRYPTED_TEXT', '', chatBody(1));
    bob.sendPayload(marker);
    await alice.until(() => alice.ofType('ENCRYPTED_TEXT').length >= 1, 10_000, 'marker');
    expect(alice.links).toEqual([]);
    const stored = await viewOf(r.store, 'carol');
    expect(stored.map((e) => e.frame)).toEqual([...frames, marker]);
    expect(stored.map((e) => e.offset)).toEqual([1, 2, 3, 4]);
    expect(stored.map((e) => e.sender)).toEqual(['alice', 'alice', 'alice', 'bob']);
    expect(r.relay.stats().log?.framesLogged).toBe(4);
  });

  it('a relay without a store refuses SYNC (NotAllowed, not fatal) and sends no streamId', async () => {
    const plain = new RelayServer({
      identity: id('relay'),
      roster: g.rosterBytes(),
      limits: { presenceIntervalMs: 0 },
    });
    const { port } = await plain.listen({ host: '127.0.0.1', port: 0 });
    try {
      const alice = await RawMember.join(id('alice'), { port });
      open.push(alice);
      expect(must(alice.hello).streamId).toBeUndefined();
      alice.sync('', 0);
      const err = await alice.waitForError('NotAllowed');
      expect(err.body.fatal).toBe(false);
      expect(plain.stats().log).toBeUndefined();
    } finally {
      for (const m of open.splice(0)) m.destroy();
      await plain.close();
    }
  });
});

describe('relay with a store: STORED and DELIVERED', { timeout: 60_000 }, () => {
  it('acknowledges each logged frame with STORED (n from 1, refused frames counted, never acknowledged)', async () => {
    r = await startStoreRelay(id('relay'), { roster: g.rosterBytes() });
    const alice = await syncedAs('alice');
    const bob = await syncedAs('bob');
    const carol = await joinAs('carol'); // v1
    await alice.waitForPresence(['alice', 'bob', 'carol']);
    const sent: Buffer[] = [];
    for (let seq = 1; seq <= 40; seq++) {
      const f = alice.seal('ENCRYPTED_TEXT', '', chatBody(seq, 500));
      sent.push(f);
      alice.sendPayload(f);
    }
    // n = 41: refused (a chat naming a target), n = 42: KEY_DISTRIBUTION for bob, n = 43: chat.
    alice.sendPayload(alice.seal('ENCRYPTED_TEXT', 'bob', chatBody(41)));
    const toBob = alice.seal('KEY_DISTRIBUTION', 'bob', kd(2));
    alice.sendPayload(toBob);
    const last = alice.seal('ENCRYPTED_TEXT', '', chatBody(43));
    alice.sendPayload(last);
    await alice.waitForError('NotAllowed');
    await alice.until(() => alice.storedAcks().length >= 42, 10_000, '42 acks');
    const acks = alice.storedAcks();
    expect(acks.map((a) => a.n)).toEqual([...Array.from({ length: 40 }, (_, i) => i + 1), 42, 43]);
    const offsets = acks.map((a) => a.offset);
    expect(offsets).toEqual([...offsets].sort((a, b) => a - b));
    expect(new Set(offsets).size).toBe(offsets.length);
    // Batched per turn: fewer STORED frames than acks.
    expect(alice.links.filter((l) => l.kind === 'STORED').length).toBeLessThan(acks.length);
    // The log holds each acknowledged frame at its offset.
    const log = await viewOf(r.store, 'bob');
    const byOffset = new Map(log.map((e) => [e.offset, e.frame]));
    acks
      .slice(0, 40)
      .forEach((a, i) => expect(must(byOffset.get(a.offset)).equals(must(sent[i]))).toBe(true));
    expect(must(byOffset.get(must(acks[40]).offset)).equals(toBob)).toBe(true);

    // bob (SYNCed) gets DELIVERED with the same offsets and the bytes as sent, carol (v1) bare.
    await bob.until(() => bob.delivered().length >= 42, 10_000, 'bob: 42 DELIVERED');
    const got = bob.delivered();
    expect(got.map((f) => f.offset)).toEqual(offsets);
    expect(got.map((f) => f.raw)).toEqual([...sent, toBob, last]);
    await carol.until(() => carol.ofType('ENCRYPTED_TEXT').length >= 41, 10_000, 'carol: 41 chats');
    expect(carol.ofType('ENCRYPTED_TEXT').map((f) => f.raw)).toEqual([...sent, last]);
    expect(carol.delivered()).toEqual([]);
    expect(carol.ofType('KEY_DISTRIBUTION')).toEqual([]);
  });

  it('stores a KEY_DISTRIBUTION for a member who is offline and delivers it on its SYNC, only to it', async () => {
    r = await startStoreRelay(id('relay'), { roster: g.rosterBytes() });
    const alice = await syncedAs('alice');
    const forDave = alice.seal('KEY_DISTRIBUTION', 'dave', kd(3));
    const forCarol = alice.seal('KEY_DISTRIBUTION', 'carol', kd(3));
    alice.sendPayload(forDave);
    alice.sendPayload(forCarol);
    await alice.until(() => alice.storedAcks().length >= 2, 10_000, 'acks');
    expect(alice.errors()).toEqual([]);
    // Its own name is not a target.
    alice.sendPayload(alice.seal('KEY_DISTRIBUTION', 'alice', kd(3)));
    expect((await alice.waitForError('UnknownTarget')).body.fatal).toBe(false);
    const dave = await joinAs('dave');
    dave.sync('', 0);
    const head = await dave.waitLive();
    expect(head).toBe(2);
    expect(dave.delivered().map((f) => [f.offset, f.raw])).toEqual([[1, forDave]]);
    // A v1 session of carol gets nothing stored (v1 never replays), but live ones as before.
    const carol = await joinAs('carol');
    const live = alice.seal('KEY_DISTRIBUTION', 'carol', kd(4));
    alice.sendPayload(live);
    await carol.until(() => carol.ofType('KEY_DISTRIBUTION').length >= 1, 10_000, 'live KD');
    expect(carol.ofType('KEY_DISTRIBUTION').map((f) => f.raw)).toEqual([live]);
  });
});

describe('relay with a store: SYNC', { timeout: 60_000 }, () => {
  it('a member that holds nothing starts at its first key distribution, or at the head when it has none', async () => {
    r = await startStoreRelay(id('relay'), { roster: g.rosterBytes() });
    const alice = await syncedAs('alice', r.store.streamId, 0);
    const before = [1, 2, 3].map((i) => alice.seal('ENCRYPTED_TEXT', '', chatBody(i)));
    for (const f of before) alice.sendPayload(f);
    const forDave = alice.seal('KEY_DISTRIBUTION', 'dave', kd(5));
    alice.sendPayload(forDave);
    const after = [4, 5].map((i) => alice.seal('ENCRYPTED_TEXT', '', chatBody(i)));
    for (const f of after) alice.sendPayload(f);
    await alice.until(() => alice.storedAcks().length >= 6, 10_000, 'acks');
    // dave (a newcomer): nothing before his key was sealed for him, so nothing before it comes.
    const dave = await joinAs('dave');
    dave.sync('', 0);
    expect(await dave.waitLive()).toBe(6);
    expect(dave.delivered().map((f) => [f.offset, f.raw])).toEqual([
      [4, forDave],
      [5, after[0]],
      [6, after[1]],
    ]);
    // carol holds nothing and nothing was ever addressed to her: live from the head.
    const carol = await joinAs('carol');
    carol.sync('', 0);
    expect(await carol.waitLive()).toBe(6);
    expect(carol.delivered()).toEqual([]);
    // Asking for the start explicitly (the stream id and 0) still replays everything.
    const again = await joinAs('bob');
    again.sync(r.store.streamId, 0);
    await again.waitLive();
    expect(again.delivered().map((f) => f.offset)).toEqual([1, 2, 3, 5, 6]);
  });

  async function fill(n: number): Promise<{ alice: RawMember; sent: Buffer[] }> {
    const alice = await syncedAs('alice');
    const sent: Buffer[] = [];
    for (let seq = 1; seq <= n; seq++) {
      const f = alice.seal('ENCRYPTED_TEXT', '', chatBody(seq, 200));
      sent.push(f);
      alice.sendPayload(f);
    }
    await alice.until(() => alice.storedAcks().length >= n, 10_000, `${n} acks`);
    return { alice, sent };
  }

  it('replays from a middle offset exactly what follows it, then LIVE with the head', async () => {
    r = await startStoreRelay(id('relay'), { roster: g.rosterBytes() });
    const { sent } = await fill(30);
    const bob = await syncedAs('bob', r.store.streamId, 12);
    expect(bob.delivered().map((f) => f.offset)).toEqual(Array.from({ length: 18 }, (_, i) => i + 13));
    expect(bob.delivered().map((f) => f.raw)).toEqual(sent.slice(12));
    expect(must(bob.links.at(-1)).kind).toBe('LIVE');
    expect(await bob.waitLive()).toBe(30);
    expect(bob.ofType('GAP')).toEqual([]);
    // ownBroadcasts: alice rebuilding her history gets her own frames back.
    const again = await RawMember.join(id('alice'), { port: r.port });
    open.push(again);
    again.sync(r.store.streamId, 25, true);
    await again.waitLive();
    expect(again.delivered().map((f) => f.raw)).toEqual(sent.slice(25));
  });

  it('GAP lost-log for another stream id, GAP ahead for an offset past the log; both bound to the session, then a replay from the first offset', async () => {
    r = await startStoreRelay(id('relay'), { roster: g.rosterBytes() });
    const { sent } = await fill(5);
    const bob = await joinAs('bob');
    bob.sync('0'.repeat(32), 3);
    const gap = await bob.waitFor('GAP');
    expect(gap.body).toEqual({
      session: must(bob.hello).challenge,
      streamId: r.store.streamId,
      reason: 'lost-log',
      firstOffset: 1,
      lastOffset: 5,
    });
    expect(await bob.waitLive()).toBe(5);
    expect(bob.delivered().map((f) => f.raw)).toEqual(sent);
    // The GAP comes before the replay.
    expect(bob.frames.findIndex((f) => f.type === 'GAP')).toBeLessThan(
      bob.frames.findIndex((f) => f.offset !== undefined),
    );

    const carol = await joinAs('carol');
    carol.sync(r.store.streamId, 99);
    expect((await carol.waitFor('GAP')).body).toMatchObject({
      reason: 'ahead',
      firstOffset: 1,
      lastOffset: 5,
    });
    await carol.waitLive();
    expect(carol.delivered().map((f) => f.offset)).toEqual([1, 2, 3, 4, 5]);
  });

  it('GAP retention once retention dropped frames after the offset', async () => {
    r = await startStoreRelay(id('relay'), { roster: g.rosterBytes() });
    const { sent } = await fill(20);
    const bytes = (await r.store.bounds()).bytes;
    // Keep about the newest quarter.
    const result = await r.store.enforceRetention({
      maxAgeMs: 1e12,
      maxBytes: Math.floor(bytes / 4),
      now: Date.now(),
    });
    expect(result.droppedFrames).toBeGreaterThan(0);
    const first = result.firstOffset;
    const bob = await joinAs('bob');
    bob.sync(r.store.streamId, 2);
    expect((await bob.waitFor('GAP')).body).toMatchObject({
      reason: 'retention',
      firstOffset: first,
      lastOffset: 20,
    });
    expect(await bob.waitLive()).toBe(20);
    expect(bob.delivered().map((f) => f.raw)).toEqual(sent.slice(first - 1));
    // At the first offset minus one there is nothing missing: no GAP.
    const carol = await joinAs('carol');
    carol.sync(r.store.streamId, first - 1);
    await carol.waitLive();
    expect(carol.ofType('GAP')).toEqual([]);
    expect(carol.delivered().length).toBe(20 - first + 1);
  });

  it('refuses a second SYNC (NotAllowed, not fatal), a bad body (SchemaViolation) and a bad signature; the relay goes on', async () => {
    r = await startStoreRelay(id('relay'), { roster: g.rosterBytes() });
    const alice = await syncedAs('alice');
    alice.sync('', 0);
    const second = await alice.waitForError('NotAllowed');
    expect(second.body.fatal).toBe(false);
    const bob = await joinAs('bob');
    bob.sendPayload(
      bob.seal('SYNC', '', { streamId: 'not hex', afterOffset: 0 } as unknown as BodyOf<'SYNC'>),
    );
    expect((await bob.waitForError('SchemaViolation')).body.fatal).toBe(false);
    bob.sendPayload(bob.seal('SYNC', '', { streamId: '', afterOffset: -1 } as unknown as BodyOf<'SYNC'>));
    await bob.until(
      () => bob.errors().filter((e) => e.code === 'SchemaViolation').length >= 2,
      10_000,
      '2nd',
    );
    // Signed by someone else's key (the fingerprint is bob's).
    const forged = bob.seal('SYNC', '', { streamId: '', afterOffset: 0 });
    forged[forged.length - 1] = (forged.at(-1) ?? 0) ^ 1;
    bob.sendPayload(forged);
    await bob.waitForError('BadSignature');
    // None of those counted as bob's SYNC: a good one is served.
    bob.sync('', 0);
    await bob.waitLive();
    const f = alice.seal('ENCRYPTED_TEXT', '', chatBody(1));
    alice.sendPayload(f);
    await bob.until(() => bob.delivered().some((x) => x.raw.equals(f)), 10_000, 'live frame');
    expect(bob.closed || alice.closed).toBe(false);
  });
});

describe('relay with a store: retention while running', { timeout: 60_000 }, () => {
  it('enforces --retention-mb as soon as the log grows past it, oldest first', async () => {
    r = await startStoreRelay(id('relay'), { roster: g.rosterBytes(), limits: { retentionMb: 1 } });
    const alice = await syncedAs('alice');
    // The relay does not check chat signatures (receivers do): a dummy one saves 1,500 RSA signatures.
    const fingerprint = id('alice').certificate.fingerprint;
    for (let seq = 1; seq <= 1500; seq++) {
      alice.sendPayload(
        sealMessage('ENCRYPTED_TEXT', { kind: 'fingerprint', fingerprint }, '', chatBody(seq, 700), () =>
          Buffer.alloc(256, 1),
        ),
      );
    }
    await alice.until(() => alice.storedAcks().length >= 1500, 20_000, 'acks');
    await r.waitForLog((l) => l.event === 'retention', 'retention');
    await r.relay.retentionIdle();
    const bounds = await r.store.bounds();
    expect(bounds.bytes).toBeLessThanOrEqual(1024 * 1024);
    expect(bounds.firstOffset).toBeGreaterThan(1);
    expect(bounds.lastOffset).toBe(1500);
    expect(r.relay.stats().log?.droppedFrames).toBe(bounds.firstOffset - 1);
  });
});

describe('relay with a store: failures', { timeout: 60_000 }, () => {
  it('a failed append is neither forwarded nor acknowledged, is logged, and the relay goes on', async () => {
    r = await startStoreRelay(id('relay'), { roster: g.rosterBytes() });
    const alice = await syncedAs('alice');
    const bob = await syncedAs('bob');
    const carol = await joinAs('carol');
    await alice.waitForPresence(['alice', 'bob', 'carol']);
    r.store.failAppends = true;
    const lost = alice.seal('ENCRYPTED_TEXT', '', chatBody(1));
    alice.sendPayload(lost);
    await r.waitForLog((l) => l.event === 'log-append-failed' && l.code === 'LogFull', 'log-append-failed');
    r.store.failAppends = false;
    const kept = alice.seal('ENCRYPTED_TEXT', '', chatBody(2));
    alice.sendPayload(kept);
    await alice.until(() => alice.storedAcks().length >= 1, 10_000, 'ack');
    expect(alice.storedAcks()).toEqual([{ n: 2, offset: 1 }]);
    await bob.until(() => bob.delivered().length >= 1, 10_000, 'bob');
    await carol.until(() => carol.ofType('ENCRYPTED_TEXT').length >= 1, 10_000, 'carol');
    expect(bob.delivered().map((f) => f.raw)).toEqual([kept]);
    expect(carol.ofType('ENCRYPTED_TEXT').map((f) => f.raw)).toEqual([kept]);
    expect(r.relay.stats().log).toMatchObject({ framesLogged: 1, logFailures: 1 });
  });
});
