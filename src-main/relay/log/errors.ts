/** Typed failures of the relay's store-and-forward log (any RelayLog implementation). */
export type RelayLogErrorCode =
  /** The file is not a database, is damaged, or holds values this version cannot read. */
  | 'LogCorrupt'
  /** The file is a database, but not a relay log (it is never written to). */
  | 'LogForeign'
  /** The log was written by a newer version (schema version above what this one knows). */
  | 'LogTooNew'
  /** Another process (another relay on the same data directory) holds the log. */
  | 'LogLocked'
  /** The disk or quota is full: nothing of the failed call was stored. */
  | 'LogFull'
  /** The storage refused or could not be reached (permissions, I/O error, a lost cluster link). */
  | 'LogIo'
  /** close() was called: the log takes no more calls. */
  | 'LogClosed';

export class RelayLogError extends Error {
  override readonly name = 'RelayLogError';
  constructor(
    readonly code: RelayLogErrorCode,
    message: string,
    options?: { cause?: unknown },
  ) {
    super(message, options);
  }
}
