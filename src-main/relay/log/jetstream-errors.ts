/**
 * NATS and JetStream failures as RelayLogError codes (errors.ts), with the original error as the
 * cause so a log line shows what the server said.
 */
import { JetStreamApiError } from '@nats-io/jetstream';
import { RelayLogError, type RelayLogErrorCode } from './errors.js';

/**
 * JetStream API error codes meaning the servers have no room: insufficient resources (10023),
 * memory (10028) or storage (10047) resources exceeded.
 */
const FULL_CODES = new Set([10023, 10028, 10047]);

export function codeOf(err: unknown): RelayLogErrorCode {
  if (err instanceof RelayLogError) return err.code;
  if (err instanceof JetStreamApiError && FULL_CODES.has(err.code)) return 'LogFull';
  // Timeouts, no responders (no quorum, no stream leader yet), a lost or closed connection, and
  // every other refusal: the storage could not be reached or refused, which is what LogIo says.
  return 'LogIo';
}

export function wrapNatsError(err: unknown, doing: string): RelayLogError {
  if (err instanceof RelayLogError) return err;
  const detail = err instanceof Error ? `${err.name}: ${err.message}` : String(err);
  return new RelayLogError(codeOf(err), `${doing}: ${detail}`, { cause: err });
}
