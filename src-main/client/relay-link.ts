/**
 * What a member makes of the relay's own frames beyond their signature: which session they are
 * bound to, what an ERROR means for the session. (Heartbeats: the engine state machine, over core/link/liveness.ts.)
 */
import { sessionTag } from '../core/link/session-tag.js';
import { ProtocolError } from '../core/protocol/errors.js';
import type { BodyOf } from '../core/protocol/schemas.js';

/**
 * A relay frame counts only in the session it was signed for. Without this, a signed ERROR that an
 * anonymous junk login obtained, or a PRESENCE recorded before a relay restart, could be replayed
 * into a member's stream.
 */
export function checkSession(type: string, bound: Buffer, own: Buffer | undefined): void {
  if (!own || !bound.equals(own)) {
    throw new ProtocolError('WrongSession', `${type} signed for another session refused`);
  }
}

/** PRESENCE is shared by every receiver: it must list this session's tag. */
export function checkSessionListed(bound: readonly Buffer[], own: Buffer | undefined): void {
  const tag = own ? sessionTag(own) : undefined;
  if (!tag || !bound.some((b) => b.equals(tag))) {
    throw new ProtocolError('WrongSession', 'PRESENCE for other sessions refused');
  }
}

export type RelayErrorVerdict =
  /** Retrying would meet the same refusal: stop (Failed). */
  | { kind: 'terminal' }
  /** The relay ends this connection; connect again after `atLeastMs` (0 = the usual backoff). */
  | { kind: 'reconnect'; atLeastMs: number }
  /** One frame refused; the session goes on. */
  | { kind: 'report' };

/** Before login, refusals of who we are (our certificate, our proof) end the story. */
const TERMINAL_BEFORE_LOGIN = new Set(['AuthFailed', 'CertificateRejected']);
/** After login, only these end it, and only when bound to this session (checked before). */
const TERMINAL_AFTER_LOGIN = new Set(['Replaced']);

/**
 * The roster's verdicts, at login or when a newer roster drops us: the same roster answers the same
 * way next time (NoRoster only once the relay's roster-only window is over).
 */
const TERMINAL_ROSTER = new Set(['Removed', 'NotInRoster', 'NoRoster']);

export function classifyRelayError(body: BodyOf<'ERROR'>, authenticated: boolean): RelayErrorVerdict {
  const terminal = authenticated ? TERMINAL_AFTER_LOGIN : TERMINAL_BEFORE_LOGIN;
  if (terminal.has(body.code)) return { kind: 'terminal' };
  if (body.fatal && TERMINAL_ROSTER.has(body.code)) return { kind: 'terminal' };
  if (body.fatal) return { kind: 'reconnect', atLeastMs: 0 };
  return { kind: 'report' };
}
