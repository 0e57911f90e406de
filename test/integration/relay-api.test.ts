/**
 * The relay's programmatic faces: RelayServer in-process (members event, stats, fuzzed input from
 * an authenticated member) and child-entry.js as the desktop app forks it (messages, stop).
 */
import { fork } from 'node:child_process';
import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import { Writable } from 'node:stream';
import fc from 'fast-check';
import { pino } from 'pino';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import type { LocalIdentity } from '../../src-main/core/pki/local-identity.js';
import { encodeFrame, lengthPrefix, sealMessage } from '../../src-main/core/protocol/index.js';
import type { RelayChildMessage } from '../../src-main/relay/child-entry.js';
import { RelayServer, resolveLimits, TokenBucket } from '../../src-main/relay/index.js';
import type { PresenceMember } from '../../src-main/relay/relay-frames.js';
import { makeTestGroup, TEST_PASSWORD, type TestGroup } from '../helpers/group.js';
import { chatBody, loadIdentity, must, RawMember } from '../helpers/raw-member.js';

let group: TestGroup;
const ids: Record<string, LocalIdentity> = {};
const id = (name: string): LocalIdentity => must(ids[name], name);

beforeAll(() => {
  group = makeTestGroup(['alice', 'bob', 'mallory']);
  for (const n of ['alice', 'bob', 'mallory']) ids[n] = loadIdentity(must(group.bundles[n]), 'member');
  ids.relay = loadIdentity(group.relayBundle, 'relay');
});

describe('relay limits', () => {
  it('validates limit overrides', () => {
    expect(resolveLimits({}).maxFrameBytes).toBe(1024 * 1024);
    expect(() => resolveLimits({ maxConnections: 0 })).toThrow(/maxConnections/);
    expect(() => resolveLimits({ maxFrameBytes: 1.5 })).toThrow(/maxFrameBytes/);
    expect(() => resolveLimits({ maxPreAuthFrameBytes: 2_000_000 })).toThrow();
  });

  it('token bucket: goes into debt and reports the wait until it is back at zero', () => {
    let now = 0;
    const b = new TokenBucket(100, 10, () => now);
    expect(b.take(10)).toBe(0);
    expect(b.take(5)).toBe(50); // 5 tokens of debt at 100/s
    now = 50;
    expect(b.available).toBeCloseTo(0);
    now = 1000;
    expect(b.full).toBe(true);
    expect(new TokenBucket(0, 1).take(1e9)).toBe(0);
  });
});

describe('RelayServer in-process', { timeout: 120_000 }, () => {
  let relay: RelayServer;
  let port: number;
  const logLines: Record<string, unknown>[] = [];
  const events: { members: PresenceMember[]; version: number }[] = [];
  const open: RawMember[] = [];

  beforeAll(async () => {
    const sink = new Writable({
      write(chunk: Buffer, _enc, cb) {
        for (const line of chunk.toString().split('\n')) if (line) logLines.push(JSON.parse(line));
        cb();
      },
    });
    relay = new RelayServer({
      identity: id('relay'),
      roster: readFileSync(group.rosterPath),
      limits: { presenceIntervalMs: 0, maxProtocolErrors: 1000 },
      logger: pino({ level: 'debug' }, sink),
    });
    relay.on('members', (members, version) => events.push({ members, version }));
    ({ port } = await relay.listen({ host: '127.0.0.1', port: 0 }));
  });

  afterAll(async () => {
    for (const m of open) m.destroy();
    await relay?.close();
  });

  it('refuses a member identity as the relay identity', () => {
    expect(() => new RelayServer({ identity: id('alice') })).toThrow(/not a relay identity/);
  });

  it('emits members on every PRESENCE and counts forwarded frames', async () => {
    const alice = await RawMember.join(id('alice'), { port });
    const bob = await RawMember.join(id('bob'), { port });
    open.push(alice, bob);
    await alice.waitForPresence(['alice', 'bob']);
    const last = must(events.at(-1));
    expect(last.members.map((m) => m.name)).toEqual(['alice', 'bob']);
    expect(last.version).toBe(must(alice.latestPresence()).version);
    const before = relay.stats();
    const f = alice.seal('ENCRYPTED_TEXT', '', chatBody(1, 100));
    alice.sendPayload(f);
    await bob.until(() => bob.frames.some((x) => x.raw.equals(f)), 10_000, 'frame');
    const after = relay.stats();
    expect(after.members).toBe(2);
    expect(after.deliveries - before.deliveries).toBe(1);
    expect(after.bytesForwarded - before.bytesForwarded).toBe(f.length + 4);
    expect(relay.memberList().map((m) => m.name)).toEqual(['alice', 'bob']);
    // Joins and leaves are logged with names and fingerprints, never with message bodies.
    expect(logLines.some((l) => l.event === 'joined' && l.name === 'bob')).toBe(true);
    expect(JSON.stringify(logLines)).not.toContain(f.subarray(-64).toString('base64'));
  });

  it('fuzz: whatever an authenticated member sends, the others keep exchanging frames', async () => {
    const alice = must(open[0]);
    const bob = must(open[1]);
    const mallorySelf = id('mallory');
    // A valid mallory frame to mutate.
    const base = encodeFrame(
      sealMessage(
        'ENCRYPTED_TEXT',
        { kind: 'fingerprint', fingerprint: mallorySelf.certificate.fingerprint },
        '',
        chatBody(1, 64),
        (d) => mallorySelf.sign(d),
      ),
    );
    let seq = 100;
    await fc.assert(
      fc.asyncProperty(
        fc.oneof(
          fc.uint8Array({ minLength: 1, maxLength: 3000 }).map((b) => Buffer.from(b)),
          fc
            .array(fc.record({ at: fc.nat(), byte: fc.integer({ min: 0, max: 255 }) }), {
              minLength: 1,
              maxLength: 8,
            })
            .map((flips) => {
              const payload = Buffer.from(base.subarray(4));
              for (const { at, byte } of flips) payload[at % payload.length] = byte;
              return Buffer.concat([lengthPrefix(payload.length), payload]);
            }),
          fc.nat({ max: base.length - 1 }).map((cut) => base.subarray(0, cut)),
        ),
        async (bytes) => {
          const mallory = await RawMember.join(id('mallory'), { port });
          mallory.sendRaw(bytes);
          const f = alice.seal('ENCRYPTED_TEXT', '', chatBody(++seq, 64));
          alice.sendPayload(f);
          await bob.until(() => bob.frames.some((x) => x.raw.equals(f)), 10_000, 'frame after fuzz');
          mallory.destroy();
          await mallory.waitClosed();
        },
      ),
      { numRuns: 40 },
    );
    expect(logLines.filter((l) => l.event === 'internal-error')).toEqual([]);
    expect(alice.closed || bob.closed).toBe(false);
  });
});

describe('child-entry (the bundled relay of the desktop app)', { timeout: 60_000 }, () => {
  const entry = join(process.cwd(), 'out', 'node', 'src-main', 'relay', 'child-entry.js');

  it('reports listening and members, and stops on {type: "stop"}', async () => {
    const child = fork(
      entry,
      [JSON.stringify({ bundlePath: group.relayBundle, host: '127.0.0.1', port: 0 })],
      {
        env: { ...process.env, SECURECHAT_PASSWORD: TEST_PASSWORD },
        stdio: ['ignore', 'ignore', 'pipe', 'ipc'],
      },
    );
    const messages: RelayChildMessage[] = [];
    const exited = new Promise<number | null>((resolve) => child.on('exit', (code) => resolve(code)));
    const next = (type: RelayChildMessage['type']): Promise<RelayChildMessage> =>
      new Promise((resolve) => {
        const found = messages.find((m) => m.type === type);
        if (found) return resolve(found);
        const on = (m: RelayChildMessage): void => {
          if (m.type === type) {
            child.off('message', on);
            resolve(m);
          }
        };
        child.on('message', on);
      });
    child.on('message', (m: RelayChildMessage) => messages.push(m));
    const listening = await next('listening');
    if (listening.type !== 'listening') throw new Error('unreachable');
    const alice = await RawMember.join(id('alice'), { port: listening.port });
    const members = await next('members');
    expect(members).toMatchObject({ type: 'members', count: 1, members: [{ name: 'alice' }] });
    child.send({ type: 'stop' });
    expect((await alice.waitForError('ShuttingDown')).body.fatal).toBe(true);
    expect(await exited).toBe(0);
    expect(messages.some((m) => m.type === 'stopped')).toBe(true);
    alice.destroy();
  });

  it('reports a wrong password as an error message and exits non-zero', async () => {
    const child = fork(entry, [JSON.stringify({ bundlePath: group.relayBundle, port: 0 })], {
      env: { ...process.env, SECURECHAT_PASSWORD: 'wrong' },
      stdio: ['ignore', 'ignore', 'pipe', 'ipc'],
    });
    const message = await new Promise<RelayChildMessage>((resolve) => child.once('message', resolve));
    expect(message).toMatchObject({ type: 'error', message: expect.stringMatching(/WrongPassword/) });
    expect(await new Promise((resolve) => child.on('exit', resolve))).not.toBe(0);
  });
});
