/**
 * Typed reasons the engine reports through `error` events. Receive-side rejects name what was
 * wrong with one frame; the connection always goes on after them.
 */
export const REJECT_CODES = [
  'BadSignature',
  'UnknownSender',
  'UnknownEpoch',
  'RetiredEpoch',
  'Replay',
  'SequenceOutOfWindow',
  'DecryptFailed',
  'SchemaViolation',
] as const;
export type RejectCode = (typeof REJECT_CODES)[number];

export type ClientErrorCode =
  | RejectCode
  | 'BadFrame'
  | 'RelayCertificateRejected'
  /** A relay of the group whose certificate the roster this member holds does not list. */
  | 'RelayNotInRoster'
  | 'RelayError'
  | 'CertificateRejected'
  | 'KeyEstablishment'
  /** A handshake frame (or our own choice) would move the epoch further than allowed. */
  | 'EpochOutOfRange'
  /**
   * Two different keys for one epoch (two initiators raced, or a forged distribution): the installed
   * key is kept and a re-key above it is asked for.
   */
  | 'KeyConflict'
  /** A REKEY_REQUEST beyond one per sender per 10 s: ignored. */
  | 'RekeyRateLimited'
  /** The highest epoch could not be saved to the state store: the new epoch is not used. */
  | 'StateStoreFailed'
  /** Signing one of our frames failed (the message goes back to the queue). */
  | 'SignFailed'
  | 'HeldFramesDropped'
  | 'OutboxFull'
  | 'MessageTooLong'
  | 'ConnectionLost'
  /** A roster from the relay that does not verify with the group CA, forks ours, or cannot be saved. */
  | 'RosterRefused'
  | 'Unsent';

export class ClientError extends Error {
  override readonly name = 'ClientError';
  constructor(
    readonly code: ClientErrorCode,
    message: string,
  ) {
    super(message);
  }
}
