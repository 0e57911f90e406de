/**
 * The relay's replay (SYNC) under load, in-process with raw members: the hand-off to live while
 * frames keep arriving (no hole, no duplicate: a property over sizes, offsets and send patterns),
 * backpressure (a reader that stops reading does not make the relay read the whole log: it holds
 * about a page), live non-logged frames during a replay, and a member leaving mid-replay.
 */
import fc from 'fast-check';
import { afterEach, beforeAll, describe, expect, it } from 'vitest';
import type { LocalIdentity } from '../../src-main/core/pki/local-identity.js';
import { decodeLinkFrame, isLinkFrame, readHeader } from '../../src-main/core/protocol/index.js';
import { REPLAY_PAGE_BYTES } from '../../src-main/relay/sync-session.js';
import { chatBody, must, RawMember } from '../helpers/raw-member.js';
import {
  chatFrameOf,
  eventually,
  startStoreRelay,
  storeTestGroup,
  viewOf,
  type StoreRelay,
  type StoreTestGroup,
} from '../helpers/store-relay.js';

let g: StoreTestGroup;
const id = (name: string): LocalIdentity => g.id(name);
const NAMES = ['alice', 'bob', 'carol', 'dave'];
let r: StoreRelay | undefined;
const open: RawMember[] = [];

async function joinAs(relay: StoreRelay, name: string): Promise<RawMember> {
  const m = await RawMember.join(id(name), { port: relay.port });
  open.push(m);
  return m;
}

const nextTurn = (): Promise<void> => new Promise((resolve) => setImmediate(resolve));

beforeAll(() => {
  g = storeTestGroup(NAMES);
});

afterEach(async () => {
  for (const m of open.splice(0)) m.destroy();
  await r?.close();
  r = undefined;
});

describe('SYNC: the hand-off to live', { timeout: 180_000 }, () => {
  it('property: frames sent before, during and after the replay reach the member once each, in offset order', async () => {
    await fc.assert(
      fc.asyncProperty(
        fc.integer({ min: 0, max: 1500 }),
        fc.double({ min: 0, max: 1, noNaN: true }),
        fc.integer({ min: 1, max: 40 }),
        fc.integer({ min: 1, max: 300 }),
        fc.boolean(),
        async (prefill, from, perTurn, after, targeted) => {
          const relay = await startStoreRelay(id('relay'), { roster: g.rosterBytes() });
          r = relay;
          try {
            const alice = await joinAs(relay, 'alice');
            alice.sync('', 0);
            await alice.waitLive();
            let seq = 0;
            const send = (): void => {
              seq++;
              // Some frames for bob alone, some for carol (not in bob's view), most to all.
              const target = targeted && seq % 7 === 0 ? (seq % 2 === 0 ? 'bob' : 'carol') : '';
              alice.sendPayload(
                target
                  ? alice.seal('KEY_DISTRIBUTION', target, {
                      epoch: seq,
                      wrappedKey: Buffer.alloc(32, 1),
                      iv: Buffer.alloc(12, 2),
                      ciphertext: Buffer.alloc(16, 3),
                    })
                  : alice.seal('ENCRYPTED_TEXT', '', chatBody(seq, 100)),
              );
            };
            for (let i = 0; i < prefill; i++) send();
            await alice.until(() => alice.storedAcks().length >= prefill, 30_000, 'prefill acks');
            const bob = await joinAs(relay, 'bob');
            const afterOffset = Math.floor(from * prefill);
            bob.sync(prefill === 0 ? '' : relay.store.streamId, afterOffset);
            // Keep sending, perTurn frames a turn, until bob is live and `after` more went out.
            let afterLive = 0;
            while (afterLive < after) {
              for (let i = 0; i < perTurn; i++) send();
              if (bob.links.some((l) => l.kind === 'LIVE')) afterLive += perTurn;
              await nextTurn();
              if (bob.closed || alice.closed) throw new Error('a member was closed');
            }
            await alice.until(() => alice.storedAcks().length >= seq, 30_000, 'all acks');
            const expected = await viewOf(relay.store, 'bob', afterOffset);
            await bob.until(
              () =>
                bob.delivered().length >= expected.length &&
                bob.delivered().at(-1)?.offset === expected.at(-1)?.offset,
              30_000,
              `bob: ${expected.length} frames`,
            );
            const got = bob.delivered();
            expect(got.map((f) => f.offset)).toEqual(expected.map((e) => e.offset));
            expect(got.every((f, i) => f.raw.equals(must(expected[i]).frame))).toBe(true);
            expect(bob.links.filter((l) => l.kind === 'LIVE')).toHaveLength(1);
            expect(bob.failure).toBeUndefined();
          } finally {
            for (const m of open.splice(0)) m.destroy();
            await relay.close();
            r = undefined;
          }
        },
      ),
      { numRuns: 6 },
    );
  });
});

describe('SYNC: backpressure', { timeout: 180_000 }, () => {
  const FRAMES = 48_000;

  /** Fills the log with FRAMES chat frames of ~1 KB from bob (one signature, appended directly). */
  async function fillLog(relay: StoreRelay): Promise<number> {
    const frame = chatFrameOf(id('bob'), chatBody(1, 900));
    for (let i = 0; i < FRAMES; i += 1000) {
      await relay.sqlite.append(
        Array.from({ length: 1000 }, () => ({ audience: { kind: 'all' as const }, sender: 'bob', frame })),
      );
    }
    return frame.length;
  }

  it('a member that stops reading makes the relay hold about a page, not the log; live frames flow meanwhile; it gets everything once it reads', async () => {
    const relay = await startStoreRelay(id('relay'), {
      roster: g.rosterBytes(),
      limits: { stallTimeoutMs: 600_000 },
    });
    r = relay;
    const frameBytes = await fillLog(relay);
    const logBytes = FRAMES * frameBytes;
    const alice = await joinAs(relay, 'alice');
    alice.sync(relay.store.streamId, FRAMES);
    const carol = await joinAs(relay, 'carol');
    // Count what carol gets from now on without keeping it.
    const seen: string[] = [];
    let lastOffset = 0;
    let ordered = true;
    let delivered = 0;
    carol.onFrame = (raw) => {
      if (isLinkFrame(raw)) {
        const link = decodeLinkFrame(raw);
        if (link.kind === 'DELIVERED') {
          if (link.offset <= lastOffset) ordered = false;
          lastOffset = link.offset;
          delivered++;
          if (readHeader(link.envelope).type !== 'ENCRYPTED_TEXT') seen.push('other');
        } else {
          seen.push(link.kind);
        }
      } else {
        seen.push(readHeader(raw).type);
      }
    };
    carol.sync(relay.store.streamId, 0);
    carol.socket.pause();
    await eventually(() => relay.relay.stats().log?.replaysWaiting === 1, 'the replay waiting for carol');
    const readAtWait = relay.store.readBytes;
    // Relay turns go by (alice's frames stored and acknowledged, a NONCE_REQUEST for carol).
    await alice.waitLive();
    for (let seq = 1; seq <= 20; seq++)
      alice.sendPayload(alice.seal('ENCRYPTED_TEXT', '', chatBody(seq, 900)));
    alice.sendPayload(
      alice.seal('NONCE_REQUEST', 'carol', {
        epoch: 2,
        membershipVersion: 1,
        rosterVersion: 1,
        members: ['alice', 'carol'],
        challenge: Buffer.alloc(256, 9),
      }),
    );
    await alice.until(() => alice.storedAcks().length >= 20, 20_000, 'acks');
    for (let i = 0; i < 20; i++) await nextTurn();
    const stats = must(relay.relay.stats().log);
    console.log(
      `  (backpressure: log ${(logBytes / 2 ** 20).toFixed(1)} MiB; read by the replay while carol does not read: ` +
        `${(readAtWait / 2 ** 20).toFixed(2)} MiB at the wait, ${(relay.store.readBytes / 2 ** 20).toFixed(2)} MiB later; ` +
        `largest page ${(relay.store.largestPageBytes / 1024).toFixed(0)} KiB)`,
    );
    expect(stats.replaysWaiting).toBe(1);
    expect(relay.store.largestPageBytes).toBeLessThanOrEqual(REPLAY_PAGE_BYTES + frameBytes);
    // What was read is what the kernel's socket buffers took plus about a page and the high-water
    // mark; far from the whole log.
    expect(relay.store.readBytes).toBeLessThan(logBytes / 3);
    carol.socket.resume();
    await carol.until(() => seen.includes('LIVE'), 120_000, 'LIVE');
    expect(ordered).toBe(true);
    expect(delivered).toBe(FRAMES + 20);
    expect(lastOffset).toBe(FRAMES + 20);
    // The NONCE_REQUEST (not logged) arrived during the replay, before LIVE.
    expect(seen.indexOf('NONCE_REQUEST')).toBeGreaterThanOrEqual(0);
    expect(seen.indexOf('NONCE_REQUEST')).toBeLessThan(seen.indexOf('LIVE'));
    expect(carol.closed).toBe(false);
  });

  it('a member that leaves mid-replay stops its replay', async () => {
    const relay = await startStoreRelay(id('relay'), {
      roster: g.rosterBytes(),
      limits: { stallTimeoutMs: 600_000 },
    });
    r = relay;
    const frameBytes = await fillLog(relay);
    const dave = await joinAs(relay, 'dave');
    dave.onFrame = () => undefined;
    dave.sync(relay.store.streamId, 0);
    dave.socket.pause();
    await eventually(() => relay.relay.stats().log?.replaysWaiting === 1, 'the replay waiting for dave');
    dave.destroy();
    await relay.waitForLog((l) => l.event === 'replay-stopped' && l.name === 'dave', 'replay-stopped');
    expect(relay.relay.stats().log).toMatchObject({ replaysActive: 0, replaysWaiting: 0 });
    expect(relay.store.readBytes).toBeLessThan((FRAMES * frameBytes) / 3);
  });
});
