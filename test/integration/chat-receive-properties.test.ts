/**
 * Property-based tests (fast-check) of the CLIENT's receive path. alice is an in-process ChatEngine
 * chatting with bob (another engine) and mallory, an authenticated member of the group played by a
 * raw protocol member (test/helpers/keyed-raw-member.ts) connected to the real relay child process.
 * mallory takes part in key establishment honestly, so alice is in Chatting under a key mallory
 * holds too; then mallory sends alice generated frames: arbitrary bytes, envelopes with arbitrary
 * bodies or signatures, and correctly signed envelopes of every member-originated type with random
 * or mutated fields (chat under random epochs, chat under the real key with hostile plaintexts,
 * NONCE_REQUEST / NONCE_RESPONSE / KEY_DISTRIBUTION / REKEY_REQUEST aimed at alice). Arbitrary
 * bytes also reach alice as if from the relay (through a proxy), where only the relay's key signs.
 *
 * After each run: nothing threw in this process, alice reported only typed errors from the
 * documented set, she is Chatting (again) under the same or a newer key over the three members, and
 * a genuine message from bob still arrives. After all runs the group still re-keys when mallory
 * leaves and bob's messages still arrive.
 */
import fc from 'fast-check';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { encodeChatPlaintext } from '../../src-main/client/chat-codec.js';
import { REJECT_CODES } from '../../src-main/client/errors.js';
import type { LocalIdentity } from '../../src-main/core/pki/local-identity.js';
import {
  attachSignature,
  buildUnsigned,
  SIGNATURE_LABEL,
  type MessageType,
} from '../../src-main/core/protocol/index.js';
import { TestMember, waitForMembers } from '../helpers/client-engine.js';
import { makeLoadedGroup, type LoadedGroup } from '../helpers/client-identities.js';
import { KeyedRawMember } from '../helpers/keyed-raw-member.js';
import { RecordingProxy } from '../helpers/recording-proxy.js';
import { startRelay, type RelayProcess } from '../helpers/relay-process.js';

const THREE = ['alice', 'bob', 'mallory'];
/** What an `error` event may carry (docs/client.md, "What is checked on receive"). */
const DOCUMENTED = new Set<string>([
  ...REJECT_CODES,
  'BadFrame',
  'KeyEstablishment',
  'EpochOutOfRange',
  'KeyConflict',
  'RekeyRateLimited',
  'HeldFramesDropped',
]);
const NUM_RUNS = 150;

let g: LoadedGroup;
let relay: RelayProcess;
let proxy: RecordingProxy;
let alice: TestMember;
let bob: TestMember;
let mallory: KeyedRawMember;
const crashes: unknown[] = [];
const onCrash = (err: unknown): void => {
  crashes.push(err);
};

beforeAll(async () => {
  process.on('uncaughtException', onCrash);
  process.on('unhandledRejection', onCrash);
  g = makeLoadedGroup(THREE);
  relay = await startRelay(g.group.relayBundle, [
    '--presence-interval-ms',
    '0',
    '--rate-frames',
    '0',
    // mallory's refused frames (arbitrary bytes) must not get her disconnected mid-test.
    '--max-protocol-errors',
    '1000000',
    '--log-level',
    'warn',
  ]);
  proxy = await RecordingProxy.start({ host: '127.0.0.1', port: relay.port }, g.relayHost());
  alice = new TestMember(g.identities.alice as LocalIdentity, proxy.port);
  bob = new TestMember(g.identities.bob as LocalIdentity, relay.port);
  alice.engine.start();
  bob.engine.start();
  mallory = await KeyedRawMember.join(g.identities.mallory as LocalIdentity, relay.port);
  await Promise.all([alice.waitForKey(THREE), bob.waitForKey(THREE), mallory.waitForKey(THREE)]);
});

afterAll(async () => {
  await alice?.kill();
  await bob?.kill();
  mallory?.raw.destroy();
  await proxy?.close();
  await relay?.stop();
  process.off('uncaughtException', onCrash);
  process.off('unhandledRejection', onCrash);
});

// ---- generators -------------------------------------------------------------------------------

/** An epoch relative to alice's current one (near it is where the checks are) or anywhere. */
type EpochSpec = { rel: number } | { abs: number };
const epochSpec: fc.Arbitrary<EpochSpec> = fc.oneof(
  fc.integer({ min: -3, max: 3 }).map((rel) => ({ rel })),
  fc.integer({ min: 1, max: Number.MAX_SAFE_INTEGER }).map((abs) => ({ abs })),
);
const bytes = (minLength: number, maxLength: number) =>
  fc.uint8Array({ minLength, maxLength }).map((a) => Buffer.from(a));
const memberList = fc.oneof(
  fc.constant(THREE),
  fc.shuffledSubarray(['alice', 'bob', 'carol', 'mallory', 'zed'], { minLength: 2 }),
);
const plaintext = fc.oneof(
  bytes(0, 300),
  fc.jsonValue().map((v) => Buffer.from(JSON.stringify(v) ?? 'null')),
  fc
    .record({
      text: fc.string({ maxLength: 40 }),
      sentAt: fc.oneof(fc.integer({ min: 0, max: Number.MAX_SAFE_INTEGER }), fc.double()),
    })
    .map((o) => Buffer.from(JSON.stringify(o))),
  fc
    .record({ text: fc.string({ maxLength: 40 }), extra: fc.anything() })
    .map((o) => Buffer.from(JSON.stringify(o))),
);
const memberType = fc.constantFrom<MessageType>(
  'ENCRYPTED_TEXT',
  'NONCE_REQUEST',
  'NONCE_RESPONSE',
  'KEY_DISTRIBUTION',
  'REKEY_REQUEST',
);

type Fuzz =
  | { kind: 'raw'; data: Buffer }
  | { kind: 'fromRelay'; data: Buffer }
  | { kind: 'badSignature'; type: MessageType; body: Buffer; signature: Buffer }
  | { kind: 'signedBody'; type: MessageType; body: Buffer }
  | { kind: 'chat'; epoch: EpochSpec; seq: number; iv: Buffer; ciphertext: Buffer }
  | {
      kind: 'keyedChat';
      plaintext: Buffer;
      mutate: 'none' | 'ciphertext' | 'iv' | 'replay' | 'seq';
      at: number;
    }
  | {
      kind: 'nonceRequest';
      epoch: EpochSpec;
      version: number;
      members: string[];
      challenge: Buffer;
    }
  | { kind: 'nonceResponse'; epoch: EpochSpec; sealed: Buffer }
  | { kind: 'keyDistribution'; epoch: EpochSpec; wrappedKey: Buffer; iv: Buffer; ciphertext: Buffer }
  | { kind: 'rekey'; epoch: EpochSpec; reason: 'requested' | 'stale-epoch' | 'key-missing' };

const fuzz: fc.Arbitrary<Fuzz> = fc.oneof(
  fc.record({ kind: fc.constant('raw' as const), data: bytes(1, 600) }),
  fc.record({ kind: fc.constant('fromRelay' as const), data: bytes(1, 600) }),
  fc.record({
    kind: fc.constant('badSignature' as const),
    type: memberType,
    body: bytes(0, 300),
    signature: bytes(1, 300),
  }),
  fc.record({
    kind: fc.constant('signedBody' as const),
    type: memberType,
    body: fc.oneof(
      bytes(0, 300),
      fc.jsonValue().map((v) => Buffer.from(JSON.stringify(v) ?? 'null')),
    ),
  }),
  fc.record({
    kind: fc.constant('chat' as const),
    epoch: epochSpec,
    seq: fc.oneof(fc.integer({ min: 1, max: 20_000 }), fc.integer({ min: 1, max: Number.MAX_SAFE_INTEGER })),
    iv: bytes(12, 12),
    ciphertext: bytes(16, 400),
  }),
  fc.record({
    kind: fc.constant('keyedChat' as const),
    plaintext,
    mutate: fc.constantFrom(
      'none' as const,
      'ciphertext' as const,
      'iv' as const,
      'replay' as const,
      'seq' as const,
    ),
    at: fc.nat(),
  }),
  fc.record({
    kind: fc.constant('nonceRequest' as const),
    epoch: epochSpec,
    version: fc.oneof(fc.integer({ min: 0, max: 10 }), fc.integer({ min: 0, max: Number.MAX_SAFE_INTEGER })),
    members: memberList,
    challenge: bytes(1, 512),
  }),
  fc.record({ kind: fc.constant('nonceResponse' as const), epoch: epochSpec, sealed: bytes(1, 512) }),
  fc.record({
    kind: fc.constant('keyDistribution' as const),
    epoch: epochSpec,
    wrappedKey: bytes(1, 512),
    iv: bytes(12, 12),
    ciphertext: bytes(16, 600),
  }),
  fc.record({
    kind: fc.constant('rekey' as const),
    epoch: epochSpec,
    reason: fc.constantFrom('requested' as const, 'stale-epoch' as const, 'key-missing' as const),
  }),
);

// ---- sending ----------------------------------------------------------------------------------

const TARGETED = new Set<MessageType>([
  'NONCE_REQUEST',
  'NONCE_RESPONSE',
  'KEY_DISTRIBUTION',
  'REKEY_REQUEST',
]);

function epochOf(spec: EpochSpec): number {
  if ('abs' in spec) return spec.abs;
  return Math.max(1, (alice.engine.key?.epoch ?? 1) + spec.rel);
}

function signedRaw(type: MessageType, body: Buffer, signature?: Buffer): Buffer {
  const unsigned = buildUnsigned(
    type,
    { kind: 'fingerprint', fingerprint: mallory.identity.certificate.fingerprint },
    TARGETED.has(type) ? 'alice' : '',
    body,
  );
  return attachSignature(
    unsigned,
    signature ?? mallory.identity.sign(Buffer.concat([SIGNATURE_LABEL, unsigned])),
  );
}

function flip(b: Buffer, at: number): Buffer {
  const out = Buffer.from(b);
  out[at % out.length] = (out[at % out.length] as number) ^ (1 << (at % 8));
  return out;
}

function sendFuzz(f: Fuzz): void {
  switch (f.kind) {
    case 'raw':
      mallory.raw.sendPayload(f.data);
      return;
    case 'fromRelay':
      proxy.injectToClient(f.data);
      return;
    case 'badSignature':
      mallory.raw.sendPayload(signedRaw(f.type, f.body, f.signature));
      return;
    case 'signedBody':
      mallory.raw.sendPayload(signedRaw(f.type, f.body));
      return;
    case 'chat':
      mallory.send('ENCRYPTED_TEXT', '', {
        epoch: epochOf(f.epoch),
        seq: f.seq,
        iv: f.iv,
        ciphertext: f.ciphertext,
      });
      return;
    case 'keyedChat': {
      const body = mallory.chatBody(f.plaintext);
      if (f.mutate === 'ciphertext') body.ciphertext = flip(body.ciphertext, f.at);
      if (f.mutate === 'iv') body.iv = flip(body.iv, f.at);
      if (f.mutate === 'seq') body.seq += 1 + (f.at % 5); // the AAD binds seq: does not decrypt
      mallory.send('ENCRYPTED_TEXT', '', body);
      if (f.mutate === 'replay') mallory.send('ENCRYPTED_TEXT', '', body);
      return;
    }
    case 'nonceRequest':
      mallory.send('NONCE_REQUEST', 'alice', {
        epoch: epochOf(f.epoch),
        membershipVersion: f.version,
        rosterVersion: 0,
        members: f.members,
        challenge: f.challenge,
      });
      return;
    case 'nonceResponse':
      mallory.send('NONCE_RESPONSE', 'alice', { epoch: epochOf(f.epoch), sealed: f.sealed });
      return;
    case 'keyDistribution':
      mallory.send('KEY_DISTRIBUTION', 'alice', {
        epoch: epochOf(f.epoch),
        wrappedKey: f.wrappedKey,
        iv: f.iv,
        ciphertext: f.ciphertext,
      });
      return;
    case 'rekey':
      mallory.send('REKEY_REQUEST', 'alice', { minEpoch: epochOf(f.epoch), reason: f.reason });
      return;
  }
}

// ---- the property -----------------------------------------------------------------------------

/** Polls `predicate` (for state outside alice's events, such as the keys mallory holds). */
async function until(predicate: () => boolean, what: string, timeoutMs = 20_000): Promise<void> {
  const deadline = Date.now() + timeoutMs;
  while (!predicate()) {
    if (Date.now() > deadline) throw new Error(`timed out waiting for ${what}`);
    await new Promise((resolve) => setTimeout(resolve, 10));
  }
}

/**
 * A correct chat message from mallory after the run's frames: delivered means alice has handled
 * every frame before it (one connection, in order). Generated REKEY_REQUESTs can make alice re-key
 * more than once in a run, and mallory learns each key a moment after alice: if the sentinel's epoch
 * was retired (or not known) by then, it is refused with a typed error and sent again under the
 * newer key.
 */
async function syncSentinel(run: number): Promise<void> {
  const prefix = `sentinel ${run}.`;
  const delivered = () => alice.of('message').some((m) => m.from === 'mallory' && m.text.startsWith(prefix));
  for (let attempt = 0; attempt < 8; attempt++) {
    await until(
      () => (mallory.key?.epoch ?? 0) >= (alice.engine.key?.epoch ?? 0),
      "mallory holding alice's key",
    ).catch(() => undefined); // a key mallory never gets only costs one more attempt
    const epoch = mallory.key?.epoch ?? 0;
    const errorsBefore = alice.of('error').length;
    mallory.send(
      'ENCRYPTED_TEXT',
      '',
      mallory.chatBody(encodeChatPlaintext({ text: `${prefix}${attempt}`, sentAt: Date.now() })),
    );
    const refused = () =>
      alice
        .of('error')
        .slice(errorsBefore)
        .some((e) => {
          const m = /^message from mallory .*epoch (\d+)/.exec(e.message);
          return (e.code === 'RetiredEpoch' || e.code === 'UnknownEpoch') && Number(m?.[1]) === epoch;
        });
    await alice.waitFor(() => delivered() || refused(), `mallory's sentinel ${prefix}${attempt}`);
    if (delivered()) return;
  }
  throw new Error(`no sentinel of run ${run} was delivered`);
}

let runNo = 0;
/** Honest messages refused as RetiredEpoch after a storm of requested re-keys (reported, not hidden). */
let retiredHonest = 0;

function errorCodes(m: TestMember): string[] {
  return m.of('error').map((e) => e.code);
}

describe('client receive path under generated hostile frames', () => {
  it('never crashes, reports only documented typed errors, keeps chatting and still delivers', async () => {
    await fc.assert(
      fc.asyncProperty(fc.array(fuzz, { minLength: 1, maxLength: 6 }), async (frames) => {
        const run = ++runNo;
        const epochBefore = alice.engine.key?.epoch ?? 0;
        for (const f of frames) sendFuzz(f);

        // mallory's frames reach alice in order: once her sentinel is delivered, all were handled.
        await syncSentinel(run);

        // Chatting (again) under the same or a newer key over the three members.
        await alice.waitFor(
          () =>
            alice.engine.state === 'Chatting' &&
            (alice.engine.key?.epoch ?? 0) >= epochBefore &&
            alice.engine.key?.members.join(',') === THREE.join(','),
          `alice Chatting over ${THREE.join(',')} at epoch ≥ ${epochBefore}`,
        );

        // A genuine message from the honest member still arrives. Known limit (docs/client.md): when
        // generated REKEY_REQUESTs make alice re-key twice while bob's message is on its way, its epoch
        // is retired on arrival; that is a typed, visible RetiredEpoch, and bob's next message arrives.
        for (let attempt = 0; ; attempt++) {
          const honest = `honest ${run}.${attempt}`;
          const errorsBefore = alice.of('error').length;
          bob.engine.send(honest);
          const delivered = () => alice.of('message').some((m) => m.from === 'bob' && m.text === honest);
          const retired = () =>
            alice
              .of('error')
              .slice(errorsBefore)
              .some((e) => e.code === 'RetiredEpoch' && e.message.startsWith('message from bob'));
          await alice.waitFor(() => delivered() || retired(), `bob's message ${honest}`);
          if (delivered()) break;
          retiredHonest++;
          expect(attempt, 'bob never got a message through').toBeLessThan(5);
        }

        expect(crashes).toEqual([]);
        const undocumented = errorCodes(alice).filter((c) => !DOCUMENTED.has(c));
        expect(undocumented).toEqual([]);
        expect(['Failed', 'Reconnecting', 'Disconnected']).not.toContain(alice.engine.state);
      }),
      { numRuns: NUM_RUNS, endOnFailure: true },
    );

    // Every error was typed, and the barrage produced some of each kind worth checking.
    const codes = new Set(errorCodes(alice));
    for (const c of ['BadSignature', 'SchemaViolation', 'DecryptFailed', 'Replay', 'KeyEstablishment'])
      expect(codes, `no ${c} seen`).toContain(c);
    // Only mallory (and the injected "relay" frames) misbehaved: bob never saw a bad frame from alice.
    expect(errorCodes(bob).filter((c) => !DOCUMENTED.has(c))).toEqual([]);
    // alice sent nothing the relay refused.
    expect(alice.of('error').some((e) => e.message.startsWith('relay:'))).toBe(false);
    expect(crashes).toEqual([]);
    // Rare by construction (two re-keys inside one message's flight); most runs deliver first time.
    expect(retiredHonest).toBeLessThan(NUM_RUNS / 4);
    console.info(
      `receive-path properties: ${NUM_RUNS} runs, ${retiredHonest} honest message(s) retired by re-key storms`,
    );
  }, 240_000);

  it('after the barrage the group still re-keys when asked and delivers', async () => {
    const before = alice.engine.key?.epoch ?? 0;
    mallory.raw.destroy();
    // mallory's leave is a presence change, not a re-key; an honest request is one.
    await alice.waitFor(() => alice.engine.members.length === 2, 'mallory gone');
    bob.engine.requestRekey();
    await Promise.all([alice.waitForKey(['alice', 'bob']), bob.waitForKey(['alice', 'bob'])]);
    await waitForMembers(
      [alice, bob],
      () => (alice.engine.key?.epoch ?? 0) > before && alice.engine.key?.epoch === bob.engine.key?.epoch,
      'a new epoch for both',
    );
    expect(alice.engine.key?.epoch).toBeGreaterThan(before);
    expect(alice.engine.key?.safetyNumber).toBe(bob.engine.key?.safetyNumber);
    bob.engine.send('after mallory left');
    await alice.waitFor(
      () => alice.of('message').some((m) => m.from === 'bob' && m.text === 'after mallory left'),
      'the last message',
    );
    expect(crashes).toEqual([]);
  }, 60_000);
});
