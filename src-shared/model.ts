/**
 * Plain view-model types shared by the main process and the renderer.
 * No Node, no DOM, no crypto: these are what the UI is allowed to know.
 */

/** The client engine's states, in the order a successful session passes through them. */
export const CONNECTION_STATES = [
  'Initialization',
  'Connecting',
  'CertExchange',
  'KeyEstablishment',
  'Chatting',
  'Disconnecting',
] as const;

/** Plus the terminal and waiting states outside the happy path. */
export type ConnectionState = (typeof CONNECTION_STATES)[number] | 'Disconnected' | 'Reconnecting' | 'Failed';

export interface MemberView {
  name: string;
  /** SHA-256 of the member's certificate, lowercase hex (64 characters). */
  fingerprint: string;
}

export interface KeyView {
  epoch: number;
  /** Digits in groups, equal for every member holding the same key over the same member list. */
  safetyNumber: string;
  members: string[];
}

export interface ChatMessageView {
  from: string;
  text: string;
  epoch: number;
  seq: number;
  /** Sender's clock, ms since the Unix epoch. */
  sentAt: number;
}

export interface ErrorView {
  code: string;
  message: string;
}
