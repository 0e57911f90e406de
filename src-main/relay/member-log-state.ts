/**
 * One member session's side of the relay's log (protocol v2, docs/protocol.md "Link frames"):
 * how many logged frames it has sent (the n of STORED), its STORED acks waiting for the end of
 * the turn, and where its SYNC stands. Kept on the connection itself (one field) because the
 * fan-out looks at it for every receiver of every logged frame.
 */
import type { StoredAck } from '../core/protocol/index.js';

export type SyncMode =
  /** SYNC received, the replay runs: live logged frames are skipped, the replay will carry them. */
  | 'replaying'
  /** LIVE sent: live logged frames above `position` go out as DELIVERED. */
  | 'live';

export interface MemberSync {
  mode: SyncMode;
  /** Every logged offset up to this one was replayed (or was not for this member). */
  position: number;
}

export class MemberLogState {
  /**
   * ENCRYPTED_TEXT and KEY_DISTRIBUTION frames this session has sent, refused ones included: the
   * member counts what it sends and cannot tell which ones the relay refused, so counting every one
   * keeps the n of each STORED pointing at the frame the member means (a refused frame is simply
   * never acknowledged, and resent after a reconnect).
   */
  sent = 0;
  /** Undefined until the member sends SYNC: until then the session is v1 (bare envelopes, no STORED). */
  sync: MemberSync | undefined;
  /** Acks gathered during this turn, sent as one STORED. */
  acks: StoredAck[] = [];
}

/** The connection's log state, created on first use. */
export function logStateOf(conn: { logState: MemberLogState | undefined }): MemberLogState {
  conn.logState ??= new MemberLogState();
  return conn.logState;
}
