import fc from 'fast-check';
import { describe, expect, it } from 'vitest';
import {
  decodeLinkFrame,
  deliveredHeader,
  encodeDelivered,
  encodeLive,
  encodeStored,
  isLinkFrame,
  ProtocolError,
} from '../../src-main/core/protocol/index.js';

const offset = fc.integer({ min: 0, max: Number.MAX_SAFE_INTEGER });

describe('link frames', () => {
  it('round-trips DELIVERED, STORED and LIVE', () => {
    fc.assert(
      fc.property(offset, fc.uint8Array({ minLength: 1, maxLength: 64 }), (o, env) => {
        const frame = encodeDelivered(o, env);
        expect(isLinkFrame(frame)).toBe(true);
        expect(decodeLinkFrame(frame)).toEqual({ kind: 'DELIVERED', offset: o, envelope: Buffer.from(env) });
        expect(Buffer.concat([deliveredHeader(o), env])).toEqual(frame);
      }),
    );
    fc.assert(
      fc.property(
        fc.array(fc.record({ n: fc.integer({ min: 1, max: 0xffffffff }), offset }), {
          minLength: 1,
          maxLength: 50,
        }),
        (acks) => {
          expect(decodeLinkFrame(encodeStored(acks))).toEqual({ kind: 'STORED', acks });
        },
      ),
    );
    fc.assert(
      fc.property(offset, (h) => {
        expect(decodeLinkFrame(encodeLive(h))).toEqual({ kind: 'LIVE', head: h });
      }),
    );
  });

  it('an envelope is never a link frame (its first byte is its version)', () => {
    expect(isLinkFrame(Buffer.from([1, 9]))).toBe(false);
    expect(isLinkFrame(Buffer.alloc(0))).toBe(false);
  });

  it('refuses malformed link frames with BadFrame, never another exception', () => {
    const bad = [
      Buffer.from([0]),
      Buffer.from([0, 9, 0, 0]),
      Buffer.from([1, 1]),
      deliveredHeader(5),
      Buffer.from([0, 2, 0, 0]),
      encodeStored([{ n: 1, offset: 1 }]).subarray(0, 15),
      Buffer.concat([encodeStored([{ n: 1, offset: 1 }]), Buffer.from([0])]),
      (() => {
        const b = encodeStored([{ n: 1, offset: 1 }]);
        b.writeUInt32BE(0, 4);
        return b;
      })(),
      Buffer.concat([encodeLive(1), Buffer.from([0])]),
      (() => {
        const b = encodeLive(0);
        b.writeBigUInt64BE(2n ** 53n, 2);
        return b;
      })(),
    ];
    for (const frame of bad) {
      expect(() => decodeLinkFrame(frame), frame.toString('hex')).toThrow(ProtocolError);
    }
    fc.assert(
      fc.property(fc.uint8Array({ maxLength: 40 }), (bytes) => {
        try {
          decodeLinkFrame(Buffer.from([0, ...bytes]));
        } catch (err) {
          expect(err).toBeInstanceOf(ProtocolError);
        }
      }),
    );
  });

  it('encoders refuse what the wire cannot carry', () => {
    expect(() => encodeStored([])).toThrow(RangeError);
    expect(() => encodeStored([{ n: 0, offset: 1 }])).toThrow(RangeError);
    expect(() => encodeLive(-1)).toThrow(RangeError);
    expect(() => encodeLive(2 ** 53)).toThrow(RangeError);
    expect(() => encodeDelivered(1, new Uint8Array(0))).toThrow(RangeError);
  });
});
