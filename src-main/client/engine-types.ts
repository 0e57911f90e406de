/**
 * The public face of the chat client engine (src-main/client/engine.ts). The terminal client and
 * the desktop app's service render exactly these events; nothing here exposes key material.
 */
import type { EngineProblem, EngineState, GroupKeyInfo, Member } from './types.js';
import type { ConnectionCause } from './engine-machine.js';
import type { RosterView } from './roster-tracker.js';

export type EngineEvent =
  /**
   * `cause`: a code for why, where the engine has one (the reason is words for people). `relay`:
   * on Connecting, the HOST:PORT being tried, given only when the engine has several addresses.
   */
  | {
      event: 'state';
      state: EngineState;
      reason?: string;
      retryInMs?: number;
      cause?: ConnectionCause;
      relay?: string;
    }
  | { event: 'members'; members: Member[] }
  | ({ event: 'key' } & GroupKeyInfo)
  /** A message from another member, shown once: `offset` is where the relay's log holds it. */
  | {
      event: 'message';
      from: string;
      text: string;
      epoch: number;
      seq: number;
      offset?: number;
      /** Sender's clock, ms since the Unix epoch. */
      sentAt: number;
      /** Caught up from the relay's log (sent while this member was away), not received live. */
      backlog?: true;
    }
  /** One of our messages is durable in the relay's log (STORED): it reaches members who are away. */
  | { event: 'sent'; epoch: number; seq: number; offset: number }
  /** Part of the history could not be served by the relay's log, in plain words. */
  | { event: 'gap'; reason: string }
  /** One of our own messages: queued (no key yet) or sent under an epoch with its sequence number. */
  | {
      event: 'outgoing';
      localId: string;
      status: 'queued' | 'sent';
      text: string;
      epoch?: number;
      seq?: number;
    }
  | { event: 'system'; kind: 'joined' | 'left'; name: string }
  /** The roster this member holds: at the first ROSTER of a run, then each newer one. */
  | ({ event: 'roster' } & RosterView)
  | ({ event: 'error' } & EngineProblem);

export interface RelayAddress {
  host: string;
  port: number;
}

/** An address as the engine names it in its `state` events: HOST:PORT, or [v6]:PORT. */
export function relayAddressText(a: RelayAddress): string {
  return a.host.includes(':') ? `[${a.host}]:${a.port}` : `${a.host}:${a.port}`;
}

/** What became of an offered roster; `version`: the one held afterwards. */
export type RosterOffer =
  { accepted: true; version: number } | { accepted: false; version: number; code: string; message: string };

export interface ChatEngineApi {
  readonly name: string;
  readonly state: EngineState;
  readonly members: readonly Member[];
  readonly key: GroupKeyInfo | undefined;
  /** Starts connecting; reconnects on its own until stop() is called. */
  start(): void;
  /** Queues a message; it is sent, in order, as soon as a key exists. Returns a local id. */
  send(text: string): string;
  /** Starts a new epoch with the current members. */
  requestRekey(): void;
  /**
   * A roster the organiser signed on this machine (a CA-signed envelope): kept and used if it is
   * newer than the one held, and handed to the relay now (or at the next login).
   */
  offerRoster(bytes: Buffer): RosterOffer;
  /** Sends DISCONNECT, closes the connection and stops reconnecting. */
  stop(reason?: string): Promise<void>;
  on(listener: (event: EngineEvent) => void): () => void;
}
