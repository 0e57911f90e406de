/**
 * The link's guarantees, from outside, with a real relay process:
 * - relay-signed frames are bound to their session: a genuine, correctly signed ERROR or PRESENCE
 *   taken from another session (the attack: an ERROR AuthFailed obtained by a junk login, a
 *   PRESENCE recorded before a relay restart) is refused and changes nothing;
 * - heartbeats: a frozen relay (SIGSTOP) is noticed and the member reconnects once it is back,
 *   delivering what was typed meanwhile; a member whose host went silent is dropped by the relay.
 *
 * Frames are injected from the relay host's position (the recording proxy terminates TLS with the
 * relay's key): on the network path, TLS leaves nothing to inject into.
 */
import { once } from 'node:events';
import { readFileSync } from 'node:fs';
import { connect as tlsConnect, type ConnectionOptions, type TLSSocket } from 'node:tls';
import { afterEach, beforeAll, describe, expect, it } from 'vitest';
import { TLS_CIPHER_SUITES } from '../../src-main/core/link/tls.js';
import { readBundle } from '../../src-main/core/pki/bundle.js';
import type { LocalIdentity } from '../../src-main/core/pki/local-identity.js';
import { readHeader } from '../../src-main/core/protocol/index.js';
import { TestMember } from '../helpers/client-engine.js';
import { makeLoadedGroup, type LoadedGroup } from '../helpers/client-identities.js';
import { TEST_PASSWORD } from '../helpers/group.js';
import { cleanup, FAST_RELAY_FLAGS, startRelay, type RelayProcess } from '../helpers/client-processes.js';
import { must, RawMember } from '../helpers/raw-member.js';
import { RecordingProxy } from '../helpers/recording-proxy.js';

let g: LoadedGroup;
let relay: RelayProcess | undefined;
const proxies: RecordingProxy[] = [];
let running: { kill(): Promise<unknown> }[] = [];
const raws: RawMember[] = [];

beforeAll(() => {
  g = makeLoadedGroup(['alice', 'bob', 'dave', 'erin']);
});

afterEach(async () => {
  for (const r of raws.splice(0)) r.destroy();
  await cleanup(...running);
  running = [];
  for (const p of proxies.splice(0)) await p.close();
  if (relay) {
    relay.proc.kill('SIGCONT');
    await cleanup(relay);
  }
  relay = undefined;
});

const id = (name: string): LocalIdentity => must(g.identities[name], name);

function errorCodes(m: TestMember): string[] {
  return m.of('error').map((e) => e.code);
}

describe('relay frames are bound to their session', { timeout: 120_000 }, () => {
  it('an ERROR signed for a junk login, and a Replaced from another session, do not end alice’s session', async () => {
    const r = await startRelay(g.group.relayBundle);
    relay = r;
    const proxy = await RecordingProxy.start(r, g.relayHost());
    proxies.push(proxy);
    const alice = new TestMember(id('alice'), proxy.port);
    const bob = new TestMember(id('bob'), r.port);
    running.push(alice, bob);
    alice.engine.start();
    bob.engine.start();
    await Promise.all([alice.waitForKey(['alice', 'bob']), bob.waitForKey(['alice', 'bob'])]);

    // Genuine relay-signed frames of other sessions, taken from a second relay process with the
    // same relay bundle (so the group stays alice and bob): an ERROR AuthFailed for a junk login
    // (dave's link with a CONNECTION signed by erin) and the fatal Replaced erin's first session
    // gets when she logs in again.
    const other = await startRelay(g.group.relayBundle);
    running.push(other);
    const junk = await RawMember.open(id('dave'), { port: other.port });
    raws.push(junk);
    await junk.until(() => junk.hello, 10_000, 'HELLO');
    junk.sendPayload(junk.connectionFrame({ signer: id('erin') }));
    const authFailed = await junk.waitForError('AuthFailed');
    const first = await RawMember.join(id('erin'), { port: other.port });
    raws.push(first);
    const second = await RawMember.join(id('erin'), { port: other.port });
    raws.push(second);
    const replaced = await first.waitForError('Replaced');
    expect(replaced.body.fatal).toBe(true);

    proxy.injectToClient(authFailed.raw);
    proxy.injectToClient(replaced.raw);
    await alice.waitFor(
      () => errorCodes(alice).filter((c) => c === 'WrongSession').length >= 2,
      'both injected frames refused as WrongSession',
    );
    expect(errorCodes(alice)).not.toContain('AuthFailed');
    expect(errorCodes(alice)).not.toContain('Replaced');
    expect(alice.engine.state).toBe('Chatting');
    expect(alice.of('state').some((s) => s.state === 'Failed' || s.state === 'Reconnecting')).toBe(false);

    alice.engine.send('still here');
    await bob.waitFor(
      () => bob.of('message').some((m) => m.text === 'still here'),
      'a message after the injection',
    );
  });

  it('a PRESENCE recorded before a relay restart is refused after it', async () => {
    const r1 = await startRelay(g.group.relayBundle);
    relay = r1;
    const port = r1.port;
    const proxy = await RecordingProxy.start({ host: '127.0.0.1', port }, g.relayHost());
    proxies.push(proxy);
    const alice = new TestMember(id('alice'), proxy.port);
    const bob = new TestMember(id('bob'), port);
    running.push(alice, bob);
    alice.engine.start();
    bob.engine.start();
    await Promise.all([alice.waitForKey(['alice', 'bob']), bob.waitForKey(['alice', 'bob'])]);
    // The PRESENCE listing {alice, bob} that alice received in the first relay's session.
    const recorded = must(
      proxy.latest?.toClient.filter((f) => readHeader(f).type === 'PRESENCE').at(-1),
      'a recorded PRESENCE',
    );

    await r1.kill('SIGKILL');
    relay = await startRelay(g.group.relayBundle, port, FAST_RELAY_FLAGS);
    await Promise.all([alice.waitForKey(['alice', 'bob']), bob.waitForKey(['alice', 'bob'])]);
    await alice.waitFor(
      () => alice.of('state').filter((s) => s.state === 'Chatting').length >= 2,
      'chatting again',
    );
    const keysBefore = alice.of('key').length;
    const wrongBefore = errorCodes(alice).filter((c) => c === 'WrongSession').length;
    // bob leaves; the replayed PRESENCE would claim he is still there.
    await bob.kill();
    await alice.waitFor(() => alice.engine.members.length === 1, 'bob gone');
    proxy.injectToClient(recorded);
    await alice.waitFor(
      () => errorCodes(alice).filter((c) => c === 'WrongSession').length > wrongBefore,
      'the replayed PRESENCE refused',
    );
    expect(alice.engine.members.map((m) => m.name)).toEqual(['alice']);
    expect(alice.of('key').length).toBe(keysBefore);
  });
});

describe('heartbeats', { timeout: 120_000 }, () => {
  it('a frozen relay is noticed ("Relay not responding"), and typed messages arrive once it is back', async () => {
    const r = await startRelay(g.group.relayBundle);
    relay = r;
    // Default heartbeat timings (5 s / 15 s): the 20 s bound of the issue is what runs here.
    const alice = new TestMember(id('alice'), r.port);
    const bob = new TestMember(id('bob'), r.port);
    running.push(alice, bob);
    alice.engine.start();
    bob.engine.start();
    await Promise.all([alice.waitForKey(['alice', 'bob']), bob.waitForKey(['alice', 'bob'])]);

    r.proc.kill('SIGSTOP');
    await alice.waitFor(
      () =>
        alice
          .of('state')
          .some((s) => s.state === 'Reconnecting' && /Relay not responding/.test(s.reason ?? '')),
      'alice noticing the frozen relay',
      60_000,
    );
    alice.engine.send('typed while the relay was frozen');
    expect(alice.engine.pending).toBe(1);
    r.proc.kill('SIGCONT');
    await bob.waitFor(
      () => bob.of('message').some((m) => m.text === 'typed while the relay was frozen'),
      'the queued message after the relay is back',
      60_000,
    );
    expect(bob.of('message').filter((m) => m.text === 'typed while the relay was frozen')).toHaveLength(1);
  });

  it('the relay drops a member whose host went silent, and tells the others', async () => {
    const r = await startRelay(g.group.relayBundle, 0, [
      ...FAST_RELAY_FLAGS,
      '--heartbeat-interval-ms',
      '300',
      '--heartbeat-timeout-ms',
      '1500',
    ]);
    relay = r;
    const alice = await RawMember.join(id('alice'), { port: r.port, heartbeatEveryMs: 200 });
    const silent = await RawMember.join(id('dave'), { port: r.port, heartbeatEveryMs: false });
    raws.push(alice, silent);
    await alice.waitForPresence(['alice', 'dave']);
    // dave never answers: its socket is open, nothing comes from it (a host that vanished).
    silent.socket.pause();
    await alice.waitForPresence(['alice']);
    // alice, who does heartbeat, is still there and still receives the relay's heartbeats.
    expect(alice.closed).toBe(false);
    await alice.until(() => alice.ofType('HEARTBEAT').length > 0, 10_000, "the relay's HEARTBEAT");
  });
});

describe('the TLS policy', { timeout: 120_000 }, () => {
  /** A TLS client with alice's certificate and `options`; resolves with the socket once up, or the error. */
  async function attempt(port: number, options: ConnectionOptions): Promise<TLSSocket | Error> {
    const alice = id('alice');
    const socket = tlsConnect({
      host: '127.0.0.1',
      port,
      secureContext: alice.linkContext,
      checkServerIdentity: () => undefined,
      ...options,
    });
    try {
      await Promise.race([
        once(socket, 'secureConnect'),
        once(socket, 'error').then(([err]) => Promise.reject(err as Error)),
      ]);
      return socket;
    } catch (err) {
      socket.destroy();
      return err as Error;
    }
  }

  it('speaks TLS 1.3 with a 256-bit suite, and refuses TLS 1.2 and any other suite', async () => {
    const r = await startRelay(g.group.relayBundle);
    relay = r;
    const ok = await attempt(r.port, {});
    expect(ok).not.toBeInstanceOf(Error);
    const up = ok as TLSSocket;
    expect(up.getProtocol()).toBe('TLSv1.3');
    expect(TLS_CIPHER_SUITES.split(':')).toContain(up.getCipher().standardName);
    up.destroy();

    // A member that offers only what the policy leaves out gets no link at all: its certificate
    // and key are fine, the version or the suite is not.
    const alice = readBundle(readFileSync(must(g.group.bundles.alice)), TEST_PASSWORD);
    const own = { key: alice.privateKeyPem, cert: alice.certificate.pem, ca: alice.ca.pem };
    const tls12 = await attempt(r.port, { secureContext: undefined, ...own, maxVersion: 'TLSv1.2' });
    expect(tls12).toBeInstanceOf(Error);
    expect((tls12 as Error).message).toMatch(/protocol|version|alert/i);
    const aes128 = await attempt(r.port, {
      secureContext: undefined,
      ...own,
      minVersion: 'TLSv1.3',
      ciphers: 'TLS_AES_128_GCM_SHA256',
    });
    expect(aes128).toBeInstanceOf(Error);
    expect((aes128 as Error).message).toMatch(/handshake|cipher|alert/i);
    // The same key and certificate with the policy's suite: up (so the refusals above are the policy's).
    const control = await attempt(r.port, { secureContext: undefined, ...own, minVersion: 'TLSv1.3' });
    expect(control).not.toBeInstanceOf(Error);
    (control as TLSSocket).destroy();
  });
});
