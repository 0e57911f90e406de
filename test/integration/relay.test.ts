/**
 * The relay as a real child process over TCP on 127.0.0.1: login, PRESENCE, CERT_REQUEST,
 * routing of every member message type, replacement of a duplicate login, shutdown.
 */
import { spawn, spawnSync } from 'node:child_process';
import { writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { makeTestGroup, TEST_PASSWORD, type TestGroup } from '../helpers/group.js';
import { chatBody, loadIdentity, must, RawMember } from '../helpers/raw-member.js';
import { CLI, startRelay, type RelayProcess } from '../helpers/relay-process.js';
import type { LocalIdentity } from '../../src-main/core/pki/local-identity.js';
import type { BodyOf } from '../../src-main/core/protocol/index.js';

let group: TestGroup;
let relay: RelayProcess;
const ids: Record<string, LocalIdentity> = {};
const id = (name: string): LocalIdentity => must(ids[name], name);
const open: RawMember[] = [];

async function joinAs(name: string): Promise<RawMember> {
  const m = await RawMember.join(id(name), { port: relay.port });
  open.push(m);
  return m;
}

function leaveAll(): void {
  for (const m of open.splice(0)) m.destroy();
}

beforeAll(async () => {
  group = makeTestGroup(['alice', 'bob', 'carol', 'dave']);
  for (const n of ['alice', 'bob', 'carol', 'dave']) ids[n] = loadIdentity(must(group.bundles[n]), 'member');
  relay = await startRelay(group.relayBundle, ['--log-level', 'debug']);
});

afterAll(async () => {
  leaveAll();
  await relay?.stop();
});

describe('relay: sessions', { timeout: 120_000 }, () => {
  it('prints exactly one listening line on stdout and logs JSON on stderr', async () => {
    expect(relay.stdout()).toBe(`listening on 127.0.0.1:${relay.port}\n`);
    // Logged before the stdout line, but stderr is another pipe: it may not have been read yet.
    await relay.waitForLog((l) => l.event === 'listening', 'listening');
  });

  it('sends a HELLO signed by a relay certificate of the group, with a fresh challenge', async () => {
    const a = await RawMember.open(id('alice'), { port: relay.port });
    const b = await RawMember.open(id('alice'), { port: relay.port });
    open.push(a, b);
    await a.until(() => a.hello, 10_000, 'HELLO');
    await b.until(() => b.hello, 10_000, 'HELLO');
    expect(must(a.relayCert).name).toBe('relay');
    expect(must(a.hello).relay).toBe('relay');
    expect(must(a.hello).maxFrameBytes).toBe(1024 * 1024);
    expect(must(a.hello).challenge.equals(must(b.hello).challenge)).toBe(false);
    leaveAll();
  });

  it('announces joins and leaves with signed PRESENCE of growing version', async () => {
    const alice = await joinAs('alice');
    const p1 = await alice.waitForPresence(['alice']);
    const bob = await joinAs('bob');
    const p2 = await alice.waitForPresence(['alice', 'bob']);
    const pb = await bob.waitForPresence(['alice', 'bob']);
    expect(p2.body.version).toBeGreaterThan(p1.body.version);
    expect(pb.body.version).toBe(p2.body.version);
    expect(p2.body.members).toEqual(
      [
        { name: 'alice', fingerprint: id('alice').certificate.fingerprintHex },
        { name: 'bob', fingerprint: id('bob').certificate.fingerprintHex },
      ].sort((x, y) => x.name.localeCompare(y.name)),
    );
    // Graceful leave: DISCONNECT is forwarded to the others, then PRESENCE without bob.
    const disconnect = bob.seal('DISCONNECT', '', { reason: 'bye' });
    bob.sendPayload(disconnect);
    const fwd = await alice.waitFor('DISCONNECT');
    expect(fwd.raw.equals(disconnect)).toBe(true);
    const p3 = await alice.waitForPresence(['alice']);
    expect(p3.body.version).toBeGreaterThan(p2.body.version);
    await bob.waitClosed();
    leaveAll();
  });

  it('answers CERT_REQUEST with the certificates of connected members and lists the rest as unknown', async () => {
    const alice = await joinAs('alice');
    await joinAs('bob');
    await alice.waitForPresence(['alice', 'bob']);
    alice.sendPayload(alice.seal('CERT_REQUEST', '', { names: ['bob', 'zed', 'relay'] }));
    const res = await alice.waitFor('CERT_RESPONSE');
    const body = res.body;
    expect(body.unknown).toEqual(['zed']);
    const bob = must(body.certificates.find((c) => c.name === 'bob'));
    expect(bob.certificate.equals(id('bob').certificate.der)).toBe(true);
    expect(
      must(body.certificates.find((c) => c.name === 'relay')).certificate.equals(must(alice.relayCert).der),
    ).toBe(true);
    leaveAll();
  });
});

describe('relay: routing', { timeout: 120_000 }, () => {
  let alice: RawMember, bob: RawMember, carol: RawMember;

  beforeAll(async () => {
    leaveAll();
    alice = await joinAs('alice');
    bob = await joinAs('bob');
    carol = await joinAs('carol');
    for (const m of [alice, bob, carol]) await m.waitForPresence(['alice', 'bob', 'carol']);
  });

  it('forwards ENCRYPTED_TEXT byte-identical to every other member, not back to the sender', async () => {
    const frames = [1, 2, 3].map((seq) => alice.seal('ENCRYPTED_TEXT', '', chatBody(seq, 1000)));
    for (const f of frames) alice.sendPayload(f);
    for (const m of [bob, carol]) {
      await m.until(() => m.ofType('ENCRYPTED_TEXT').length >= 3, 10_000, 'chat');
      expect(m.ofType('ENCRYPTED_TEXT').map((f) => f.raw)).toEqual(frames);
    }
    // A marker that certainly arrives after anything the relay might have echoed back.
    bob.sendPayload(bob.seal('ENCRYPTED_TEXT', '', chatBody(1)));
    await alice.until(() => alice.ofType('ENCRYPTED_TEXT').length >= 1, 10_000, 'marker');
    expect(alice.ofType('ENCRYPTED_TEXT')).toHaveLength(1);
    expect(must(alice.ofType('ENCRYPTED_TEXT')[0]).header.sender).toMatchObject({ kind: 'fingerprint' });
  });

  it('delivers each targeted type only to its target, byte-identical', async () => {
    const before = { carol: carol.frames.length };
    const bodies: {
      [K in 'NONCE_REQUEST' | 'NONCE_RESPONSE' | 'KEY_DISTRIBUTION' | 'REKEY_REQUEST']: BodyOf<K>;
    } = {
      NONCE_REQUEST: {
        epoch: 2,
        membershipVersion: 3,
        rosterVersion: 0,
        members: ['alice', 'bob', 'carol'],
        challenge: Buffer.alloc(256, 1),
      },
      NONCE_RESPONSE: { epoch: 2, sealed: Buffer.alloc(256, 2) },
      KEY_DISTRIBUTION: {
        epoch: 2,
        wrappedKey: Buffer.alloc(256, 3),
        iv: Buffer.alloc(12, 4),
        ciphertext: Buffer.alloc(200, 5),
      },
      REKEY_REQUEST: { minEpoch: 3, reason: 'requested' },
    };
    const sent: Buffer[] = [];
    for (const [type, body] of Object.entries(bodies)) {
      const f = alice.seal(type as 'REKEY_REQUEST', 'bob', body as BodyOf<'REKEY_REQUEST'>);
      sent.push(f);
      alice.sendPayload(f);
    }
    await bob.until(
      () => sent.every((s) => bob.frames.some((f) => f.raw.equals(s))),
      10_000,
      'targeted frames',
    );
    // Carol saw none of them; alice got no ERROR. The relay handles a connection's frames in order
    // and writes each socket in order: once carol has alice's marker, anything of alice's routed to
    // carol before it has arrived too; once alice has carol's (sent after bob had everything), any
    // ERROR the relay answered alice's frames with has arrived.
    const aliceMarker = alice.seal('ENCRYPTED_TEXT', '', chatBody(8));
    alice.sendPayload(aliceMarker);
    await carol.until(() => carol.frames.some((f) => f.raw.equals(aliceMarker)), 10_000, 'alice marker');
    const marker = carol.seal('ENCRYPTED_TEXT', '', chatBody(9));
    carol.sendPayload(marker);
    await alice.until(() => alice.frames.some((f) => f.raw.equals(marker)), 10_000, 'marker');
    await bob.until(() => bob.frames.some((f) => f.raw.equals(marker)), 10_000, 'marker at bob');
    expect(carol.frames.slice(before.carol).filter((f) => sent.some((s) => s.equals(f.raw)))).toEqual([]);
    expect(alice.errors()).toEqual([]);
  });

  it('refuses a targeted frame for a member who is not connected with UnknownTarget, and goes on', async () => {
    alice.sendPayload(alice.seal('REKEY_REQUEST', 'dave', { minEpoch: 1, reason: 'requested' }));
    const err = await alice.waitForError('UnknownTarget');
    expect(err.body.fatal).toBe(false);
    alice.sendPayload(alice.seal('REKEY_REQUEST', 'alice', { minEpoch: 1, reason: 'requested' }));
    await alice.until(
      () => alice.errors().filter((e) => e.code === 'UnknownTarget').length >= 2,
      10_000,
      '2nd error',
    );
    const f = alice.seal('REKEY_REQUEST', 'carol', { minEpoch: 1, reason: 'requested' });
    alice.sendPayload(f);
    await carol.until(() => carol.frames.some((x) => x.raw.equals(f)), 10_000, 'routed after error');
  });

  it('refuses relay-only types from a member with NotAllowed', async () => {
    const fake = bob.seal('PRESENCE', '', { sessions: [Buffer.alloc(16)], version: 99, members: [] });
    bob.sendPayload(fake);
    const err = await bob.waitForError('NotAllowed');
    expect(err.body.fatal).toBe(false);
    // A marker from bob after it: had the fake been forwarded, alice would have it by then.
    const marker = bob.seal('ENCRYPTED_TEXT', '', chatBody(10));
    bob.sendPayload(marker);
    await alice.until(() => alice.frames.some((f) => f.raw.equals(marker)), 10_000, 'marker');
    expect(alice.frames.some((f) => f.raw.equals(fake))).toBe(false);
  });
});

describe('relay: duplicate login', { timeout: 120_000 }, () => {
  it('replaces the old connection, which gets ERROR Replaced, and announces a new PRESENCE', async () => {
    leaveAll();
    const alice = await joinAs('alice');
    const dave1 = await joinAs('dave');
    const p1 = await alice.waitForPresence(['alice', 'dave']);
    const dave2 = await joinAs('dave');
    const replaced = await dave1.waitForError('Replaced');
    expect(replaced.body.fatal).toBe(true);
    await dave1.waitClosed();
    const p2 = await alice.waitFor('PRESENCE', (f) => f.body.version > p1.body.version);
    expect(p2.body.members.map((m) => m.name)).toEqual(['alice', 'dave']);
    // The new connection is the live one.
    const f = alice.seal('REKEY_REQUEST', 'dave', { minEpoch: 1, reason: 'requested' });
    alice.sendPayload(f);
    await dave2.until(() => dave2.frames.some((x) => x.raw.equals(f)), 10_000, 'frame on the new connection');
    leaveAll();
  });
});

describe('relay: shutdown', { timeout: 120_000 }, () => {
  it('tells members ShuttingDown on SIGTERM and exits 0', async () => {
    leaveAll();
    const alice = await joinAs('alice');
    const bob = await joinAs('bob');
    await alice.waitForPresence(['alice', 'bob']);
    const code = await relay.stop('SIGTERM');
    expect(code).toBe(0);
    for (const m of [alice, bob]) {
      const err = await m.waitForError('ShuttingDown');
      expect(err.body.fatal).toBe(true);
      await m.waitClosed();
    }
    expect(relay.stdout()).toBe(`listening on 127.0.0.1:${relay.port}\n`);
    expect(relay.logs().some((l) => l.event === 'shutdown')).toBe(true);
  });
});

describe('relay: command line', { timeout: 60_000 }, () => {
  const run = (args: string[], env: Record<string, string> = { SECURECHAT_PASSWORD: TEST_PASSWORD }) =>
    spawnSync(process.execPath, [CLI, 'relay', ...args], {
      env: { ...process.env, SECURECHAT_PASSWORD: '', ...env },
      encoding: 'utf8',
      timeout: 30_000,
    });

  it('prints usage with --help and exits 0', () => {
    const r = run(['--help']);
    expect(r.status).toBe(0);
    expect(r.stdout).toMatch(/--max-connections/);
  });

  it('refuses a missing --bundle, a bad flag value and an unknown flag with exit 2', () => {
    expect(run([]).status).toBe(2);
    const bad = run(['--bundle', group.relayBundle, '--rate-frames', 'lots']);
    expect(bad.status).toBe(2);
    expect(bad.stderr).toMatch(/--rate-frames/);
    expect(run(['--bundle', group.relayBundle, '--no-such-flag']).status).toBe(2);
  });

  it('refuses a member bundle and a wrong password with exit 1, a missing password with exit 2', () => {
    const member = run(['--bundle', must(group.bundles.alice), '--port', '0']);
    expect(member.status).toBe(1);
    expect(member.stderr).toMatch(/WrongRole/);
    expect(member.stdout).toBe('');
    const wrong = run(['--bundle', group.relayBundle, '--port', '0'], { SECURECHAT_PASSWORD: 'nope' });
    expect(wrong.status).toBe(1);
    expect(wrong.stderr).toMatch(/WrongPassword/);
    const none = run(['--bundle', group.relayBundle, '--port', '0'], {});
    expect(none.status).toBe(2);
    expect(none.stderr).toMatch(/SECURECHAT_PASSWORD/);
  });

  it('exits 0 on a SIGTERM sent the moment `listening on` is printed', async () => {
    // The window this guards: a relay that printed the line before its handlers existed was killed
    // by the signal's default action. Several runs, the signal sent from the data callback itself.
    for (let run = 0; run < 4; run++) {
      const child = spawn(process.execPath, [CLI, 'relay', '--bundle', group.relayBundle, '--port', '0'], {
        env: { ...process.env, SECURECHAT_PASSWORD: TEST_PASSWORD },
        stdio: ['ignore', 'pipe', 'pipe'],
      });
      let out = '';
      let err = '';
      child.stderr.setEncoding('utf8').on('data', (d: string) => (err += d));
      child.stdout.setEncoding('utf8').on('data', (d: string) => {
        const before = out;
        out += d;
        if (!before.includes('\n') && out.includes('\n')) child.kill('SIGTERM');
      });
      const [code, signal] = await new Promise<[number | null, NodeJS.Signals | null]>((resolve) =>
        child.once('close', (c, s) => resolve([c, s])),
      );
      expect({ code, signal, out }, err).toEqual({
        code: 0,
        signal: null,
        out: expect.stringMatching(/^listening on 127\.0\.0\.1:\d+\n$/),
      });
    }
  });

  it('reads the password from --password-file', async () => {
    const file = join(group.dir, 'relay-password.txt');
    writeFileSync(file, `${TEST_PASSWORD}\n`);
    const r = await startRelay(group.relayBundle, ['--password-file', file]);
    expect(r.stdout()).toMatch(/^listening on 127\.0\.0\.1:\d+\n$/);
    expect(await r.stop('SIGINT')).toBe(0);
  });
});
