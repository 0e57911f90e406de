/**
 * The engine's transport port: how it reaches the relay. The default is the TLS link of
 * transport.ts; tests pass an in-memory one, so the engine's timers and queues are exercised with
 * fake time and no sockets.
 */
import type { LocalIdentity } from '../core/pki/local-identity.js';
import type { RelayAddress } from './engine-types.js';
import { FramedConnection, type TransportHandlers } from './transport.js';

export type { TransportHandlers } from './transport.js';

/** One connection to the relay carrying whole envelopes (framing is the link's business). */
export interface EngineLink {
  readonly isOpen: boolean;
  /** Bytes written but not yet taken by the peer: the engine stops signing ahead above a mark. */
  readonly writableLength: number;
  /** What the relay announced in HELLO as the largest frame it takes. */
  peerMaxFrameBytes: number;
  write(envelope: Buffer): boolean;
  /** Flushes what was written, then closes; resolves once closed. */
  end(): Promise<void>;
  /** Closes at once; `onClose` follows (exactly once per link) with this reason. */
  destroy(reason: string): void;
}

export interface ConnectRequest {
  relay: RelayAddress;
  identity: LocalIdentity;
  maxFrameBytes: number;
  connectTimeoutMs: number;
}

export type ConnectRelay = (request: ConnectRequest, handlers: TransportHandlers) => EngineLink;

/** The real thing: TLS 1.3 with both certificates checked against the group CA. */
export const connectTls: ConnectRelay = (r, handlers) =>
  new FramedConnection(r.relay.host, r.relay.port, r.identity, handlers, {
    maxFrameBytes: r.maxFrameBytes,
    connectTimeoutMs: r.connectTimeoutMs,
  });
