export { RelayLogError, type RelayLogErrorCode } from './errors.js';
export { checkSync, LogReplay, type ReplayOptions, type SyncCheck } from './replay.js';
export { SCHEMA_VERSION, type Synchronous } from './schema.js';
export { RELAY_LOG_FILE, SqliteRelayLog, type SqliteRelayLogOptions } from './sqlite-log.js';
export * from './types.js';
export { LogWriter, type LogWriterOptions } from './writer.js';
