/**
 * Link frames (protocol v2): what the relay tells a member about its log, on a session that sent
 * SYNC. They are not envelopes and carry no signature: they travel inside the mutually
 * authenticated TLS link, only the relay can write them, and they say nothing a member must trust
 * for its safety (an offset only decides where the member's next SYNC starts; every message inside
 * DELIVERED is still a signed envelope, verified end to end).
 *
 * An envelope's first byte is its version (>= 1), so a first byte 0 marks a link frame:
 *
 *   DELIVERED  00 01 | u64 offset | envelope          a logged frame, live or replayed
 *   STORED     00 02 | u16 count | (u32 n, u64 offset) × count
 *                                                      the member's n-th logged frame of this
 *                                                      session (from 1) is stored at offset
 *   LIVE       00 03 | u64 head                        the replay is over; head = the log's last
 *                                                      offset when it ended
 *
 * Integers are big-endian. Offsets are safe integers (< 2^53); anything else is a BadFrame.
 */
import { ProtocolError } from './errors.js';

export const LINK_FRAME_MARKER = 0;

export const LINK_FRAME_KINDS = { DELIVERED: 1, STORED: 2, LIVE: 3 } as const;

/** At most this many acknowledgements per STORED (the u16 count). */
export const MAX_STORED_ACKS = 0xffff;

const DELIVERED_HEADER_BYTES = 2 + 8;
const STORED_ACK_BYTES = 4 + 8;

export interface StoredAck {
  /** The member's logged frames of this session, counted from 1 in the order it sent them. */
  n: number;
  offset: number;
}

export type LinkFrame =
  | { kind: 'DELIVERED'; offset: number; envelope: Buffer }
  | { kind: 'STORED'; acks: StoredAck[] }
  | { kind: 'LIVE'; head: number };

/** True if this frame payload is a link frame rather than an envelope. */
export function isLinkFrame(payload: Uint8Array): boolean {
  return payload.length > 0 && payload[0] === LINK_FRAME_MARKER;
}

/**
 * The 10 bytes that go before an envelope to make it DELIVERED: sent as its own chunk, so that one
 * stored envelope is written to every receiver without a copy.
 */
export function deliveredHeader(offset: number): Buffer {
  const out = Buffer.allocUnsafe(DELIVERED_HEADER_BYTES);
  out[0] = LINK_FRAME_MARKER;
  out[1] = LINK_FRAME_KINDS.DELIVERED;
  writeOffset(out, 2, offset);
  return out;
}

/** DELIVERED as one buffer (tests, small paths); the relay uses deliveredHeader + the envelope. */
export function encodeDelivered(offset: number, envelope: Uint8Array): Buffer {
  if (envelope.length === 0) throw new RangeError('DELIVERED needs an envelope');
  return Buffer.concat([deliveredHeader(offset), envelope]);
}

export function encodeStored(acks: readonly StoredAck[]): Buffer {
  if (acks.length < 1 || acks.length > MAX_STORED_ACKS) {
    throw new RangeError(`STORED carries 1..${MAX_STORED_ACKS} acknowledgements, not ${acks.length}`);
  }
  const out = Buffer.allocUnsafe(4 + acks.length * STORED_ACK_BYTES);
  out[0] = LINK_FRAME_MARKER;
  out[1] = LINK_FRAME_KINDS.STORED;
  out.writeUInt16BE(acks.length, 2);
  let at = 4;
  for (const { n, offset } of acks) {
    if (!Number.isInteger(n) || n < 1 || n > 0xffffffff)
      throw new RangeError(`ack number ${n} is not a u32 >= 1`);
    out.writeUInt32BE(n, at);
    writeOffset(out, at + 4, offset);
    at += STORED_ACK_BYTES;
  }
  return out;
}

export function encodeLive(head: number): Buffer {
  const out = Buffer.allocUnsafe(10);
  out[0] = LINK_FRAME_MARKER;
  out[1] = LINK_FRAME_KINDS.LIVE;
  writeOffset(out, 2, head);
  return out;
}

/**
 * Decodes a link frame. The envelope of DELIVERED is a view into `payload` (no copy). Throws
 * ProtocolError BadFrame for anything malformed: wrong marker, unknown kind, wrong length, an
 * offset of 2^53 or more, a STORED without acknowledgements.
 */
export function decodeLinkFrame(payload: Buffer): LinkFrame {
  if (payload.length < 2 || payload[0] !== LINK_FRAME_MARKER) {
    throw new ProtocolError('BadFrame', 'not a link frame');
  }
  switch (payload[1]) {
    case LINK_FRAME_KINDS.DELIVERED: {
      if (payload.length <= DELIVERED_HEADER_BYTES) {
        throw new ProtocolError('BadFrame', 'DELIVERED without an envelope');
      }
      return {
        kind: 'DELIVERED',
        offset: readOffset(payload, 2),
        envelope: payload.subarray(DELIVERED_HEADER_BYTES),
      };
    }
    case LINK_FRAME_KINDS.STORED: {
      if (payload.length < 4) throw new ProtocolError('BadFrame', 'STORED is truncated');
      const count = payload.readUInt16BE(2);
      if (count === 0) throw new ProtocolError('BadFrame', 'STORED without acknowledgements');
      if (payload.length !== 4 + count * STORED_ACK_BYTES) {
        throw new ProtocolError(
          'BadFrame',
          `STORED of ${count} acknowledgements has ${payload.length} bytes`,
        );
      }
      const acks: StoredAck[] = [];
      for (let i = 0, at = 4; i < count; i++, at += STORED_ACK_BYTES) {
        const n = payload.readUInt32BE(at);
        if (n === 0) throw new ProtocolError('BadFrame', 'STORED acknowledges frame number 0');
        acks.push({ n, offset: readOffset(payload, at + 4) });
      }
      return { kind: 'STORED', acks };
    }
    case LINK_FRAME_KINDS.LIVE: {
      if (payload.length !== 10)
        throw new ProtocolError('BadFrame', `LIVE has ${payload.length} bytes, not 10`);
      return { kind: 'LIVE', head: readOffset(payload, 2) };
    }
    default:
      throw new ProtocolError('BadFrame', `unknown link frame kind ${payload[1]}`);
  }
}

function writeOffset(out: Buffer, at: number, offset: number): void {
  if (!Number.isSafeInteger(offset) || offset < 0)
    throw new RangeError(`offset ${offset} is not a safe integer >= 0`);
  out.writeBigUInt64BE(BigInt(offset), at);
}

function readOffset(payload: Buffer, at: number): number {
  const value = payload.readBigUInt64BE(at);
  if (value > BigInt(Number.MAX_SAFE_INTEGER)) {
    throw new ProtocolError('BadFrame', 'offset beyond 2^53 - 1');
  }
  return Number(value);
}
