/**
 * ERROR frames: built for a connection's session, counted by code and logged (never with a
 * message body). A refused frame that is not fatal is answered; too many close the connection.
 */
import type { Logger } from 'pino';
import type { ProtocolError, RelayErrorCode } from '../core/protocol/index.js';
import type { RelayConnection } from './connection.js';
import type { ConnectionControl } from './control.js';
import type { RelayFrames } from './relay-frames.js';

export class Refusals {
  private readonly counts: Partial<Record<RelayErrorCode, number>> = {};

  constructor(
    private readonly frames: RelayFrames,
    private readonly log: Logger,
    private readonly control: ConnectionControl,
  ) {}

  /** ERROR frames sent so far, by code (a copy). */
  snapshot(): Partial<Record<RelayErrorCode, number>> {
    return { ...this.counts };
  }

  /** An ERROR frame, counted and logged (never with a message body). */
  error(
    conn: RelayConnection,
    code: RelayErrorCode,
    message: string,
    fatal: boolean,
    retryAfterMs?: number,
  ): Buffer {
    this.counts[code] = (this.counts[code] ?? 0) + 1;
    this.log.warn(
      {
        event: 'refused',
        conn: conn.id,
        name: conn.name ?? conn.linkCertificate?.name,
        code,
        fatal,
        reason: message,
        ...(retryAfterMs !== undefined ? { retryAfterMs } : {}),
      },
      'refused',
    );
    return this.frames.error(this.sessionOf(conn), code, message, fatal, retryAfterMs);
  }

  /** The session relay frames for `conn` are bound to: its HELLO challenge, or the refusal HELLO's. */
  sessionOf(conn: RelayConnection): Buffer {
    return conn.challenge ?? this.frames.refusalSession;
  }

  /** A refused frame: ERROR back, and the connection closes once it has made too many. */
  refuseFrame(conn: RelayConnection, code: RelayErrorCode, message: string): void {
    if (conn.countError()) {
      this.control.drop(
        conn,
        'too-many-errors',
        this.error(conn, 'TooManyErrors', `too many refused frames; last: ${code}: ${message}`, true),
      );
      return;
    }
    this.control.send(conn, this.error(conn, code, message, false));
  }
}

/** The ERROR code for a frame the protocol layer refused. */
export function refusalCode(code: ProtocolError['code']): RelayErrorCode {
  if (code === 'UnknownSender') return 'SenderMismatch';
  // The relay never checks sessions of what it receives; members do.
  if (code === 'WrongSession') return 'BadFrame';
  return code;
}
