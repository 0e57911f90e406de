/**
 * SYNC for the relay: where a member's offsets stand against the log (checkSync: go on, or GAP),
 * and the replay itself (LogReplay), pulled one entry at a time so that the caller writes while
 * the socket takes it and waits for 'drain' when it does not. At most one page is held.
 */
import {
  READ_DEFAULT_LIMIT,
  READ_DEFAULT_MAX_BYTES,
  type LogBounds,
  type LogEntry,
  type RelayLog,
} from './types.js';

export type SyncCheck =
  | { ok: true }
  | {
      ok: false;
      /**
       * OtherStream: the member's offsets are from another log (lost, replaced): they mean nothing.
       * Expired: frames after afterOffset were dropped by retention (the member was away too long).
       * AheadOfLog: the member has seen offsets this log does not hold (the log lost its tail,
       * e.g. restored from a backup, or a power cut under synchronous=NORMAL).
       */
      reason: 'OtherStream' | 'Expired' | 'AheadOfLog';
      /** What the log can offer instead: SYNC again with this stream id from firstOffset - 1. */
      streamId: string;
      firstOffset: number;
      lastOffset: number;
    };

/**
 * Whether a member's SYNC {streamId, afterOffset} can be served as asked. Conservative: an
 * Expired range may have held nothing for this member, but the log no longer knows.
 */
export function checkSync(
  streamId: string,
  bounds: Pick<LogBounds, 'firstOffset' | 'lastOffset'>,
  request: { streamId: string; afterOffset: number },
): SyncCheck {
  const { firstOffset, lastOffset } = bounds;
  const gap = (reason: 'OtherStream' | 'Expired' | 'AheadOfLog'): SyncCheck => ({
    ok: false,
    reason,
    streamId,
    firstOffset,
    lastOffset,
  });
  if (request.streamId !== streamId) return gap('OtherStream');
  if (request.afterOffset > lastOffset) return gap('AheadOfLog');
  if (request.afterOffset < firstOffset - 1) return gap('Expired');
  return { ok: true };
}

export interface ReplayOptions {
  afterOffset: number;
  member: string;
  /** See LogReadRequest.ownBroadcasts (default false: what live forwarding would have sent). */
  ownBroadcasts?: boolean;
  /** Entries per read (default 256) and frame bytes per read (default 1 MiB): the memory held. */
  pageSize?: number;
  pageBytes?: number;
}

/**
 * A member's replay as an async iterator:
 *
 *   for await (const e of replay) if (!socket.write(frameOf(e))) await once(socket, 'drain');
 *
 * Going live without a hole or a duplicate: the iterator finishes on a read that found nothing;
 * then `caughtUp` is true and `position` is the log's last offset at that read. Mark the member live before yielding to
 * I/O (the writer commits from setImmediate, so no append lands in between), and forward a live
 * frame to it only if its offset is above `position`: anything at or below was replayed.
 */
export class LogReplay implements AsyncIterableIterator<LogEntry> {
  private page: LogEntry[] = [];
  private index = 0;
  private pageEnd: number;
  private after: number;
  private end = false;
  private stopped = false;

  constructor(
    private readonly log: RelayLog,
    private readonly options: ReplayOptions,
  ) {
    this.after = options.afterOffset;
    this.pageEnd = options.afterOffset;
  }

  /** Every entry up to this offset has been yielded, or was not for this member. */
  get position(): number {
    return this.after;
  }

  /** The last read found nothing more for this member: the iterator has finished. */
  get caughtUp(): boolean {
    return this.end && this.page.length === 0;
  }

  async next(): Promise<IteratorResult<LogEntry, undefined>> {
    for (;;) {
      if (this.stopped) return { done: true, value: undefined };
      const entry = this.page[this.index];
      if (entry !== undefined) {
        this.index++;
        // The page's own nextAfter once its last entry is out (it may reach past that entry).
        this.after = this.index === this.page.length ? this.pageEnd : entry.offset;
        return { done: false, value: entry };
      }
      this.after = this.pageEnd;
      // Finished only on a read that found nothing: the caller may have waited for 'drain' since
      // the previous read, and frames stored meanwhile are still this replay's to send.
      if (this.end && this.page.length === 0) return { done: true, value: undefined };
      const page = await this.log.read({
        afterOffset: this.after,
        member: this.options.member,
        ownBroadcasts: this.options.ownBroadcasts ?? false,
        limit: this.options.pageSize ?? READ_DEFAULT_LIMIT,
        maxBytes: this.options.pageBytes ?? READ_DEFAULT_MAX_BYTES,
      });
      this.page = page.entries;
      this.index = 0;
      this.pageEnd = page.nextAfter;
      this.end = page.end;
    }
  }

  /** Stops early (the member left): the page held is released. */
  async return(): Promise<IteratorResult<LogEntry, undefined>> {
    this.stopped = true;
    this.page = [];
    this.index = 0;
    return { done: true, value: undefined };
  }

  [Symbol.asyncIterator](): this {
    return this;
  }
}
