/**
 * The engine's own domain types. The app and the CLI map them to what they show
 * (src-main/app/engine-views.ts, src-main/cli/chat-output.ts); the engine never imports a view
 * type, so the UI's model can change without touching the protocol code.
 */

/** Where a session stands, in the order a successful one passes through them, then the others. */
export type EngineState =
  | 'Initialization'
  | 'Connecting'
  | 'CertExchange'
  | 'KeyEstablishment'
  | 'Chatting'
  | 'Disconnecting'
  | 'Disconnected'
  | 'Reconnecting'
  | 'Failed';

/** A member online now whose certificate this member validated itself. */
export interface Member {
  name: string;
  /** SHA-256 of the member's certificate, lowercase hex (64 characters). */
  fingerprint: string;
}

/** What may be said about a group key: never the key itself. */
export interface GroupKeyInfo {
  epoch: number;
  /** Digits in groups, equal for every member holding the same key over the same member list. */
  safetyNumber: string;
  /** M: every roster member the key was sealed for, online or not. */
  members: string[];
  /** C ⊆ M: who gave a nonce (the initiator and the members online then). */
  contributors: string[];
}

/** A typed problem the session goes on after (codes: docs/client.md). */
export interface EngineProblem {
  code: string;
  message: string;
}
