/**
 * The relay's batching writer: frames appended during one event-loop turn (every socket read that
 * turn) go to the log as one append, i.e. one transaction, and each caller's promise resolves
 * with its own offset once the batch is durable. The relay can then send the turn's STORED acks
 * together. A batch is also cut early at maxBatchEntries or maxBatchBytes.
 *
 * Why setImmediate and not a microtask: a microtask runs right after the socket read that queued
 * the frame, so every read would be its own transaction; setImmediate runs after the poll phase,
 * when every read of this turn has been handled.
 */
import { RelayLogError } from './errors.js';
import { invalidLogEntry, type LogAppend, type RelayLog } from './types.js';

export interface LogWriterOptions {
  /** Commit as soon as this many entries are queued (default 1024). */
  maxBatchEntries?: number;
  /** Commit as soon as this many frame bytes are queued (default 4 MiB). */
  maxBatchBytes?: number;
}

interface Pending {
  entries: LogAppend[];
  resolvers: ((offset: number) => void)[];
  rejecters: ((err: unknown) => void)[];
  bytes: number;
}

function emptyBatch(): Pending {
  return { entries: [], resolvers: [], rejecters: [], bytes: 0 };
}

export class LogWriter {
  private readonly maxEntries: number;
  private readonly maxBytes: number;
  private batch = emptyBatch();
  private scheduled: NodeJS.Immediate | undefined;
  /** Appends handed to the log and not settled yet (a JetStream log has several in flight). */
  private readonly inFlight = new Set<Promise<void>>();
  private inFlightBytes = 0;
  private closing = false;

  constructor(
    readonly log: RelayLog,
    options: LogWriterOptions = {},
  ) {
    this.maxEntries = options.maxBatchEntries ?? 1024;
    this.maxBytes = options.maxBatchBytes ?? 4 * 1024 * 1024;
    if (!Number.isInteger(this.maxEntries) || this.maxEntries < 1) {
      throw new RangeError('maxBatchEntries must be a positive integer');
    }
    if (!Number.isInteger(this.maxBytes) || this.maxBytes < 1) {
      throw new RangeError('maxBatchBytes must be a positive integer');
    }
  }

  /**
   * Queues one entry; resolves with its offset once it is durable, rejects (RelayLogError) if its
   * batch failed, in which case nothing of it is acknowledged. Offsets follow call order.
   */
  append(entry: LogAppend): Promise<number> {
    if (this.closing) return Promise.reject(new RelayLogError('LogClosed', 'the log writer is closed'));
    // Checked here, so that one bad entry fails alone and not the whole turn's batch.
    const invalid = invalidLogEntry(entry);
    if (invalid !== undefined) return Promise.reject(new TypeError(`not a log entry: ${invalid}`));
    return new Promise<number>((resolve, reject) => {
      const b = this.batch;
      b.entries.push(entry);
      b.resolvers.push(resolve);
      b.rejecters.push(reject);
      b.bytes += entry.frame.length;
      if (b.entries.length >= this.maxEntries || b.bytes >= this.maxBytes) {
        this.commit();
      } else {
        this.scheduled ??= setImmediate(() => this.commit());
      }
    });
  }

  /** Entries queued or being stored: what the relay holds unacknowledged (for its own limits). */
  get pendingBytes(): number {
    return this.batch.bytes + this.inFlightBytes;
  }

  /** Commits what is queued now and waits for everything handed to the log so far to settle. */
  async flush(): Promise<void> {
    this.commit();
    await Promise.allSettled([...this.inFlight]);
  }

  /** Flushes, then refuses further appends (LogClosed). Does not close the log. */
  async close(): Promise<void> {
    this.closing = true;
    await this.flush();
  }

  private commit(): void {
    if (this.scheduled) {
      clearImmediate(this.scheduled);
      this.scheduled = undefined;
    }
    const b = this.batch;
    if (b.entries.length === 0) return;
    this.batch = emptyBatch();
    this.inFlightBytes += b.bytes;
    let appended: Promise<number[]>;
    try {
      appended = this.log.append(b.entries);
    } catch (err) {
      // An implementation that throws instead of rejecting still fails only this batch.
      appended = Promise.reject(err);
    }
    const settled = appended.then(
      (offsets) => {
        if (offsets.length !== b.entries.length) {
          const err = new RelayLogError(
            'LogIo',
            `the log returned ${offsets.length} offsets for ${b.entries.length} entries`,
          );
          for (const reject of b.rejecters) reject(err);
          return;
        }
        for (let i = 0; i < offsets.length; i++)
          (b.resolvers[i] as (o: number) => void)(offsets[i] as number);
      },
      (err: unknown) => {
        for (const reject of b.rejecters) reject(err);
      },
    );
    const tracked = settled.finally(() => {
      this.inFlightBytes -= b.bytes;
      this.inFlight.delete(tracked);
    });
    this.inFlight.add(tracked);
  }
}
