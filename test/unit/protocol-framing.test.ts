import fc from 'fast-check';
import { describe, expect, it } from 'vitest';
import {
  DEFAULT_MAX_FRAME_BYTES,
  FrameDecoder,
  LENGTH_PREFIX_BYTES,
  ProtocolError,
  encodeFrame,
  lengthPrefix,
} from '../../src-main/core/protocol/index.js';

/** Feeds `stream` cut at the given offsets; returns every payload decoded, as copies. */
function decodeChunks(decoder: FrameDecoder, stream: Buffer, cuts: number[]): Buffer[] {
  const points = [...new Set(cuts.filter((c) => c > 0 && c < stream.length))].sort((a, b) => a - b);
  const out: Buffer[] = [];
  let start = 0;
  for (const end of [...points, stream.length]) {
    for (const f of decoder.push(stream.subarray(start, end))) out.push(Buffer.from(f));
    start = end;
  }
  return out;
}

function protocolErrorOf(fn: () => unknown): ProtocolError {
  try {
    fn();
  } catch (err) {
    expect(err).toBeInstanceOf(ProtocolError);
    return err as ProtocolError;
  }
  throw new Error('expected a ProtocolError, nothing was thrown');
}

/** Small (sometimes zero or oversized) length prefixes each followed by some bytes: reaches deeper states than noise. */
const plausibleStreamArb = fc
  .array(fc.tuple(fc.nat({ max: 600 }), fc.uint8Array({ maxLength: 600 })), { maxLength: 8 })
  .map((parts) => Buffer.concat(parts.flatMap(([len, body]) => [lengthPrefix(len), Buffer.from(body)])));

const payloadArb = fc.uint8Array({ minLength: 1, maxLength: 300 }).map((u) => Buffer.from(u));

describe('encodeFrame', () => {
  it('prefixes the big-endian length', () => {
    const frame = encodeFrame(Buffer.from('abc'));
    expect(frame.toString('hex')).toBe('00000003616263');
    expect(lengthPrefix(0x01020304).toString('hex')).toBe('01020304');
  });

  it('refuses an empty payload or one over the bound', () => {
    expect(protocolErrorOf(() => encodeFrame(Buffer.alloc(0))).code).toBe('FrameTooLarge');
    expect(protocolErrorOf(() => encodeFrame(Buffer.alloc(11), 10)).code).toBe('FrameTooLarge');
    expect(encodeFrame(Buffer.alloc(10), 10).length).toBe(14);
  });
});

describe('FrameDecoder', () => {
  it('decodes whole frames from one chunk and across chunks', () => {
    const d = new FrameDecoder();
    const stream = Buffer.concat([encodeFrame(Buffer.from('one')), encodeFrame(Buffer.from('two'))]);
    expect(d.push(stream).map((b) => b.toString())).toEqual(['one', 'two']);
    expect(d.push(Buffer.alloc(0))).toEqual([]);
    expect(d.pendingBytes).toBe(0);
    expect(d.midFrame).toBe(false);
  });

  it('returns the same frames for a stream split at every position', () => {
    const payloads = [
      Buffer.from('a'),
      Buffer.alloc(300, 7),
      Buffer.from('hello, world'),
      Buffer.alloc(5, 0),
    ];
    const stream = Buffer.concat(payloads.map((p) => encodeFrame(p)));
    for (let cut = 0; cut <= stream.length; cut++) {
      const frames = decodeChunks(new FrameDecoder(), stream, [cut]);
      expect(frames, `cut at ${cut}`).toEqual(payloads);
    }
  });

  it('returns the same frames for any multi-split of a valid stream (property)', () => {
    fc.assert(
      fc.property(
        fc.array(payloadArb, { minLength: 1, maxLength: 8 }),
        fc.array(fc.nat({ max: 3000 }), { maxLength: 40 }),
        (payloads, cuts) => {
          const stream = Buffer.concat(payloads.map((p) => encodeFrame(p)));
          const d = new FrameDecoder(400);
          expect(decodeChunks(d, stream, cuts)).toEqual(payloads);
          expect(d.midFrame).toBe(false);
          expect(() => d.end()).not.toThrow();
        },
      ),
      { numRuns: 500 },
    );
  });

  it('delivers byte-at-a-time input', () => {
    const payloads = [Buffer.from('x'), Buffer.alloc(70, 1)];
    const stream = Buffer.concat(payloads.map((p) => encodeFrame(p)));
    const cuts = Array.from({ length: stream.length }, (_, i) => i);
    expect(decodeChunks(new FrameDecoder(), stream, cuts)).toEqual(payloads);
  });

  it('fails fatally on a zero-length frame, and stays failed', () => {
    const d = new FrameDecoder();
    const err = protocolErrorOf(() =>
      d.push(Buffer.concat([encodeFrame(Buffer.from('ok')), lengthPrefix(0)])),
    );
    expect(err.code).toBe('BadFrame');
    expect(err.fatal).toBe(true);
    // Nothing after a framing error can be trusted, not even a valid frame or an empty read.
    expect(protocolErrorOf(() => d.push(encodeFrame(Buffer.from('later')))).code).toBe('BadFrame');
    expect(protocolErrorOf(() => d.push(Buffer.alloc(0))).code).toBe('BadFrame');
    expect(protocolErrorOf(() => d.end()).code).toBe('BadFrame');
    expect(d.pendingBytes).toBe(0);
  });

  it('fails fatally on an oversized length before buffering its body, and stays failed', () => {
    const d = new FrameDecoder(1024);
    const err = protocolErrorOf(() => d.push(lengthPrefix(1025)));
    expect(err.code).toBe('FrameTooLarge');
    expect(err.fatal).toBe(true);
    expect(d.pendingBytes).toBe(0);
    expect(protocolErrorOf(() => d.push(Buffer.alloc(10))).code).toBe('FrameTooLarge');
  });

  it('rejects the largest lengths a peer can claim, split across reads', () => {
    const d = new FrameDecoder();
    const prefix = lengthPrefix(0xffffffff);
    expect(d.push(prefix.subarray(0, 3))).toEqual([]);
    expect(d.midFrame).toBe(true);
    const err = protocolErrorOf(() => d.push(prefix.subarray(3)));
    expect(err.code).toBe('FrameTooLarge');
    expect(err.fatal).toBe(true);
  });

  it('accepts a frame of exactly the bound and follows a raised or lowered bound', () => {
    const d = new FrameDecoder(16);
    expect(d.push(encodeFrame(Buffer.alloc(16, 1), 16))).toHaveLength(1);
    d.maxFrameBytes = 64;
    expect(d.push(encodeFrame(Buffer.alloc(64, 2), 64))).toHaveLength(1);
    d.maxFrameBytes = 8;
    expect(protocolErrorOf(() => d.push(encodeFrame(Buffer.alloc(9), 9))).code).toBe('FrameTooLarge');
    expect(new FrameDecoder().maxFrameBytes).toBe(DEFAULT_MAX_FRAME_BYTES);
  });

  it('treats a stream that ends inside a frame (truncation) as a fatal BadFrame', () => {
    const full = encodeFrame(Buffer.alloc(100, 3));
    for (const cut of [1, 3, LENGTH_PREFIX_BYTES, 50, full.length - 1]) {
      const d = new FrameDecoder();
      expect(d.push(full.subarray(0, cut))).toEqual([]);
      expect(d.midFrame).toBe(true);
      const err = protocolErrorOf(() => d.end());
      expect(err.code).toBe('BadFrame');
      expect(err.fatal).toBe(true);
      expect(protocolErrorOf(() => d.push(full.subarray(cut))).code).toBe('BadFrame');
    }
  });

  it('holds at most one frame plus a prefix, and only what it was sent', () => {
    const d = new FrameDecoder(1000);
    d.push(lengthPrefix(1000));
    d.push(Buffer.alloc(999));
    expect(d.pendingBytes).toBe(999);
    expect(d.pendingBytes).toBeLessThanOrEqual(1000 + LENGTH_PREFIX_BYTES);
    expect(d.push(Buffer.concat([Buffer.alloc(1), lengthPrefix(5), Buffer.alloc(2)]))).toHaveLength(1);
    expect(d.pendingBytes).toBe(2);
  });

  it('yields only frames or a fatal ProtocolError for random bytes in random chunkings (property)', () => {
    fc.assert(
      fc.property(
        fc.oneof(fc.uint8Array({ maxLength: 2000 }), plausibleStreamArb),
        fc.array(fc.nat({ max: 2000 }), { maxLength: 20 }),
        fc.integer({ min: 1, max: 4096 }),
        (bytes, cuts, max) => {
          const d = new FrameDecoder(max);
          const stream = Buffer.from(bytes);
          let failed: ProtocolError | undefined;
          try {
            const frames = decodeChunks(d, stream, cuts);
            for (const f of frames) {
              expect(f.length).toBeGreaterThanOrEqual(1);
              expect(f.length).toBeLessThanOrEqual(max);
            }
            expect(d.pendingBytes).toBeLessThanOrEqual(max + LENGTH_PREFIX_BYTES);
            d.end();
          } catch (err) {
            if (!(err instanceof ProtocolError)) throw err;
            failed = err;
          }
          if (failed) {
            expect(failed.fatal).toBe(true);
            expect(['BadFrame', 'FrameTooLarge']).toContain(failed.code);
            expect(() => d.push(Buffer.alloc(1))).toThrow(ProtocolError);
          }
        },
      ),
      { numRuns: 1000 },
    );
  });
});
