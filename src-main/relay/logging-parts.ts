/**
 * A relay with a store (DESIGN §10.3) gets three more parts: logged frames through the log and
 * then out (log-fanout.ts), SYNC sessions (sync-session.ts) and retention (log-retention.ts).
 * Built here so that the server only holds them.
 */
import type { Logger } from 'pino';
import type { ConnectionControl } from './control.js';
import type { RelayCounters } from './forwarding.js';
import { LogFanout } from './log-fanout.js';
import { RetentionKeeper } from './log-retention.js';
import type { RelayLog } from './log/types.js';
import { LogWriter } from './log/writer.js';
import type { RelayLimits } from './limits.js';
import type { LoggedFrames } from './member-frames.js';
import type { Membership } from './membership.js';
import type { Output } from './output.js';
import type { Refusals } from './refusals.js';
import type { RelayFrames } from './relay-frames.js';
import { SyncSessions } from './sync-session.js';

export type LoggingParts = LoggedFrames & { retention: RetentionKeeper };

export interface LoggingDeps {
  membership: Membership;
  output: Output;
  counters: RelayCounters;
  frames: RelayFrames;
  refusals: Refusals;
  limits: RelayLimits;
  log: Logger;
  control: ConnectionControl;
}

export function openLogging(store: RelayLog, d: LoggingDeps): LoggingParts {
  const fanout = new LogFanout(new LogWriter(store), d.membership, d.output, d.counters, d.log, d.control);
  const syncs = new SyncSessions(store, d.frames, d.refusals, d.output, d.control, d.log, d.limits);
  const retention = new RetentionKeeper(store, d.limits, d.log);
  fanout.onStored = () => retention.stored(fanout.takeStoredBytes());
  return { fanout, syncs, retention };
}
