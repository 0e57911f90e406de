/**
 * DESIGN.md §10.3: no frame acknowledged with STORED is lost to a kill -9 of the relay. A child
 * process (test/fixtures/relay-log-appender.mjs, the built module from out/node) appends batches
 * through a LogWriter and prints each offset once its append resolved; the test SIGKILLs it in the
 * middle of that, several times on the same data directory, then reopens the log and checks that
 * every printed offset is there with the same audience, sender and bytes.
 */
import { spawn } from 'node:child_process';
import { createHash } from 'node:crypto';
import { mkdtempSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join, resolve } from 'node:path';
import { createInterface } from 'node:readline';
import Database from 'better-sqlite3-multiple-ciphers';
import { describe, expect, it } from 'vitest';
import { RELAY_LOG_FILE, SqliteRelayLog, type Synchronous } from '../../src-main/relay/log/index.js';

const FIXTURE = resolve(import.meta.dirname, '../fixtures/relay-log-appender.mjs');
/** Built by test/global-setup.ts. */
const BUILT_LOG = resolve(import.meta.dirname, '../../out/node/src-main/relay/log/index.js');

interface Acked {
  offset: number;
  audience: string;
  sender: string;
  sha256: string;
}

interface Run {
  streamId: string;
  acked: Acked[];
  signal: NodeJS.Signals | null;
}

/** Runs the appender until it has acknowledged `killAfter` frames, then SIGKILLs it. */
function appendUntilKilled(dataDir: string, synchronous: Synchronous, killAfter: number): Promise<Run> {
  return new Promise((resolvePromise, reject) => {
    const child = spawn(process.execPath, [FIXTURE, BUILT_LOG, dataDir, synchronous], {
      stdio: ['ignore', 'pipe', 'pipe'],
    });
    const acked: Acked[] = [];
    let streamId = '';
    let stderr = '';
    child.stderr.on('data', (d: Buffer) => (stderr += d.toString()));
    const lines = createInterface({ input: child.stdout });
    lines.on('line', (line) => {
      const [kind, ...rest] = line.split(' ');
      if (kind === 'ready') streamId = rest[0] ?? '';
      if (kind === 'acked') {
        const [offset, audience, sender, sha256] = rest as [string, string, string, string];
        acked.push({ offset: Number(offset), audience, sender, sha256 });
        if (acked.length === killAfter) child.kill('SIGKILL');
      }
    });
    child.on('error', reject);
    // 'close' comes after stdout has ended: every line the child wrote has been read.
    child.on('close', (code, signal) => {
      if (signal !== 'SIGKILL') {
        reject(new Error(`the appender exited on its own (code ${code}): ${stderr}`));
        return;
      }
      resolvePromise({ streamId, acked, signal });
    });
  });
}

describe('relay log durability', () => {
  it('every offset acknowledged before a kill -9 is in the log with its bytes, across several kills', async () => {
    const dataDir = mkdtempSync(join(tmpdir(), 'scx-relay-log-kill-'));
    const runs: Run[] = [];
    // Kill points that do not line up with the writer's 64-entry batches.
    for (const [synchronous, killAfter] of [
      ['normal', 1777],
      ['normal', 3001],
      ['full', 901],
    ] as const) {
      runs.push(await appendUntilKilled(dataDir, synchronous, killAfter));
    }
    const acked = runs.flatMap((r) => r.acked);
    expect(new Set(runs.map((r) => r.streamId)).size).toBe(1);
    expect(new Set(acked.map((a) => a.offset)).size).toBe(acked.length);

    const log = SqliteRelayLog.open(dataDir);
    expect(log.streamId).toBe(runs[0]?.streamId);
    const bounds = await log.bounds();
    expect(bounds.firstOffset).toBe(1);
    expect(bounds.lastOffset).toBeGreaterThanOrEqual(Math.max(...acked.map((a) => a.offset)));
    const stored = new Map<number, Acked>();
    for (const member of ['alice', 'bob', 'carol']) {
      let after = 0;
      for (;;) {
        const page = await log.read({
          afterOffset: after,
          member,
          ownBroadcasts: true,
          limit: 5000,
          maxBytes: 1e9,
        });
        for (const e of page.entries) {
          stored.set(e.offset, {
            offset: e.offset,
            audience: e.audience.kind === 'all' ? '*' : e.audience.name,
            sender: e.sender,
            sha256: createHash('sha256').update(e.frame).digest('hex'),
          });
        }
        after = page.nextAfter;
        if (page.end) break;
      }
    }
    const missing = acked.filter((a) => stored.get(a.offset) === undefined);
    expect(missing).toEqual([]);
    for (const a of acked) expect(stored.get(a.offset)).toEqual(a);
    // Offsets stay contiguous: whatever was committed but not yet printed is there too, no holes.
    expect(stored.size).toBe(bounds.lastOffset);
    await log.close();

    const db = new Database(join(dataDir, RELAY_LOG_FILE), { readonly: true });
    expect(db.pragma('integrity_check', { simple: true })).toBe('ok');
    db.close();
  });
});
