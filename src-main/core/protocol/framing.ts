/**
 * Length-prefixed framing: a 4-byte big-endian length N, then N bytes, 1 <= N <= maxFrameBytes.
 * The decoder never buffers more than one frame plus its prefix, whatever the peer sends.
 */
import { ProtocolError } from './errors.js';

export const DEFAULT_MAX_FRAME_BYTES = 1024 * 1024;
export const LENGTH_PREFIX_BYTES = 4;

export function encodeFrame(payload: Uint8Array, maxFrameBytes = DEFAULT_MAX_FRAME_BYTES): Buffer {
  if (payload.length < 1 || payload.length > maxFrameBytes) {
    throw new ProtocolError(
      'FrameTooLarge',
      `frame of ${payload.length} bytes is outside 1..${maxFrameBytes}`,
    );
  }
  const out = Buffer.allocUnsafe(LENGTH_PREFIX_BYTES + payload.length);
  out.writeUInt32BE(payload.length, 0);
  out.set(payload, LENGTH_PREFIX_BYTES);
  return out;
}

export function lengthPrefix(length: number): Buffer {
  const prefix = Buffer.allocUnsafe(LENGTH_PREFIX_BYTES);
  prefix.writeUInt32BE(length, 0);
  return prefix;
}

export class FrameDecoder {
  /** Up to 4 bytes of a length prefix split across reads. */
  private readonly prefix = Buffer.alloc(LENGTH_PREFIX_BYTES);
  private prefixFilled = 0;
  /** The frame being filled, allocated once its length is known (so copying stays linear). */
  private partial: Buffer | undefined;
  private partialFilled = 0;
  private failed: ProtocolError | undefined;

  /** Adjustable: the relay accepts only small frames before a connection has authenticated. */
  constructor(public maxFrameBytes = DEFAULT_MAX_FRAME_BYTES) {}

  /** Bytes held waiting for the rest of a frame (at most maxFrameBytes + 4). */
  get pendingBytes(): number {
    return this.prefixFilled + this.partialFilled;
  }

  /**
   * Feeds bytes from the stream and returns the complete frame payloads they finish. Whole frames
   * inside one read are returned as views of it, without copying.
   * After a framing error the stream cannot be resynchronised: every later call throws it again.
   */
  push(chunk: Buffer): Buffer[] {
    if (this.failed) throw this.failed;
    const frames: Buffer[] = [];
    let offset = 0;
    while (offset < chunk.length) {
      if (this.partial) {
        const n = Math.min(this.partial.length - this.partialFilled, chunk.length - offset);
        chunk.copy(this.partial, this.partialFilled, offset, offset + n);
        this.partialFilled += n;
        offset += n;
        if (this.partialFilled === this.partial.length) {
          frames.push(this.partial);
          this.partial = undefined;
          this.partialFilled = 0;
        }
        continue;
      }
      let length: number;
      if (this.prefixFilled === 0 && chunk.length - offset >= LENGTH_PREFIX_BYTES) {
        length = chunk.readUInt32BE(offset);
        offset += LENGTH_PREFIX_BYTES;
      } else {
        const n = Math.min(LENGTH_PREFIX_BYTES - this.prefixFilled, chunk.length - offset);
        chunk.copy(this.prefix, this.prefixFilled, offset, offset + n);
        this.prefixFilled += n;
        offset += n;
        if (this.prefixFilled < LENGTH_PREFIX_BYTES) break;
        length = this.prefix.readUInt32BE(0);
        this.prefixFilled = 0;
      }
      this.check(length);
      if (chunk.length - offset >= length) {
        frames.push(chunk.subarray(offset, offset + length));
        offset += length;
      } else {
        this.partial = Buffer.allocUnsafe(length);
        this.partialFilled = 0;
      }
    }
    return frames;
  }

  /** True while a frame has been started (prefix or body bytes read) but not finished. */
  get midFrame(): boolean {
    return this.prefixFilled > 0 || this.partial !== undefined;
  }

  /**
   * Call when the peer closes the stream: a frame cut short is a framing error, never something
   * to wait for or to hand on half-filled.
   */
  end(): void {
    if (this.failed) throw this.failed;
    if (this.midFrame) {
      this.fail(new ProtocolError('BadFrame', 'the stream ended in the middle of a frame', true));
    }
  }

  private check(length: number): void {
    if (length === 0) this.fail(new ProtocolError('BadFrame', 'zero-length frame', true));
    if (length > this.maxFrameBytes) {
      this.fail(
        new ProtocolError(
          'FrameTooLarge',
          `frame of ${length} bytes exceeds the ${this.maxFrameBytes}-byte limit`,
          true,
        ),
      );
    }
  }

  private fail(error: ProtocolError): never {
    this.failed = error;
    this.partial = undefined;
    this.partialFilled = 0;
    this.prefixFilled = 0;
    throw error;
  }
}
