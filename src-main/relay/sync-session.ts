/**
 * SYNC (protocol v2, docs/protocol.md "SYNC / GAP"): a member asks for what the log holds for it
 * after an offset. The relay checks the request against the log (checkSync): a mismatch is a GAP
 * (relay-signed, bound to the session) and the replay starts from the log's first offset instead.
 * The replay runs under backpressure (LogReplay holds one page; the connection's queue is kept
 * under a high-water mark by waiting for the socket to drain), then LIVE {head} goes out and the
 * member is switched to live in the same microtask, before any I/O can store another frame: from
 * then on log-fanout.ts delivers a logged frame to it only if its offset is above the replay's
 * position, so nothing is missed and nothing comes twice.
 *
 * Frames that are not logged (PRESENCE, NONCE_REQUEST, HEARTBEAT, ...) keep flowing to the member
 * during its replay as usual. A member that leaves stops its replay (checked after every entry
 * and after every wait).
 */
import type { Logger } from 'pino';
import { encodeLive, lengthPrefix, type BodyOf } from '../core/protocol/index.js';
import type { RelayConnection } from './connection.js';
import type { ConnectionControl } from './control.js';
import { RelayRefusal } from './errors.js';
import { deliveredChunk } from './log-fanout.js';
import { checkSync, LogReplay, type SyncCheck } from './log/replay.js';
import type { RelayLog } from './log/types.js';
import type { RelayLimits } from './limits.js';
import { logStateOf, type MemberSync } from './member-log-state.js';
import type { Output } from './output.js';
import type { Refusals } from './refusals.js';
import type { RelayFrames } from './relay-frames.js';

/** Entries and frame bytes per log read: what one replay holds at most (plus one large entry). */
export const REPLAY_PAGE_ENTRIES = 256;
export const REPLAY_PAGE_BYTES = 256 * 1024;
/** A replay waits for the socket once this much is queued for its member (or a quarter of maxOutboundBytes). */
export const REPLAY_HIGH_WATER_BYTES = 512 * 1024;

const GAP_REASONS: Record<Exclude<SyncCheck, { ok: true }>['reason'], BodyOf<'GAP'>['reason']> = {
  OtherStream: 'lost-log',
  Expired: 'retention',
  AheadOfLog: 'ahead',
};

export interface SyncCounters {
  /** Replays running now. */
  replaysActive: number;
  /** Of those, waiting for their member's socket to drain. */
  replaysWaiting: number;
  /** Frames sent by replays so far. */
  framesReplayed: number;
  /** GAPs sent so far. */
  gaps: number;
}

export class SyncSessions {
  readonly stats: SyncCounters = { replaysActive: 0, replaysWaiting: 0, framesReplayed: 0, gaps: 0 };
  /**
   * On a cluster node: the offset up to which its follower has sent live frames. A replay goes
   * live only once it has read that far (same microtask as the check, as below).
   */
  liveFloor: (() => number) | undefined;
  private readonly highWater: number;

  constructor(
    private readonly store: RelayLog,
    private readonly frames: RelayFrames,
    private readonly refusals: Refusals,
    private readonly output: Output,
    private readonly control: ConnectionControl,
    private readonly log: Logger,
    limits: RelayLimits,
  ) {
    // Below the SlowConsumer cut (maxOutboundBytes) with room for the live traffic on top.
    this.highWater = Math.min(REPLAY_HIGH_WATER_BYTES, Math.floor(limits.maxOutboundBytes / 4));
  }

  /**
   * A SYNC whose signature and body the caller has checked. At most one per session: a second one
   * is refused (NotAllowed, not fatal), whatever state the first one is in.
   */
  start(conn: RelayConnection, body: BodyOf<'SYNC'>): void {
    const state = logStateOf(conn);
    if (state.sync !== undefined) throw new RelayRefusal('NotAllowed', 'SYNC at most once per session');
    const sync: MemberSync = { mode: 'replaying', position: 0 };
    state.sync = sync;
    this.run(conn, body, sync).catch((err: unknown) =>
      this.control.guard(conn, () => {
        // The member cannot be served its log: it is closed (no ERROR code says "try later" without
        // being taken as final), so that it reconnects and SYNCs again.
        this.log.error(
          {
            event: 'replay-failed',
            conn: conn.id,
            name: conn.name,
            code: (err as { code?: unknown } | undefined)?.code,
            err: err instanceof Error ? err.message : String(err),
          },
          'replaying the log failed',
        );
        this.control.drop(conn, 'replay-failed');
      }),
    );
  }

  private async run(conn: RelayConnection, body: BodyOf<'SYNC'>, sync: MemberSync): Promise<void> {
    const member = conn.name;
    if (member === undefined) throw new Error('SYNC from a connection without a name');
    let after = body.afterOffset;
    if (body.streamId === '') {
      // The member holds nothing of any log (a newcomer, a lost store): it starts at the first frame
      // addressed to it, its first key distribution, since nothing before was sealed for it; with
      // none, at the head (its key comes live). No GAP: nothing it could read is missing.
      const first = await this.store.firstOffsetFor(member);
      after = first !== undefined ? first - 1 : (await this.store.bounds()).lastOffset;
    } else {
      const check = checkSync(this.store.streamId, await this.store.bounds(), body);
      if (!check.ok) {
        const gap = await this.frames.gap(this.refusals.sessionOf(conn), {
          streamId: check.streamId,
          reason: GAP_REASONS[check.reason],
          firstOffset: check.firstOffset,
          lastOffset: check.lastOffset,
        });
        if (!conn.open) return;
        this.stats.gaps++;
        this.log.info(
          {
            event: 'gap',
            conn: conn.id,
            name: member,
            reason: check.reason,
            asked: body.afterOffset,
            firstOffset: check.firstOffset,
            lastOffset: check.lastOffset,
          },
          'SYNC cannot be served as asked: GAP, replaying what the log holds',
        );
        this.control.send(conn, gap);
        after = check.firstOffset - 1;
      }
    }
    sync.position = after;
    const replayFrom = (afterOffset: number): LogReplay =>
      new LogReplay(this.store, {
        afterOffset,
        member,
        ownBroadcasts: body.ownBroadcasts ?? false,
        pageSize: REPLAY_PAGE_ENTRIES,
        pageBytes: REPLAY_PAGE_BYTES,
      });
    let replay = replayFrom(after);
    let sent = 0;
    this.stats.replaysActive++;
    try {
      for (;;) {
        for await (const entry of replay) {
          if (!conn.open) break;
          this.output.send(conn, deliveredChunk(entry.offset, entry.frame.length));
          this.output.send(conn, entry.frame);
          sent++;
          this.stats.framesReplayed++;
          if (conn.queuedBytes > this.highWater) {
            await this.writable(conn);
            if (!conn.open) break;
          }
        }
        // A cluster node's follower may have sent past this replay's last read while the member
        // was replaying (it skips replaying members): read on to there before going live.
        if (!conn.open || (this.liveFloor?.() ?? 0) <= replay.position) break;
        replay = replayFrom(replay.position);
      }
    } finally {
      this.stats.replaysActive--;
    }
    if (!conn.open) {
      this.log.info({ event: 'replay-stopped', conn: conn.id, name: member, sent }, 'member left mid-replay');
      return;
    }
    // Same microtask as the replay's last read (and the floor check): no append can land in between
    // (the writer commits from setImmediate; a follower delivers after its own awaits), so the
    // hand-off has no hole and no duplicate.
    sync.mode = 'live';
    sync.position = replay.position;
    const live = encodeLive(replay.position);
    this.output.send(conn, lengthPrefix(live.length));
    this.output.send(conn, live);
    this.log.info(
      { event: 'live', conn: conn.id, name: member, from: after, head: replay.position, sent },
      'replay done, member is live',
    );
  }

  /**
   * Resolves once the member's queue is back under half the high-water mark, or the connection is
   * no longer open. Output writes a turn's queue after the poll phase, so the first wait is a turn.
   */
  private async writable(conn: RelayConnection): Promise<void> {
    this.stats.replaysWaiting++;
    try {
      const low = this.highWater / 2;
      do {
        if (conn.socket.writableNeedDrain) await drainOrClose(conn);
        else await new Promise<void>((resolve) => setImmediate(resolve));
      } while (conn.open && conn.queuedBytes > low);
    } finally {
      this.stats.replaysWaiting--;
    }
  }
}

function drainOrClose(conn: RelayConnection): Promise<void> {
  const socket = conn.socket;
  if (socket.destroyed || !conn.open) return Promise.resolve();
  return new Promise<void>((resolve) => {
    const done = (): void => {
      socket.off('drain', done);
      socket.off('close', done);
      resolve();
    };
    socket.on('drain', done);
    socket.on('close', done);
  });
}
