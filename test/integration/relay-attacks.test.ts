/**
 * Hostile input against the relay (a real child process): every attack is followed by a check
 * that the other members still exchange frames with nothing lost, that the relay is alive and
 * that its resident memory stays under a generous bound. No timing assertions.
 */
import { randomBytes } from 'node:crypto';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { makeTestGroup, type TestGroup } from '../helpers/group.js';
import { chatBody, loadIdentity, must, RawMember, type RawMemberOptions } from '../helpers/raw-member.js';
import { startRelay, type RelayProcess } from '../helpers/relay-process.js';
import type { LocalIdentity } from '../../src-main/core/pki/local-identity.js';
import { lengthPrefix, sealMessage, type BodyOf } from '../../src-main/core/protocol/index.js';

/** Generous: an idle relay is ~60 MiB; one that buffered attacker input without bound would not stay under this. */
const RSS_BOUND_MIB = 400;

let group: TestGroup;
let relay: RelayProcess;
const ids: Record<string, LocalIdentity> = {};
const id = (name: string): LocalIdentity => must(ids[name], name);
let alice: RawMember, bob: RawMember, carol: RawMember;
const extra: RawMember[] = [];
let seq = 0;

/** A link as `name` (TLS with its certificate), or a bare TCP connection without a name. */
async function opened(name?: string, link?: RawMemberOptions['link']): Promise<RawMember> {
  const m = await RawMember.open(name ? id(name) : undefined, { port: relay.port, link });
  extra.push(m);
  return m;
}

/**
 * True once `sent` has arrived at `m` after index `start`, in order and byte-identical (cheap
 * enough to run on every received chunk while thousands of frames arrive).
 */
function receivedInOrder(m: RawMember, start: number, sent: Buffer[]): boolean {
  let k = 0;
  for (let i = start; i < m.frames.length && k < sent.length; i++) {
    const raw = m.frames[i]?.raw;
    if (raw && raw.length === sent[k]?.length && raw.equals(sent[k] as Buffer)) k++;
  }
  return k === sent.length;
}

const TRIO = ['alice', 'bob', 'carol'];

/**
 * The version of the first PRESENCE that listed `m` (RawMember.join waited for it). The relay sends
 * each PRESENCE version to every member, so the others get this version too.
 */
function joinedAt(m: RawMember): number {
  const listed = m.frames.find(
    (f) => f.type === 'PRESENCE' && (f.body as BodyOf<'PRESENCE'>).members.some((x) => x.name === m.name),
  );
  return (must(listed, `a PRESENCE listing ${m.name}`).body as BodyOf<'PRESENCE'>).version;
}

/**
 * Waits until each watcher's newest PRESENCE is newer than `version` and lists exactly `names`.
 * After a member leaves, the list it left is the same as before it joined: without the version, a
 * watcher that has not yet received the PRESENCE with the newcomer matches the old one at once.
 */
async function presenceAfter(
  version: number,
  names: string[],
  watchers = [alice, bob, carol],
): Promise<void> {
  const want = [...names].sort().join(',');
  for (const m of watchers) {
    await m.until(
      () => {
        const p = m.latestPresence();
        return (
          p !== undefined &&
          p.version > version &&
          p.members
            .map((x) => x.name)
            .sort()
            .join(',') === want
        );
      },
      20_000,
      `a PRESENCE newer than v${version} listing ${want}`,
    );
  }
}

/** A frame from `from` reaches every other member, in order, byte-identical. */
async function assertHealthy(): Promise<void> {
  const starts = [bob.frames.length, carol.frames.length];
  const sent: Buffer[] = [];
  for (let i = 0; i < 20; i++) {
    const f = alice.seal('ENCRYPTED_TEXT', '', chatBody(++seq, 512));
    sent.push(f);
    alice.sendPayload(f);
  }
  const targeted = bob.seal('REKEY_REQUEST', 'carol', { minEpoch: seq, reason: 'requested' });
  bob.sendPayload(targeted);
  for (const [i, m] of [bob, carol].entries()) {
    await m.until(() => receivedInOrder(m, starts[i] ?? 0, sent), 20_000, 'health frames');
  }
  await carol.until(() => carol.frames.some((f) => f.raw.equals(targeted)), 20_000, 'targeted health frame');
  expect(relay.alive()).toBe(true);
  expect(relay.rssMiB()).toBeLessThan(RSS_BOUND_MIB);
  for (const m of [alice, bob, carol]) {
    expect(m.closed).toBe(false);
    expect(m.failure).toBeUndefined();
  }
}

beforeAll(async () => {
  group = makeTestGroup(['alice', 'bob', 'carol', 'dave', 'erin']);
  for (const n of ['alice', 'bob', 'carol', 'dave', 'erin'])
    ids[n] = loadIdentity(must(group.bundles[n]), 'member');
  // A short stall timeout keeps the stalled-reader test quick; live readers accept bytes
  // continuously and are never near it.
  relay = await startRelay(group.relayBundle, ['--stall-timeout-ms', '5000']);
  alice = await RawMember.join(id('alice'), { port: relay.port });
  bob = await RawMember.join(id('bob'), { port: relay.port });
  carol = await RawMember.join(id('carol'), { port: relay.port });
  for (const m of [alice, bob, carol]) await m.waitForPresence(['alice', 'bob', 'carol']);
});

afterAll(async () => {
  for (const m of [alice, bob, carol, ...extra]) m?.destroy();
  await relay?.stop();
});

describe('relay under attack: framing', { timeout: 120_000 }, () => {
  it('survives a raw TCP client sending random bytes', async () => {
    const raw = await opened();
    raw.sendRaw(randomBytes(256 * 1024));
    await raw.waitClosed();
    await assertHealthy();
  });

  it('survives a TLS client without a certificate: the handshake is refused', async () => {
    const raw = await RawMember.open(undefined, { port: relay.port, link: 'tls-no-cert' });
    extra.push(raw);
    await raw.waitClosed();
    expect(raw.frames).toHaveLength(0);
    await assertHealthy();
  });

  it('survives a truncated frame followed by a close', async () => {
    const raw = await opened('dave');
    await raw.until(() => raw.hello, 10_000, 'HELLO');
    raw.sendRaw(Buffer.concat([lengthPrefix(1000), randomBytes(500)]));
    raw.close();
    await raw.waitClosed();
    await assertHealthy();
  });

  it('refuses a zero length prefix with a fatal BadFrame', async () => {
    const raw = await opened('dave');
    await raw.until(() => raw.hello, 10_000, 'HELLO');
    raw.sendRaw(lengthPrefix(0));
    const err = await raw.waitForError('BadFrame');
    expect(err.body.fatal).toBe(true);
    await raw.waitClosed();
    await assertHealthy();
  });

  it('refuses a 4 GiB length prefix before and after login without allocating it', async () => {
    const raw = await opened('dave');
    await raw.until(() => raw.hello, 10_000, 'HELLO');
    raw.sendRaw(Buffer.from([0xff, 0xff, 0xff, 0xff, 1, 2, 3]));
    expect((await raw.waitForError('FrameTooLarge')).body.fatal).toBe(true);
    await raw.waitClosed();

    const dave = await RawMember.join(id('dave'), { port: relay.port });
    extra.push(dave);
    await alice.waitForPresence(['alice', 'bob', 'carol', 'dave']);
    dave.sendRaw(Buffer.from([0xff, 0xff, 0xff, 0xff]));
    expect((await dave.waitForError('FrameTooLarge')).body.fatal).toBe(true);
    await dave.waitClosed();
    await presenceAfter(joinedAt(dave), TRIO);
    await assertHealthy();
  });

  it('forwards a 100 KB chat frame intact (under the 1 MiB bound)', async () => {
    const big = alice.seal('ENCRYPTED_TEXT', '', chatBody(++seq, 100 * 1024));
    expect(big.length).toBeGreaterThan(100 * 1024);
    alice.sendPayload(big);
    for (const m of [bob, carol])
      await m.until(() => m.frames.some((f) => f.raw.equals(big)), 20_000, '100 KB frame');
    await assertHealthy();
  });

  it('closes a member after too many refused frames (TooManyErrors)', async () => {
    const erin = await RawMember.join(id('erin'), { port: relay.port });
    extra.push(erin);
    for (let i = 0; i < 12; i++) erin.sendPayload(Buffer.from([1, 99, 2, 0, 32, ...Buffer.alloc(40)]));
    const err = await erin.waitForError('TooManyErrors');
    expect(err.body.fatal).toBe(true);
    expect(erin.errors().filter((e) => e.code === 'UnknownType').length).toBeGreaterThan(0);
    await erin.waitClosed();
    // Every watcher past erin's leave: the next test reads alice's latest PRESENCE as it is.
    await presenceAfter(joinedAt(erin), TRIO);
    await assertHealthy();
  });
});

describe('relay under attack: authentication', { timeout: 120_000 }, () => {
  it('refuses a certificate not issued by the group CA, on the TLS link and in CONNECTION', async () => {
    const other = makeTestGroup(['alice']);
    const fake = loadIdentity(must(other.bundles.alice), 'member');
    // The outsider presents its own group's certificate on the link (and cannot check this relay).
    const outsider = await RawMember.open(fake, { port: relay.port, link: 'tls-unchecked' });
    extra.push(outsider);
    const refused = await outsider.waitForError('CertificateRejected');
    expect(refused.body.message).toMatch(/NotIssuedByCa/);
    expect(refused.body.fatal).toBe(true);
    await outsider.waitClosed();

    // A member's link carrying an outsider's CONNECTION.
    const m2 = await opened('dave');
    await m2.until(() => m2.hello, 10_000, 'HELLO');
    const frame = sealMessage(
      'CONNECTION',
      { kind: 'certificate', der: fake.certificate.der },
      '',
      { challenge: must(m2.hello).challenge, relayFingerprint: must(m2.relayCert).fingerprintHex },
      (d) => fake.sign(d),
    );
    m2.sendPayload(frame);
    const err = await m2.waitForError('CertificateRejected');
    expect(err.body.message).toMatch(/NotIssuedByCa/);
    expect(alice.latestPresence()?.members.map((m) => m.name)).toEqual(['alice', 'bob', 'carol']);
    await assertHealthy();
  });

  it('refuses a CONNECTION for another member than the TLS link authenticated', async () => {
    // dave's link, erin's certificate and erin's own signature: only the link's owner may log in.
    const m = await opened('dave');
    await m.until(() => m.hello, 10_000, 'HELLO');
    const erin = id('erin');
    const frame = sealMessage(
      'CONNECTION',
      { kind: 'certificate', der: erin.certificate.der },
      '',
      { challenge: must(m.hello).challenge, relayFingerprint: must(m.relayCert).fingerprintHex },
      (d) => erin.sign(d),
    );
    m.sendPayload(frame);
    const err = await m.waitForError('AuthFailed');
    expect(err.body.message).toMatch(/TLS link/);
    expect(alice.latestPresence()?.members.map((x) => x.name)).toEqual(['alice', 'bob', 'carol']);
    await assertHealthy();
  });

  it('refuses a valid certificate whose CONNECTION is signed by another key', async () => {
    const dave = await opened('dave');
    await dave.until(() => dave.hello, 10_000, 'HELLO');
    dave.sendPayload(dave.connectionFrame({ signer: id('erin') }));
    const err = await dave.waitForError('AuthFailed');
    expect(err.body.message).toMatch(/signature/);
    await assertHealthy();
  });

  it('refuses a CONNECTION replayed from an earlier session, and closes after repeated failures', async () => {
    const first = await opened('dave');
    await first.login();
    const captured = first.connectionFrame();
    first.destroy();
    await presenceAfter(joinedAt(first), TRIO);

    const replay = await opened('dave');
    await replay.until(() => replay.hello, 10_000, 'HELLO');
    for (let i = 0; i < 3; i++) replay.sendPayload(captured);
    const err = await replay.waitForError('AuthFailed');
    expect(err.body.message).toMatch(/challenge/);
    await replay.waitClosed();
    expect(replay.errors().at(-1)?.fatal).toBe(true);
    expect(alice.latestPresence()?.members.map((m) => m.name)).toEqual(['alice', 'bob', 'carol']);
    await assertHealthy();
  });

  it('refuses a frame whose sender is another member (SenderMismatch) and forwards nothing', async () => {
    const spoof = bob.seal('ENCRYPTED_TEXT', '', chatBody(++seq), {
      kind: 'fingerprint',
      fingerprint: alice.fingerprint,
    });
    bob.sendPayload(spoof);
    const err = await bob.waitForError('SenderMismatch');
    expect(err.body.fatal).toBe(false);
    await assertHealthy();
    expect(carol.frames.some((f) => f.raw.equals(spoof))).toBe(false);
    expect(alice.frames.some((f) => f.raw.equals(spoof))).toBe(false);
  });

  it('refuses NONCE_REQUEST from an unauthenticated client (NotAuthenticated)', async () => {
    const dave = await opened('dave');
    await dave.until(() => dave.hello, 10_000, 'HELLO');
    const req = dave.seal('NONCE_REQUEST', 'alice', {
      epoch: 7,
      membershipVersion: 1,
      rosterVersion: 0,
      members: ['alice', 'dave'],
      challenge: Buffer.alloc(256, 9),
    });
    dave.sendPayload(req);
    await dave.waitForError('NotAuthenticated');
    await assertHealthy();
    expect(alice.frames.some((f) => f.raw.equals(req))).toBe(false);
  });
});

describe('relay under attack: members misbehaving', { timeout: 120_000 }, () => {
  it('announces a member killed mid-traffic to the others', async () => {
    const dave = await RawMember.join(id('dave'), { port: relay.port });
    await alice.waitForPresence(['alice', 'bob', 'carol', 'dave']);
    for (let i = 0; i < 50; i++) dave.sendPayload(dave.seal('ENCRYPTED_TEXT', '', chatBody(i + 1, 2000)));
    // Half a frame on the wire, then the process is gone.
    dave.sendRaw(Buffer.concat([lengthPrefix(4000), randomBytes(100)]));
    dave.tcp.resetAndDestroy();
    await presenceAfter(joinedAt(dave), TRIO);
    await assertHealthy();
  });

  it('keeps the others flowing while one member floods (its reading is paused, nothing is lost)', async () => {
    const dave = await RawMember.join(id('dave'), { port: relay.port });
    extra.push(dave);
    await alice.waitForPresence(['alice', 'bob', 'carol', 'dave']);
    const flood: Buffer[] = [];
    const template = dave.seal('ENCRYPTED_TEXT', '', chatBody(1, 1024));
    // Distinct bytes per frame are not needed to count them; one signed frame sent 3,000 times.
    for (let i = 0; i < 3000; i++) flood.push(template);
    const before = carol.ofType('ENCRYPTED_TEXT').length;
    dave.sendRaw(Buffer.concat(flood.map((f) => Buffer.concat([lengthPrefix(f.length), f]))));
    await assertHealthy();
    await carol.until(
      () => carol.frames.filter((f) => f.raw.equals(template)).length >= 3000,
      60_000,
      'all flood frames',
    );
    expect(carol.ofType('ENCRYPTED_TEXT').length - before).toBeGreaterThanOrEqual(3000);
    expect(dave.errors()).toEqual([]);
    dave.destroy();
    await presenceAfter(joinedAt(dave), TRIO);
  });

  it('disconnects a stalled reader (SlowConsumer) and keeps its memory bounded', async () => {
    const dave = await RawMember.join(id('dave'), { port: relay.port });
    extra.push(dave);
    await alice.waitForPresence(['alice', 'bob', 'carol', 'dave']);
    dave.socket.pause();
    const starts = [bob.frames.length, carol.frames.length];
    const sent: Buffer[] = [];
    for (let i = 0; i < 120; i++) {
      const f = alice.seal('ENCRYPTED_TEXT', '', chatBody(++seq, 100 * 1024));
      sent.push(f);
      alice.sendPayload(f);
    }
    for (const [i, m] of [bob, carol].entries()) {
      await m.until(() => receivedInOrder(m, starts[i] ?? 0, sent), 60_000, 'big frames');
    }
    await presenceAfter(joinedAt(dave), TRIO);
    expect(relay.rssMiB()).toBeLessThan(RSS_BOUND_MIB);
    const slowConsumer = (l: Record<string, unknown>): boolean =>
      l.event === 'slow-consumer' && l.name === 'dave';
    await relay.waitForLog(slowConsumer, 'slow-consumer dave');
    expect(relay.logs().filter(slowConsumer).length).toBe(1);
    dave.socket.resume();
    await dave.waitClosed(30_000);
    await assertHealthy();
  });
});

describe('relay limits', { timeout: 120_000 }, () => {
  it('drops a slowloris client at the authentication deadline', async () => {
    const short = await startRelay(group.relayBundle, ['--auth-timeout-ms', '3000']);
    try {
      const slow = await RawMember.open(id('dave'), { port: short.port });
      await slow.until(() => slow.hello, 10_000, 'HELLO');
      const frame = Buffer.concat([lengthPrefix(2000), slow.connectionFrame()]);
      let i = 0;
      const drip = setInterval(() => {
        if (!slow.closed && i < frame.length) slow.sendRaw(frame.subarray(i, ++i));
      }, 1000);
      try {
        const err = await slow.waitForError('AuthTimeout', 20_000);
        expect(err.body.fatal).toBe(true);
        await slow.waitClosed();
      } finally {
        clearInterval(drip);
      }
      expect(short.alive()).toBe(true);
    } finally {
      expect(await short.stop()).toBe(0);
    }
  });

  it('refuses connections over the cap with ERROR ServerFull', async () => {
    const small = await startRelay(group.relayBundle, ['--max-connections', '2']);
    try {
      const a = await RawMember.join(id('alice'), { port: small.port });
      const b = await RawMember.join(id('bob'), { port: small.port });
      const c = await RawMember.open(id('carol'), { port: small.port });
      const err = await c.waitForError('ServerFull');
      expect(err.body.fatal).toBe(true);
      await c.waitClosed();
      const f = a.seal('ENCRYPTED_TEXT', '', chatBody(1));
      a.sendPayload(f);
      await b.until(() => b.frames.some((x) => x.raw.equals(f)), 10_000, 'frame');
      a.destroy();
      b.destroy();
    } finally {
      expect(await small.stop()).toBe(0);
    }
  });

  it('closes connections at once from an address whose failed handshakes spent its budget', async () => {
    const strict = await startRelay(group.relayBundle, ['--address-auth-failures', '2']);
    try {
      // Handshakes without a client certificate: no member identity answers for them.
      for (let i = 0; i < 2; i++) {
        const m = await RawMember.open(undefined, { port: strict.port, link: 'tls-no-cert' });
        await m.waitClosed();
      }
      // Even a member's link never gets a TLS handshake from that address until a token is back
      // (the client retries as after any drop; members' own failed logins never spend this budget).
      await expect(RawMember.open(id('dave'), { port: strict.port })).rejects.toThrow();
      expect(strict.alive()).toBe(true);
    } finally {
      expect(await strict.stop()).toBe(0);
    }
  });
});
