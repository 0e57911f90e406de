/**
 * Hostile input reaches a member (a real `chat --json` process) through a recording proxy that can
 * inject frames: each is refused with its typed reason and the chat goes on. And members from
 * another group's CA never get the key.
 */
import { randomBytes } from 'node:crypto';
import { afterEach, beforeAll, describe, expect, it } from 'vitest';
import { createGroupCa, issueCertificate, writeBundle } from '../../src-main/core/pki/index.js';
import { LocalIdentity } from '../../src-main/core/pki/local-identity.js';
import {
  attachSignature,
  buildUnsigned,
  readHeader,
  SIGNATURE_LABEL,
} from '../../src-main/core/protocol/envelope.js';
import { writeFileSync } from 'node:fs';
import { join } from 'node:path';
import {
  ChatProcess,
  cleanup,
  publishRoster,
  startRelay,
  type RelayProcess,
} from '../helpers/client-processes.js';
import { TestMember } from '../helpers/client-engine.js';
import { makeLoadedGroup, type LoadedGroup } from '../helpers/client-identities.js';
import { TEST_KDF_ITERATIONS, TEST_PASSWORD } from '../helpers/group.js';
import { RecordingProxy } from '../helpers/recording-proxy.js';
import { decodeLinkFrame, isLinkFrame } from '../../src-main/core/protocol/link-frames.js';

/** The envelope a frame to a member carries: itself, or inside DELIVERED (the log is on). */
function envelopeOf(frame: Buffer): Buffer {
  if (!isLinkFrame(frame)) return frame;
  const link = decodeLinkFrame(frame);
  return link.kind === 'DELIVERED' ? link.envelope : Buffer.alloc(0);
}

let g: LoadedGroup;
let relay: RelayProcess | undefined;
let proxy: RecordingProxy | undefined;
let running: { kill(): Promise<unknown> }[] = [];

beforeAll(() => {
  g = makeLoadedGroup(['alice', 'bob', 'carol', 'dave']);
});

afterEach(async () => {
  await cleanup(...running);
  running = [];
  await proxy?.close();
  proxy = undefined;
  await cleanup(relay);
  relay = undefined;
});

/** A chat frame signed by `signer` with any body bytes, as a malicious but authenticated member could send. */
function forgedChat(signer: LocalIdentity, body: object | Buffer): Buffer {
  const bytes = Buffer.isBuffer(body) ? body : Buffer.from(JSON.stringify(body));
  const unsigned = buildUnsigned(
    'ENCRYPTED_TEXT',
    { kind: 'fingerprint', fingerprint: signer.certificate.fingerprint },
    '',
    bytes,
  );
  return attachSignature(unsigned, signer.sign(Buffer.concat([SIGNATURE_LABEL, unsigned])));
}

const b64 = (n: number) => randomBytes(n).toString('base64');

function foreignMember(name: string) {
  const ca = createGroupCa({ name: 'Other Group CA' });
  return { ca, cred: issueCertificate(ca, { name, role: 'member' }) };
}

const rosterNames = () =>
  g.group
    .roster()
    .members.map((m) => m.name)
    .sort();

describe('typed rejects', () => {
  it('tampered, replayed, wrong-epoch, forged and malformed messages are refused and the chat goes on', async () => {
    const r = await startRelay(g.group.relayBundle);
    relay = r;
    const p = await RecordingProxy.start(r, g.relayHost());
    proxy = p;
    const alice = ChatProcess.start('alice', g.group.bundles.alice as string, r.address);
    const bob = ChatProcess.start('bob', g.group.bundles.bob as string, r.address);
    const carol = ChatProcess.start('carol', g.group.bundles.carol as string, p.address);
    running = [alice, bob, carol];
    const three = ['alice', 'bob', 'carol'];
    await Promise.all([alice, bob, carol].map((m) => m.waitForKey(three)));
    const epoch = carol.lastKey()?.epoch as number;
    alice.send('first');
    alice.send('second');
    await carol.waitForMessage('alice', 'second');

    const alicesFrames = (p.latest?.toClient ?? [])
      .map(envelopeOf)
      .filter((f) => f.length > 0 && readHeader(f).type === 'ENCRYPTED_TEXT');
    expect(alicesFrames.length).toBe(2);
    const [first, second] = alicesFrames as [Buffer, Buffer];
    const bobId = g.identities.bob as LocalIdentity;
    const errors = () => carol.of('error').map((e) => e.code as string);
    const expectReject = async (code: string, count = 1) =>
      carol.waitFor((c) => c.of('error').filter((e) => e.code === code).length >= count, `a ${code} reject`);

    // A replayed frame is a duplicate of one held (sender, epoch, seq): dropped, shown once, no
    // error (the log resends after a crash; docs/client.md). The next reject proves it was read.
    p.injectToClient(first);

    const tampered = Buffer.from(second);
    const h = readHeader(tampered);
    const bodyAt = h.body.byteOffset - tampered.byteOffset;
    tampered[bodyAt + 5] = (tampered[bodyAt + 5] as number) ^ 0x01;
    p.injectToClient(tampered);
    await expectReject('BadSignature');
    expect(carol.messages().map((m) => m.text)).toEqual(['first', 'second']);

    p.injectToClient(forgedChat(bobId, { epoch: 999, seq: 1, iv: b64(12), ciphertext: b64(32) }));
    await expectReject('UnknownEpoch');

    p.injectToClient(forgedChat(bobId, { epoch, seq: 5000, iv: b64(12), ciphertext: b64(48) }));
    await expectReject('DecryptFailed');

    p.injectToClient(forgedChat(bobId, { epoch, seq: 50_000, iv: b64(12), ciphertext: b64(48) }));
    await expectReject('SequenceOutOfWindow');

    p.injectToClient(forgedChat(bobId, { epoch, seq: 7, iv: b64(12), ciphertext: b64(48), extra: 1 }));
    p.injectToClient(forgedChat(bobId, Buffer.from('not json')));
    await expectReject('SchemaViolation', 2);

    const stranger = foreignMember('bob');
    const strangerId = LocalIdentity.fromBundle({
      certificate: stranger.cred.certificate,
      ca: stranger.ca.certificate,
      privateKeyPem: stranger.cred.privateKeyPem,
    });
    p.injectToClient(forgedChat(strangerId, { epoch, seq: 8, iv: b64(12), ciphertext: b64(48) }));
    await expectReject('UnknownSender');

    // Two re-keys later, the first epoch is retired, not unknown. Presence never re-keys; a roster
    // change does: erin, then frank join the roster, each version published to the relay.
    for (const [n, name] of [
      [1, 'erin'],
      [2, 'frank'],
    ] as const) {
      g.group.addMember(name);
      // dave is offline: publishing as an online member would replace her session.
      const published = await publishRoster(g.group.rosterPath, g.group.bundles.dave as string, r.address);
      expect(published.code).toBe(0);
      await carol.waitFor(
        (c) => (c.lastKey()?.epoch ?? 0) >= epoch + n && c.state === 'Chatting',
        `re-key ${n} (${name} joined the roster)`,
      );
    }
    // bob (his key signs it) under the first epoch, a sequence number never seen: retired.
    p.injectToClient(forgedChat(bobId, { epoch, seq: 4000, iv: b64(12), ciphertext: b64(48) }));
    await expectReject('RetiredEpoch');

    // None of that produced a message, and the session carries on.
    expect(carol.messages().map((m) => m.text)).toEqual(['first', 'second']);
    alice.send('still here');
    await carol.waitForMessage('alice', 'still here');
    expect(carol.state).toBe('Chatting');
    expect(carol.proc.exitCode).toBeNull();
    expect(errors()).not.toContain('BadFrame');
    carol.end();
    expect(await carol.exited).toBe(0);
  }, 90_000);

  it('a member whose bundle is from another CA fails on the relay certificate and never gets a key', async () => {
    const r = await startRelay(g.group.relayBundle);
    relay = r;
    const alice = ChatProcess.start('alice', g.group.bundles.alice as string, r.address);
    const bob = ChatProcess.start('bob', g.group.bundles.bob as string, r.address);
    running = [alice, bob];
    await Promise.all([alice.waitForKey(['alice', 'bob']), bob.waitForKey(['alice', 'bob'])]);

    const { ca, cred } = foreignMember('mallory');
    const path = join(g.group.dir, 'mallory-other-ca.p12');
    writeFileSync(
      path,
      writeBundle(cred, ca.certificate, TEST_PASSWORD, { kdfIterations: TEST_KDF_ITERATIONS }),
    );
    const mallory = ChatProcess.start('mallory', path, r.address);
    running.push(mallory);
    mallory.send('let me in');
    expect(await mallory.exited).toBe(1);
    expect(mallory.of('error').map((e) => e.code)).toContain('RelayCertificateRejected');
    expect(mallory.state).toBe('Failed');
    expect(mallory.of('key')).toEqual([]);
    expect(mallory.of('state').some((s) => s.state === 'Chatting')).toBe(false);
    expect(alice.of('members').every((e) => !JSON.stringify(e).includes('mallory'))).toBe(true);
    // The key is over the roster (M), which never lists a foreign certificate.
    expect(alice.lastKey()?.members).toEqual(rosterNames());
  });

  it('a member that trusts the relay but holds a certificate from another CA is refused by the relay: Failed, no key', async () => {
    const r = await startRelay(g.group.relayBundle);
    relay = r;
    const alice = ChatProcess.start('alice', g.group.bundles.alice as string, r.address);
    const bob = ChatProcess.start('bob', g.group.bundles.bob as string, r.address);
    running = [alice, bob];
    await Promise.all([alice.waitForKey(['alice', 'bob']), bob.waitForKey(['alice', 'bob'])]);
    const { cred } = foreignMember('mallory');
    // Trusts our group CA (so it accepts the relay) but presents a foreign certificate.
    const impostor = LocalIdentity.fromBundle({
      certificate: cred.certificate,
      ca: (g.identities.alice as LocalIdentity).ca,
      privateKeyPem: cred.privateKeyPem,
    });
    // A fixed reconnect delay bound, so that "no retry" can be checked without guessing a time.
    const retryBoundMs = 50;
    const m = new TestMember(impostor, r.port, { backoff: { initialMs: retryBoundMs, maxMs: retryBoundMs } });
    running.push(m);
    m.engine.start();
    await m.waitFor(() => m.engine.state === 'Failed', 'Failed');
    expect(m.of('error').some((e) => e.code === 'AuthFailed' || e.code === 'CertificateRejected')).toBe(true);
    expect(m.of('key')).toEqual([]);
    expect(m.keys.size).toBe(0);
    // The key is over the roster (M), which never lists a foreign certificate.
    expect(alice.lastKey()?.members).toEqual(rosterNames());
    // Failed means no retry. A retry is scheduled when the connection closes, that is before the
    // Failed event was seen, for at most retryBoundMs. Node runs timers in order of their due time,
    // so a timer set now for longer runs after any such retry would have started (and connecting is
    // a state event, emitted synchronously): an ordering, not a guess at how long a retry takes.
    const states = m.of('state').length;
    await new Promise((resolve) => setTimeout(resolve, retryBoundMs + 1));
    expect(m.of('state').length).toBe(states);
    expect(m.engine.state).toBe('Failed');
  });
});
