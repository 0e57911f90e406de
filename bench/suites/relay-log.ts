/**
 * The relay's embedded store-and-forward log (src-main/relay/log), in this process, on a temporary
 * folder of the local disk:
 *
 * - appends/s of 1 KB frames through the LogWriter, with 1, 64 and 512 frames per event-loop turn
 *   (one transaction each), under synchronous=NORMAL (the default) and FULL (an fsync per commit);
 * - per-member replay rows/s (LogReplay, pages of 256) over 10,000 stored frames, when most
 *   frames are broadcasts (group chat) and when most are addressed to other members;
 * - retention: frames dropped per second, and bytes on disk per stored 1 KB frame.
 */
import { randomBytes } from 'node:crypto';
import { mkdtempSync, rmSync, statSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import {
  LogReplay,
  LogWriter,
  RELAY_LOG_FILE,
  SqliteRelayLog,
  type LogAppend,
  type Synchronous,
} from '../../src-main/relay/log/index.js';
import type { BenchResult, BenchSuite } from '../harness.js';

const FRAME_BYTES = 1024;
const APPEND_MS = 1500;
const REPLAY_FRAMES = 10_000;
const MEMBERS = 10;
const nextTurn = () => new Promise<void>((resolve) => setImmediate(resolve));

function withLog<T>(
  synchronous: Synchronous,
  work: (log: SqliteRelayLog, dir: string) => Promise<T>,
): Promise<T> {
  const dir = mkdtempSync(join(tmpdir(), 'scx-bench-relay-log-'));
  const log = SqliteRelayLog.open(dir, { synchronous });
  return work(log, dir).finally(async () => {
    await log.close();
    rmSync(dir, { recursive: true, force: true });
  });
}

/** A 1 KB frame for everyone, or, with probability `targeted`, for one of MEMBERS members. */
function frameFor(i: number, targeted: number, payload: Buffer): LogAppend {
  const audience =
    (i * 7919) % 100 < targeted * 100
      ? { kind: 'member' as const, name: `m${i % MEMBERS}` }
      : { kind: 'all' as const };
  return { audience, sender: `m${(i * 31) % MEMBERS}`, frame: payload };
}

/** Frames/s appended through the writer, `perTurn` appends per event-loop turn. */
async function appendRate(synchronous: Synchronous, perTurn: number): Promise<number> {
  return withLog(synchronous, async (log) => {
    const writer = new LogWriter(log);
    const payload = randomBytes(FRAME_BYTES);
    let frames = 0;
    const start = performance.now();
    let now = start;
    while (now - start < APPEND_MS) {
      const acks: Promise<number>[] = [];
      for (let i = 0; i < perTurn; i++) acks.push(writer.append(frameFor(frames + i, 0.1, payload)));
      await Promise.all(acks);
      frames += perTurn;
      now = performance.now();
    }
    return (frames * 1000) / (now - start);
  });
}

/** Rows/s one member's replay yields over REPLAY_FRAMES stored frames (best of 3 passes). */
async function replayRate(targeted: number): Promise<{ rowsPerSec: number; bytesPerFrame: number }> {
  return withLog('normal', async (log, dir) => {
    const writer = new LogWriter(log);
    const payload = randomBytes(FRAME_BYTES);
    for (let i = 0; i < REPLAY_FRAMES; i += 500) {
      await Promise.all(
        Array.from({ length: 500 }, (_, j) => writer.append(frameFor(i + j, targeted, payload))),
      );
      await nextTurn();
    }
    let best = 0;
    for (let pass = 0; pass < 3; pass++) {
      const replay = new LogReplay(log, { afterOffset: 0, member: 'm3' });
      let rows = 0;
      const start = performance.now();
      for await (const e of replay) rows += e.frame.length > 0 ? 1 : 0;
      best = Math.max(best, (rows * 1000) / (performance.now() - start));
    }
    const path = join(dir, RELAY_LOG_FILE);
    const onDisk = statSync(path).size + (statSync(`${path}-wal`, { throwIfNoEntry: false })?.size ?? 0);
    return { rowsPerSec: best, bytesPerFrame: onDisk / REPLAY_FRAMES };
  });
}

async function retentionRate(): Promise<number> {
  return withLog('normal', async (log) => {
    const writer = new LogWriter(log);
    const payload = randomBytes(FRAME_BYTES);
    const frames = 50_000;
    for (let i = 0; i < frames; i += 1000) {
      await Promise.all(Array.from({ length: 1000 }, (_, j) => writer.append(frameFor(i + j, 0.1, payload))));
    }
    const start = performance.now();
    const result = await log.enforceRetention({
      maxAgeMs: 1e12,
      maxBytes: 0,
      now: Date.now(),
      maxFrames: frames,
    });
    return (result.droppedFrames * 1000) / (performance.now() - start);
  });
}

export const relayLogSuite: BenchSuite = {
  name: 'relay-log',
  description: 'embedded SQLite store-and-forward log: appends, per-member replay, retention (1 KB frames)',
  async run(): Promise<BenchResult[]> {
    const results: BenchResult[] = [];
    for (const synchronous of ['normal', 'full'] as const) {
      for (const perTurn of [1, 64, 512]) {
        results.push({
          name: `relay_log.append_${synchronous}_${perTurn}_per_turn`,
          value: Math.round(await appendRate(synchronous, perTurn)),
          unit: 'frames/s',
        });
      }
    }
    const broadcasts = await replayRate(0.1);
    const targeted = await replayRate(0.9);
    results.push(
      {
        name: 'relay_log.replay_10k_mostly_broadcast',
        value: Math.round(broadcasts.rowsPerSec),
        unit: 'rows/s',
      },
      {
        name: 'relay_log.replay_10k_mostly_targeted',
        value: Math.round(targeted.rowsPerSec),
        unit: 'rows/s',
      },
      { name: 'relay_log.disk_bytes_per_1k_frame', value: Math.round(broadcasts.bytesPerFrame), unit: 'B' },
      { name: 'relay_log.retention_drop', value: Math.round(await retentionRate()), unit: 'frames/s' },
    );
    return results;
  },
};
