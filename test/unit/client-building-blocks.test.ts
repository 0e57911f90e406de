import { describe, expect, it } from 'vitest';
import { Backoff } from '../../src-main/client/backoff.js';
import {
  checkOutgoingText,
  decodeChatPlaintext,
  encodeChatPlaintext,
  MAX_TEXT_CHARS,
  paddedLength,
} from '../../src-main/client/chat-codec.js';
import { EpochKeyring } from '../../src-main/client/epoch-keyring.js';
import { ClientError } from '../../src-main/client/errors.js';
import { deriveEpochKey } from '../../src-main/client/key-schedule.js';
import { OrderedWriter } from '../../src-main/client/ordered-writer.js';
import { Outbox } from '../../src-main/client/outbox.js';
import { SequenceWindow } from '../../src-main/client/sequence-window.js';
import { ProtocolError } from '../../src-main/core/protocol/errors.js';
import { LIMITS } from '../../src-main/core/protocol/schemas.js';

const G = 'c3'.repeat(32);
const epochKey = (seed: number) =>
  deriveEpochKey({
    groupId: G,
    epoch: 1,
    rosterVersion: 1,
    fingerprints: [Buffer.alloc(32, 1), Buffer.alloc(32, 2)],
    nonces: [Buffer.alloc(32, seed), Buffer.alloc(32, seed + 1)],
  });

describe('SequenceWindow', () => {
  it('accepts growing numbers, refuses replays and jumps past the window', () => {
    const w = new SequenceWindow(100);
    expect(w.check('bob', 1)).toBeUndefined();
    w.commit('bob', 1);
    expect(w.check('bob', 1)).toBe('Replay');
    expect(w.check('bob', 0)).toBe('Replay');
    expect(w.check('bob', 5)).toBeUndefined(); // gaps are fine, going back is not
    expect(w.check('bob', 102)).toBe('SequenceOutOfWindow');
    expect(w.check('carol', 100)).toBeUndefined(); // per sender
    expect(w.check('carol', 101)).toBe('SequenceOutOfWindow');
  });
  it('check does not commit', () => {
    const w = new SequenceWindow();
    expect(w.check('bob', 3)).toBeUndefined();
    expect(w.check('bob', 3)).toBeUndefined();
    expect(w.last('bob')).toBe(0);
  });
});

describe('EpochKeyring', () => {
  it('round-trips a message and refuses replay, tampering and a wrong sender', () => {
    const sender = new EpochKeyring(G, 10_000);
    const receiver = new EpochKeyring(G, 10_000);
    sender.install(1, epochKey(5), ['alice', 'bob'], 'alice');
    receiver.install(1, epochKey(5), ['alice', 'bob'], 'alice');
    const m = sender.seal('alice', Buffer.from('hello'));
    expect(m.seq).toBe(1);
    const ok = receiver.open(1, 'alice', m.seq, m.iv, m.ciphertext);
    expect(ok.ok && ok.plaintext.toString()).toBe('hello');
    const again = receiver.open(1, 'alice', m.seq, m.iv, m.ciphertext);
    expect(!again.ok && again.code).toBe('Replay');
    const m2 = sender.seal('alice', Buffer.from('second'));
    expect(m2.seq).toBe(2);
    const asBob = receiver.open(1, 'bob', m2.seq, m2.iv, m2.ciphertext);
    expect(!asBob.ok && asBob.code).toBe('DecryptFailed'); // sender is in the AAD
    const flipped = Buffer.from(m2.ciphertext);
    flipped[0] = (flipped[0] as number) ^ 1;
    const bad = receiver.open(1, 'alice', m2.seq, m2.iv, flipped);
    expect(!bad.ok && bad.code).toBe('DecryptFailed');
    // a failed decrypt does not advance the window: the genuine message still opens
    const good = receiver.open(1, 'alice', m2.seq, m2.iv, m2.ciphertext);
    expect(good.ok).toBe(true);
  });

  it('knows unknown, previous (grace) and retired epochs apart', () => {
    let now = 1000;
    const sender = new EpochKeyring(G, 500, () => now);
    const ring = new EpochKeyring(G, 500, () => now);
    sender.install(1, epochKey(1), ['a', 'b'], 'a');
    ring.install(1, epochKey(1), ['a', 'b'], 'a');
    const old = sender.seal('a', Buffer.from('x'));
    const older = sender.seal('a', Buffer.from('y'));
    ring.install(2, epochKey(2), ['a', 'b'], 'a');
    expect(ring.open(1, 'a', old.seq, old.iv, old.ciphertext).ok).toBe(true); // in grace
    now += 501;
    const late = ring.open(1, 'a', older.seq, older.iv, older.ciphertext);
    expect(!late.ok && late.code).toBe('RetiredEpoch');
    const never = ring.open(7, 'a', 1, old.iv, old.ciphertext);
    expect(!never.ok && never.code).toBe('UnknownEpoch');
    expect(ring.knows(1)).toBe(true);
    expect(ring.knows(7)).toBe(false);
    expect(() => ring.install(2, epochKey(3), ['a', 'b'], 'a')).toThrow();
  });

  it('keeps no key after clear()', () => {
    const ring = new EpochKeyring(G, 500);
    ring.install(1, epochKey(1), ['a', 'b'], 'a');
    ring.clear();
    expect(ring.current).toBeUndefined();
    expect(() => ring.seal('a', Buffer.from('x'))).toThrow();
  });
});

describe('chat codec', () => {
  it('round-trips and refuses anything else', () => {
    const bytes = encodeChatPlaintext({ text: 'héllo ✓', sentAt: 123 });
    expect(decodeChatPlaintext(bytes)).toEqual({ text: 'héllo ✓', sentAt: 123 });
    expect(() => decodeChatPlaintext(Buffer.from('{"text":"x","sentAt":1,"extra":1}'))).toThrow(
      ProtocolError,
    );
    expect(() => decodeChatPlaintext(Buffer.from('{"text":"","sentAt":1}'))).toThrow(ProtocolError);
    expect(() => decodeChatPlaintext(Buffer.from([0xff, 0xfe]))).toThrow(ProtocolError);
    expect(() => checkOutgoingText('x'.repeat(16 * 1024 + 1))).toThrow(ClientError);
    expect(() => checkOutgoingText('')).toThrow(ClientError);
  });

  it('pads to size buckets so lengths leak only coarsely, and refuses a plaintext without the marker', () => {
    const short = encodeChatPlaintext({ text: 'ok', sentAt: 1 });
    const sentence = encodeChatPlaintext({
      text: 'a sentence of about two hundred characters '.repeat(4),
      sentAt: 1,
    });
    expect(short.length).toBe(256);
    expect(sentence.length).toBe(256);
    expect(encodeChatPlaintext({ text: 'x'.repeat(300), sentAt: 1 }).length).toBe(512);
    expect([255, 256, 257, 70_000, 100_000].map(paddedLength)).toEqual([256, 512, 512, 81_920, 114_688]);
    // The largest message there is still fits the wire's ciphertext bound once sealed (+16 tag).
    const worst = encodeChatPlaintext({
      text: '\u0001'.repeat(MAX_TEXT_CHARS),
      sentAt: Number.MAX_SAFE_INTEGER,
    });
    expect(worst.length + 16).toBeLessThanOrEqual(LIMITS.chatCiphertextBytes);
    expect(decodeChatPlaintext(worst).text).toHaveLength(MAX_TEXT_CHARS);
    const unpadded = Buffer.from('{"text":"x","sentAt":1}');
    expect(() => decodeChatPlaintext(unpadded)).toThrow(/padding/);
    expect(() => decodeChatPlaintext(Buffer.alloc(256))).toThrow(/padding/);
    expect(decodeChatPlaintext(Buffer.concat([unpadded, Buffer.from([0x80])]))).toEqual({
      text: 'x',
      sentAt: 1,
    });
  });
});

describe('Outbox', () => {
  it('is FIFO, and requeued messages go back in front in their order', () => {
    const o = new Outbox(10);
    for (let i = 1; i <= 5; i++) o.push({ localId: String(i), text: `m${i}`, sentAt: i });
    const a = o.shift();
    const b = o.shift();
    expect([a?.localId, b?.localId]).toEqual(['1', '2']);
    if (!a || !b) throw new Error('outbox lost messages');
    o.unshiftAll([a, b]);
    expect(o.peekAll().map((m) => m.localId)).toEqual(['1', '2', '3', '4', '5']);
    expect(o.size).toBe(5);
  });
  it('refuses, loudly, beyond its capacity', () => {
    const o = new Outbox(2);
    o.push({ localId: '1', text: 'a', sentAt: 0 });
    o.push({ localId: '2', text: 'b', sentAt: 0 });
    expect(() => o.push({ localId: '3', text: 'c', sentAt: 0 })).toThrow(/already waiting/);
  });
  it('survives many push/shift cycles (compaction keeps order)', () => {
    const o = new Outbox(100_000);
    const seen: number[] = [];
    for (let i = 0; i < 5000; i++) {
      o.push({ localId: String(i), text: 't', sentAt: i });
      if (i % 3 === 0) seen.push(Number(o.shift()?.localId));
    }
    while (o.size > 0) seen.push(Number(o.shift()?.localId));
    expect(seen).toEqual([...Array(5000).keys()]);
  });
});

describe('OrderedWriter', () => {
  const deferred = () => {
    let resolve!: (b: Buffer) => void;
    const promise = new Promise<Buffer>((r) => (resolve = r));
    return { promise, resolve };
  };
  it('writes in submission order whatever order the signatures finish in', async () => {
    const written: number[] = [];
    const w = new OrderedWriter<number>(
      (_f, m) => written.push(m),
      () => undefined,
    );
    const ds = [0, 1, 2, 3, 4].map(() => deferred());
    ds.forEach((d, i) => w.enqueue(d.promise, i));
    for (const i of [3, 1, 4, 0, 2]) ds[i]?.resolve(Buffer.from([i]));
    await new Promise((r) => setImmediate(r));
    expect(written).toEqual([0, 1, 2, 3, 4]);
  });
  it('cancelled entries are never written and come back in order', async () => {
    const written: number[] = [];
    const w = new OrderedWriter<number>(
      (_f, m) => written.push(m),
      () => undefined,
    );
    const ds = [0, 1, 2, 3].map(() => deferred());
    ds.forEach((d, i) => w.enqueue(d.promise, i));
    ds[0]?.resolve(Buffer.from([0]));
    await new Promise((r) => setImmediate(r));
    expect(w.cancel((m) => m % 2 === 1)).toEqual([1, 3]);
    for (const d of ds) d.resolve(Buffer.from([9]));
    await new Promise((r) => setImmediate(r));
    expect(written).toEqual([0, 2]);
  });
});

describe('Backoff', () => {
  it('grows exponentially to the cap; jitter only shortens; reset starts over', () => {
    const none = new Backoff({ initialMs: 250, maxMs: 10_000, multiplier: 2, jitter: 0 });
    expect([1, 2, 3, 4, 5, 6, 7, 8].map(() => none.next())).toEqual([
      250, 500, 1000, 2000, 4000, 8000, 10_000, 10_000,
    ]);
    none.reset();
    expect(none.next()).toBe(250);
    const half = new Backoff({ initialMs: 1000, maxMs: 1000, multiplier: 2, jitter: 0.5 }, () => 1);
    expect(half.next()).toBe(500);
    const rnd = new Backoff({ initialMs: 250, maxMs: 10_000, multiplier: 2, jitter: 0.5 });
    for (let i = 0; i < 50; i++) {
      const d = rnd.next();
      expect(d).toBeGreaterThanOrEqual(1);
      expect(d).toBeLessThanOrEqual(10_000);
    }
    expect(() => new Backoff({ initialMs: 0, maxMs: 1, multiplier: 2, jitter: 0 })).toThrow();
  });
});
