/**
 * What the relay's parts may ask of the coordinator (RelayServer): run a handler so that an
 * exception closes only its connection, close a connection, queue bytes for one. Passed to each
 * part explicitly, so no part reaches into another's state.
 */
import type { RelayConnection } from './connection.js';

export interface ConnectionControl {
  /** Runs a handler; an exception closes only the connection it belongs to and is logged. */
  guard(conn: RelayConnection | undefined, fn: () => unknown): void;
  /** Closes a connection (optionally after a final ERROR) and removes it from the members. */
  drop(conn: RelayConnection, reason: string, last?: Buffer, destroyNow?: boolean): void;
  /** Queues bytes for `conn`, written with everything else at the end of this turn. */
  send(conn: RelayConnection, data: Buffer): void;
}
