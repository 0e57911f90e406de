/**
 * The public face of the chat client engine (src-main/client/engine.ts). The terminal client and
 * the desktop app's service render exactly these events; nothing here exposes key material.
 */
import type { RosterView } from './roster-tracker.js';
import type {
  ChatMessageView,
  ConnectionState,
  ErrorView,
  KeyView,
  MemberView,
} from '../../src-shared/model.js';

export type EngineEvent =
  | { event: 'state'; state: ConnectionState; reason?: string; retryInMs?: number }
  | { event: 'members'; members: MemberView[] }
  | ({ event: 'key' } & KeyView)
  | ({ event: 'message' } & ChatMessageView)
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
  | ({ event: 'error' } & ErrorView);

export interface RelayAddress {
  host: string;
  port: number;
}

export interface ChatEngineApi {
  readonly name: string;
  readonly state: ConnectionState;
  readonly members: readonly MemberView[];
  readonly key: KeyView | undefined;
  /** Starts connecting; reconnects on its own until stop() is called. */
  start(): void;
  /** Queues a message; it is sent, in order, as soon as a key exists. Returns a local id. */
  send(text: string): string;
  /** Starts a new epoch with the current members. */
  requestRekey(): void;
  /** Sends DISCONNECT, closes the connection and stops reconnecting. */
  stop(reason?: string): Promise<void>;
  on(listener: (event: EngineEvent) => void): () => void;
}
