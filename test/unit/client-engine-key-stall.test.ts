/**
 * Regression test for 7af46de ("a key over a superseded membership no longer ends key
 * establishment"), deterministic: the relay is a script in this process, so the test decides the
 * exact order of every frame instead of hoping a race happens.
 *
 * The sequence: alice (a real ChatEngine) is the initiator of a round over PRESENCE v1 = {alice,
 * bob}. Before bob's NONCE_RESPONSE reaches her, PRESENCE v2 = {alice, bob, carol} arrives and
 * carol's certificate is still being fetched. Then the v1 round completes: alice holds a key over
 * {alice, bob}. Before the fix she ignored carol's certificate when it came (a stall: no key over
 * v2, ever). Since epochs over the roster (no roster here: the transitional presence fallback),
 * presence never re-keys: alice chats on under her key, and carol, who holds none, asks for one
 * (REKEY_REQUEST key-missing); alice ends with a key over v2's members.
 *
 * bob and carol are KeyEstablishment machines (the engine's own state machine, no I/O) driven by
 * the script. The engine is reached only through its socket: no production seam was added.
 */
import { randomBytes } from 'node:crypto';
import { createServer, type AddressInfo, type Server, type Socket } from 'node:net';
import { afterEach, beforeAll, describe, expect, it } from 'vitest';
import { KeyEstablishment, type EstablishedKey } from '../../src-main/client/key-establishment.js';
import { sessionTag } from '../../src-main/core/link/session-tag.js';
import { acceptLink } from '../../src-main/core/link/tls.js';
import { sortMembers } from '../../src-main/client/key-schedule.js';
import type { LocalIdentity } from '../../src-main/core/pki/local-identity.js';
import {
  decodeBody,
  encodeFrame,
  FrameDecoder,
  readHeader,
  sealMessage,
  verifyHeader,
  type BodyOf,
  type MessageType,
} from '../../src-main/core/protocol/index.js';
import { TestMember } from '../helpers/client-engine.js';
import { makeLoadedGroup, type LoadedGroup } from '../helpers/client-identities.js';
import { loadIdentity } from '../helpers/raw-member.js';
import { keyListDeps } from '../helpers/key-bus.js';

interface FromEngine {
  type: MessageType;
  target: string;
  body: unknown;
}

/** One scripted relay connection: frames from the engine are recorded; the test sends what it wants. */
class ScriptedRelay {
  readonly received: FromEngine[] = [];
  private socket: Socket | undefined;
  private session: Buffer | undefined;
  private readonly waiters = new Set<() => void>();

  private constructor(
    private readonly server: Server,
    readonly port: number,
    private readonly relay: LocalIdentity,
    private readonly client: LocalIdentity,
  ) {}

  static async start(relay: LocalIdentity, client: LocalIdentity): Promise<ScriptedRelay> {
    const server = createServer();
    await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
    const r = new ScriptedRelay(server, (server.address() as AddressInfo).port, relay, client);
    // The engine only speaks over the TLS link: terminate it with the relay's certificate.
    server.on('connection', (raw) => {
      const s = acceptLink(raw, relay.linkContext);
      s.on('error', () => undefined);
      s.once('secure', () => r.accept(s));
    });
    return r;
  }

  private accept(socket: Socket): void {
    this.socket = socket;
    const decoder = new FrameDecoder();
    socket.on('data', (chunk: Buffer) => {
      for (const frame of decoder.push(chunk)) {
        const header = readHeader(frame);
        verifyHeader(header, this.client.certificate.publicKey); // alice signs everything she sends
        this.received.push({
          type: header.type,
          target: header.target,
          body: decodeBody(header.type, header.body),
        });
      }
      for (const w of this.waiters) w();
    });
    socket.on('error', () => undefined);
    this.fromRelay(
      'HELLO',
      { challenge: randomBytes(32), relay: this.relay.name, maxFrameBytes: 1024 * 1024 },
      true,
    );
  }

  /**
   * A relay-originated frame (HELLO carries the relay certificate, the rest its fingerprint), bound
   * to the session of the HELLO sent on this connection as the real relay binds them.
   */
  fromRelay<T extends MessageType>(
    type: T,
    body: Omit<BodyOf<T>, 'session' | 'sessions'>,
    withCertificate = false,
  ): void {
    const sender = withCertificate
      ? { kind: 'certificate' as const, der: this.relay.certificate.der }
      : { kind: 'fingerprint' as const, fingerprint: this.relay.certificate.fingerprint };
    if (type === 'HELLO') this.session = (body as unknown as BodyOf<'HELLO'>).challenge;
    const bound =
      type === 'PRESENCE'
        ? { sessions: [sessionTag(this.session ?? Buffer.alloc(32))] }
        : { session: this.session };
    const full = (type === 'HELLO' ? body : { ...bound, ...body }) as BodyOf<T>;
    this.write(sealMessage(type, sender, '', full, (d) => this.relay.sign(d)));
  }

  /** A member frame, as the real relay forwards it: signed end to end by `from`. */
  fromMember<T extends MessageType>(from: LocalIdentity, type: T, target: string, body: BodyOf<T>): void {
    this.write(
      sealMessage(
        type,
        { kind: 'fingerprint', fingerprint: from.certificate.fingerprint },
        target,
        body,
        (d) => from.sign(d),
      ),
    );
  }

  private write(payload: Buffer): void {
    if (!this.socket) throw new Error('the engine is not connected');
    this.socket.write(encodeFrame(payload));
  }

  /** The received frames matching `filter`, once there are `count` of them. */
  async waitFor<T extends MessageType>(
    type: T,
    filter: (body: BodyOf<T>, target: string) => boolean = () => true,
    count = 1,
  ): Promise<{ target: string; body: BodyOf<T> }[]> {
    const matching = () =>
      this.received
        .filter((f) => f.type === type && filter(f.body as BodyOf<T>, f.target))
        .map((f) => ({ target: f.target, body: f.body as BodyOf<T> }));
    return new Promise((resolve, reject) => {
      const check = () => {
        const found = matching();
        if (found.length >= count) {
          clearTimeout(timer);
          this.waiters.delete(check);
          resolve(found);
        }
      };
      const timer = setTimeout(() => {
        this.waiters.delete(check);
        reject(
          new Error(
            `no ${count} × ${type} from the engine; got ${this.received.map((f) => f.type).join(', ')}`,
          ),
        );
      }, 20_000);
      this.waiters.add(check);
      check();
    });
  }

  async close(): Promise<void> {
    this.socket?.destroy();
    await new Promise<void>((resolve) => this.server.close(() => resolve()));
  }
}

/** A member played by the script: the engine's own key-establishment machine, its sends captured. */
class ScriptedMember {
  readonly machine: KeyEstablishment;
  readonly keys: EstablishedKey[] = [];
  readonly outbox: { type: MessageType; target: string; body: unknown }[] = [];
  readonly problems: string[] = [];

  constructor(
    readonly identity: LocalIdentity,
    certificates: Map<string, LocalIdentity>,
  ) {
    this.machine = new KeyEstablishment({
      identity,
      certificateOf: (n) => certificates.get(n)?.certificate,
      send: (type, target, body) => this.outbox.push({ type, target, body }),
      ...keyListDeps(this.keys),
      onKey: (k) => this.keys.push(k),
      onProblem: (m) => this.problems.push(m),
    });
  }

  /** Takes what this member sent since the last call. */
  take(): { type: MessageType; target: string; body: unknown }[] {
    return this.outbox.splice(0);
  }
}

let g: LoadedGroup;
let relayId: LocalIdentity;
const cleanup: (() => Promise<void>)[] = [];

beforeAll(() => {
  g = makeLoadedGroup(['alice', 'bob', 'carol']);
  relayId = loadIdentity(g.group.relayBundle, 'relay');
});

afterEach(async () => {
  for (const c of cleanup.splice(0)) await c();
});

const presence = (version: number, ids: LocalIdentity[]): Omit<BodyOf<'PRESENCE'>, 'sessions'> => ({
  version,
  members: ids.map((i) => ({ name: i.name, fingerprint: i.certificate.fingerprintHex })),
});

describe('key establishment across a membership change (stall fix 7af46de)', () => {
  it('a round over PRESENCE v1 that completes while v2 certificates are fetched does not end establishment', async () => {
    const [alice, bob, carol] = (['alice', 'bob', 'carol'] as const).map(
      (n) => g.identities[n] as LocalIdentity,
    ) as [LocalIdentity, LocalIdentity, LocalIdentity];
    const certs = new Map([alice, bob, carol].map((i) => [i.name, i]));
    const relay = await ScriptedRelay.start(relayId, alice);
    cleanup.push(() => relay.close());
    // A long key timeout: no failover or certificate retry may act behind the script's back.
    const engine = new TestMember(alice, relay.port, { keyEstablishmentTimeoutMs: 120_000 });
    cleanup.push(() => engine.kill());
    engine.engine.start();

    // Login, PRESENCE v1 = {alice, bob}, bob's certificate.
    await relay.waitFor('CONNECTION');
    relay.fromRelay('PRESENCE', presence(1, [alice, bob]));
    const [certRequest1] = await relay.waitFor('CERT_REQUEST');
    expect(certRequest1?.body.names).toEqual(['bob']);
    relay.fromRelay('CERT_RESPONSE', {
      certificates: [{ name: 'bob', certificate: bob.certificate.der }],
      unknown: [],
    });

    // alice (M[0]) starts epoch 1 over {alice, bob}; bob answers, and the script holds the answer.
    const [request1] = await relay.waitFor('NONCE_REQUEST', (_b, target) => target === 'bob');
    const r1 = request1?.body as BodyOf<'NONCE_REQUEST'>;
    expect(r1.members).toEqual(['alice', 'bob']);
    expect(r1.membershipVersion).toBe(1);
    const bobM = new ScriptedMember(bob, certs);
    bobM.machine.setMembership(['alice', 'bob'], 1);
    bobM.take(); // bob, live without a key, asked alice for one (she is on it already)
    bobM.machine.onNonceRequest('alice', r1);
    const heldResponse = bobM.take();
    expect(heldResponse.map((f) => f.type)).toEqual(['NONCE_RESPONSE']);

    // PRESENCE v2 = {alice, bob, carol}: carol's certificate is asked for and not answered yet.
    relay.fromRelay('PRESENCE', presence(2, [alice, bob, carol]));
    const [certRequest2] = await relay.waitFor('CERT_REQUEST', (b) => b.names.includes('carol'));
    expect(certRequest2?.body.names).toEqual(['carol']);
    expect(engine.engine.state).toBe('CertExchange');

    // Now the v1 round completes: alice derives a key over {alice, bob} and distributes it.
    relay.fromMember(bob, 'NONCE_RESPONSE', 'alice', heldResponse[0]?.body as BodyOf<'NONCE_RESPONSE'>);
    await relay.waitFor('KEY_DISTRIBUTION', (_b, target) => target === 'bob');
    await engine.waitFor(() => engine.of('key').length === 1, 'the v1 key');
    expect(engine.of('key')[0]?.members).toEqual(['alice', 'bob']);

    // carol's certificate arrives: a presence change, so no round of alice's own…
    relay.fromRelay('CERT_RESPONSE', {
      certificates: [{ name: 'carol', certificate: carol.certificate.der }],
      unknown: [],
    });
    await engine.waitFor(() => engine.engine.members.length === 3, 'carol in the members');
    const members2 = sortMembers(['alice', 'bob', 'carol']);
    const carolM = new ScriptedMember(carol, certs);
    for (const m of [bobM, carolM]) m.machine.setMembership(members2, 2);
    bobM.take();
    // …but carol, live without a key, asks alice for one.
    const asks = carolM.take();
    expect(asks.map((f) => [f.type, f.target, (f.body as BodyOf<'REKEY_REQUEST'>).reason])).toEqual([
      ['REKEY_REQUEST', 'alice', 'key-missing'],
    ]);
    relay.fromMember(carol, 'REKEY_REQUEST', 'alice', asks[0]?.body as BodyOf<'REKEY_REQUEST'>);
    const requests2 = await relay.waitFor('NONCE_REQUEST', (b) => b.membershipVersion === 2, 2);
    expect(requests2.map((r) => r.target).sort()).toEqual(['bob', 'carol']);
    for (const r of requests2) {
      expect(r.body.members).toEqual(members2);
      expect(r.body.epoch).toBeGreaterThan(1);
      const m = r.target === 'bob' ? bobM : carolM;
      m.machine.onNonceRequest('alice', r.body);
      for (const f of m.take())
        relay.fromMember(m.identity, f.type, f.target, f.body as BodyOf<'NONCE_RESPONSE'>);
    }
    const distributions = await relay.waitFor(
      'KEY_DISTRIBUTION',
      (b) => b.epoch === requests2[0]?.body.epoch,
      2,
    );
    for (const d of distributions)
      (d.target === 'bob' ? bobM : carolM).machine.onKeyDistribution('alice', d.body);

    await engine.waitForKey(members2);
    const key = engine.engine.key;
    expect(key?.members).toEqual(members2);
    expect(key?.epoch).toBe(requests2[0]?.body.epoch);
    for (const m of [bobM, carolM]) {
      expect(m.problems).toEqual([]);
      expect(m.keys.at(-1)?.epoch).toBe(key?.epoch);
      expect(m.keys.at(-1)?.derived.safetyNumber).toBe(key?.safetyNumber);
    }
    expect(engine.of('error')).toEqual([]);
  });

  it('the state machine alone: a finished v1 round leaves the machine ready for v2 (carol asks for a key)', () => {
    // The same sequence one layer down, without the engine: KeyEstablishment never blocks v2.
    const [alice, bob, carol] = (['alice', 'bob', 'carol'] as const).map(
      (n) => g.identities[n] as LocalIdentity,
    ) as [LocalIdentity, LocalIdentity, LocalIdentity];
    const certs = new Map([alice, bob, carol].map((i) => [i.name, i]));
    const [a, b, c] = [alice, bob, carol].map((i) => new ScriptedMember(i, certs)) as [
      ScriptedMember,
      ScriptedMember,
      ScriptedMember,
    ];
    const byName = new Map([a, b, c].map((m) => [m.identity.name, m]));
    const deliver = (from: ScriptedMember) => {
      for (const f of from.take()) {
        const to = byName.get(f.target)?.machine;
        const name = from.identity.name;
        if (f.type === 'NONCE_REQUEST') to?.onNonceRequest(name, f.body as BodyOf<'NONCE_REQUEST'>);
        if (f.type === 'NONCE_RESPONSE') to?.onNonceResponse(name, f.body as BodyOf<'NONCE_RESPONSE'>);
        if (f.type === 'KEY_DISTRIBUTION') to?.onKeyDistribution(name, f.body as BodyOf<'KEY_DISTRIBUTION'>);
        if (f.type === 'REKEY_REQUEST') to?.onRekeyRequest(name, f.body as BodyOf<'REKEY_REQUEST'>);
      }
    };
    for (const m of [a, b]) m.machine.setMembership(['alice', 'bob'], 1);
    deliver(a); // NONCE_REQUEST v1 -> bob
    const late = b.take().filter((f) => f.type === 'NONCE_RESPONSE'); // bob's answer, held
    // v2 arrives at bob and carol (their certificates settled); alice is still fetching carol's.
    for (const m of [b, c]) m.machine.setMembership(['alice', 'bob', 'carol'], 2);
    for (const f of late) a.machine.onNonceResponse('bob', f.body as BodyOf<'NONCE_RESPONSE'>);
    expect(a.keys.map((k) => k.members)).toEqual([['alice', 'bob']]);
    deliver(a); // KEY_DISTRIBUTION v1: what bob answered for, so bob takes it
    expect(b.keys.map((k) => k.members)).toEqual([['alice', 'bob']]);
    // alice's certificates settle (no re-key of her own); carol's key-missing brings v2 above it.
    a.machine.setMembership(['alice', 'bob', 'carol'], 2);
    expect(a.take()).toEqual([]);
    for (let i = 0; i < 5; i++) for (const m of [a, b, c]) deliver(m);
    for (const m of [a, b, c]) {
      expect(m.keys.at(-1)?.members).toEqual(['alice', 'bob', 'carol']);
      expect(m.keys.at(-1)?.epoch).toBe(2);
      expect(m.keys.at(-1)?.derived.safetyNumber).toBe(a.keys.at(-1)?.derived.safetyNumber);
    }
    expect([...a.problems, ...b.problems, ...c.problems]).toEqual([]);
  });
});
