/**
 * The relay's log end to end with the real relay process (`securechat-x relay --data-dir`) and raw
 * members: every frame acknowledged with STORED survives a kill -9 in the middle of a burst (a
 * member SYNCing from 0 after the restart gets each one exactly once, in order); retention at
 * start by age (--retention-days) and by size (--retention-mb), seen as GAP retention; bad
 * retention flags.
 */
import { spawnSync } from 'node:child_process';
import { mkdtempSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterEach, beforeAll, describe, expect, it } from 'vitest';
import type { LocalIdentity } from '../../src-main/core/pki/local-identity.js';
import { sealMessage, type StoredAck } from '../../src-main/core/protocol/index.js';
import { SqliteRelayLog } from '../../src-main/relay/log/sqlite-log.js';
import { TEST_PASSWORD } from '../helpers/group.js';
import { chatBody, must, RawMember } from '../helpers/raw-member.js';
import { CLI, startRelay, type RelayProcess } from '../helpers/relay-process.js';
import { chatFrameOf, storeTestGroup, type StoreTestGroup } from '../helpers/store-relay.js';

let g: StoreTestGroup;
const id = (name: string): LocalIdentity => g.id(name);
const relays: RelayProcess[] = [];
const open: RawMember[] = [];

async function relayOn(dataDir: string, args: string[] = []): Promise<RelayProcess> {
  const relay = await startRelay(g.group.relayBundle, ['--data-dir', dataDir, ...args]);
  relays.push(relay);
  return relay;
}

async function joinAs(relay: RelayProcess, name: string): Promise<RawMember> {
  const m = await RawMember.join(id(name), { port: relay.port });
  open.push(m);
  return m;
}

beforeAll(() => {
  g = storeTestGroup(['alice', 'bob', 'carol']);
});

afterEach(async () => {
  for (const m of open.splice(0)) m.destroy();
  for (const relay of relays.splice(0)) await relay.stop('SIGKILL');
});

describe('relay log: kill -9 of the relay process', { timeout: 240_000 }, () => {
  it('every frame acknowledged with STORED before the kill is replayed after a restart, once each, in order', async () => {
    const dataDir = mkdtempSync(join(tmpdir(), 'scx-relay-kill9-'));
    const BURST = 20_000;
    const KILL_AFTER = 3_000;
    const first = await relayOn(dataDir, ['--rate-frames', '0', '--rate-bytes', '0']);
    const alice = await joinAs(first, 'alice');
    alice.sync('', 0);
    await alice.waitLive();
    const streamId = must(must(alice.hello).streamId, 'streamId');
    const sent: Buffer[] = [];
    // The relay forwards chat by header and never checks its signature (receivers do): a dummy one
    // keeps 20,000 RSA signatures out of the test's time.
    const fingerprint = id('alice').certificate.fingerprint;
    for (let seq = 1; seq <= BURST; seq++) {
      sent.push(
        sealMessage('ENCRYPTED_TEXT', { kind: 'fingerprint', fingerprint }, '', chatBody(seq, 300), () =>
          Buffer.alloc(256, seq & 0xff),
        ),
      );
    }
    // The burst goes out in writes of 500 frames; the relay reads and stores while we wait.
    for (let i = 0; i < BURST; i += 500) alice.sendRaw(Buffer.concat(sent.slice(i, i + 500).map(framed)));
    await alice.until(() => alice.storedAcks().length >= KILL_AFTER, 60_000, `${KILL_AFTER} acks`);
    first.child.kill('SIGKILL');
    await alice.waitClosed();
    expect(await first.stop()).toBeNull(); // killed by the signal
    // Acks read before the socket closed all came from the relay before it died: all count.
    const acks: StoredAck[] = alice.storedAcks();
    expect(acks.length).toBeGreaterThanOrEqual(KILL_AFTER);
    expect(acks.length).toBeLessThan(BURST); // it was killed mid-burst
    expect(acks.map((a) => a.n)).toEqual(Array.from({ length: acks.length }, (_, i) => i + 1));

    const second = await relayOn(dataDir);
    const carol = await joinAs(second, 'carol');
    expect(must(carol.hello).streamId).toBe(streamId);
    carol.sync(streamId, 0);
    const head = await carol.waitLive(60_000);
    const got = carol.delivered();
    expect(head).toBeGreaterThanOrEqual(must(acks.at(-1)).offset);
    // Offsets strictly increasing (in order, no duplicate) ...
    for (let i = 1; i < got.length; i++) expect(must(got[i]).offset).toBeGreaterThan(must(got[i - 1]).offset);
    // ... and every acknowledged frame is there at its offset, with its bytes, exactly once.
    const byOffset = new Map(got.map((f) => [f.offset, f.raw]));
    for (const a of acks) {
      const raw = byOffset.get(a.offset);
      if (!raw?.equals(must(sent[a.n - 1])))
        throw new Error(`ack n=${a.n} offset=${a.offset} is not in the replay`);
    }
    const index = new Map(sent.map((f, i) => [f.toString('base64'), i]));
    const seqs = got.map((f) => index.get(f.raw.toString('base64')) ?? -1);
    expect(seqs.every((s, i) => s === i)).toBe(true); // what was stored is a prefix of the burst, once each
    expect(got.length).toBeGreaterThanOrEqual(acks.length);
    console.log(
      `  (kill -9: ${acks.length} of ${BURST} frames acknowledged before the kill, ${got.length} stored)`,
    );
  });
});

function framed(payload: Buffer): Buffer {
  const out = Buffer.allocUnsafe(4 + payload.length);
  out.writeUInt32BE(payload.length, 0);
  payload.copy(out, 4);
  return out;
}

describe('relay log: retention', { timeout: 120_000 }, () => {
  /** A data dir whose log holds `old` frames stored 40 days ago, then `recent` stored now. */
  async function prefilled(old: number, recent: number): Promise<{ dataDir: string; streamId: string }> {
    const dataDir = mkdtempSync(join(tmpdir(), 'scx-relay-retention-'));
    const frame = chatFrameOf(id('bob'), chatBody(1, 700));
    let clock = Date.now() - 40 * 86_400_000;
    const log = SqliteRelayLog.open(dataDir, { now: () => clock });
    const batch = (n: number) =>
      Array.from({ length: n }, () => ({ audience: { kind: 'all' as const }, sender: 'bob', frame }));
    if (old > 0) await log.append(batch(old));
    clock = Date.now();
    if (recent > 0) await log.append(batch(recent));
    const streamId = log.streamId;
    await log.close();
    return { dataDir, streamId };
  }

  it('drops frames older than --retention-days at start; a SYNC from before them gets GAP retention', async () => {
    const { dataDir, streamId } = await prefilled(500, 300);
    const relay = await relayOn(dataDir, ['--retention-days', '30']);
    await relay.waitForLog((l) => l.event === 'retention', 'retention');
    expect(relay.logs().find((l) => l.event === 'retention')).toMatchObject({
      droppedFrames: 500,
      firstOffset: 501,
    });
    const carol = await joinAs(relay, 'carol');
    carol.sync(streamId, 10);
    expect((await carol.waitFor('GAP')).body).toMatchObject({
      reason: 'retention',
      firstOffset: 501,
      lastOffset: 800,
    });
    expect(await carol.waitLive()).toBe(800);
    expect(carol.delivered().map((f) => f.offset)).toEqual(Array.from({ length: 300 }, (_, i) => 501 + i));
  });

  it('keeps the log under --retention-mb at start, oldest first', async () => {
    const { dataDir, streamId } = await prefilled(0, 3000); // ~3 MiB of frames
    const relay = await relayOn(dataDir, ['--retention-mb', '1']);
    await relay.waitForLog((l) => l.event === 'retention', 'retention');
    const line = must(relay.logs().find((l) => l.event === 'retention'));
    expect(line.bytes as number).toBeLessThanOrEqual(1024 * 1024);
    const firstOffset = line.firstOffset as number;
    expect(firstOffset).toBeGreaterThan(1);
    const carol = await joinAs(relay, 'carol');
    carol.sync(streamId, 0);
    expect((await carol.waitFor('GAP')).body).toMatchObject({
      reason: 'retention',
      firstOffset,
      lastOffset: 3000,
    });
    await carol.waitLive();
    expect(carol.delivered().length).toBe(3000 - firstOffset + 1);
  });

  it('refuses bad retention values with a CLI error naming the flag (exit 2)', () => {
    for (const [flag, value] of [
      ['--retention-days', '0'],
      ['--retention-days', 'abc'],
      ['--retention-mb', '0'],
      ['--retention-mb', '1.5'],
      ['--retention-mb', '99999999999'],
    ] as const) {
      const r = spawnSync(process.execPath, [CLI, 'relay', '--bundle', g.group.relayBundle, flag, value], {
        env: { ...process.env, SECURECHAT_PASSWORD: TEST_PASSWORD },
        encoding: 'utf8',
        timeout: 30_000,
      });
      expect(r.status, `${flag} ${value}`).toBe(2);
      expect(r.stderr).toContain(flag);
      expect(r.stdout).toBe('');
    }
    const help = spawnSync(process.execPath, [CLI, 'relay', '--help'], { encoding: 'utf8' });
    expect(help.stdout).toMatch(/--retention-days\s+default 30/);
    expect(help.stdout).toMatch(/--retention-mb\s+default 1024/);
  });
});
