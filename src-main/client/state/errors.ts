/** Typed failures of the member's local state store (member-store.ts, store-key.ts). */
export type StateStoreErrorCode =
  /** The key does not open the database: another password, or another store's key. */
  | 'StateKeyWrong'
  /**
   * The key is kept by the OS keystore (the desktop app), which is unavailable now or cannot
   * decrypt it (another user account or computer).
   */
  | 'StateKeyUnavailable'
  /** The database holds values this version cannot read, or its salt file is damaged. */
  | 'StateStoreCorrupt'
  /** The store was written by a newer version (schema version above what this one knows). */
  | 'StateStoreTooNew'
  /** The store belongs to another group or member. */
  | 'StateStoreMismatch'
  /** The file system refused (permissions, disk full, …). */
  | 'StateStoreIo';

export class StateStoreError extends Error {
  override readonly name = 'StateStoreError';
  constructor(
    readonly code: StateStoreErrorCode,
    message: string,
    options?: { cause?: unknown },
  ) {
    super(message, options);
  }
}
