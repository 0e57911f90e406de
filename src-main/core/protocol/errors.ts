export type ProtocolErrorCode =
  | 'BadFrame'
  | 'FrameTooLarge'
  | 'UnsupportedVersion'
  | 'UnknownType'
  | 'BadSignature'
  | 'SchemaViolation'
  | 'UnknownSender'
  /** A relay-signed frame bound to another session than this connection's. */
  | 'WrongSession';

/**
 * The only error the protocol layer throws. `fatal` says whether the byte stream is lost
 * (framing broke, nothing after it can be trusted) or just this one frame is refused.
 */
export class ProtocolError extends Error {
  override readonly name = 'ProtocolError';
  constructor(
    readonly code: ProtocolErrorCode,
    message: string,
    readonly fatal = false,
  ) {
    super(message);
  }
}
