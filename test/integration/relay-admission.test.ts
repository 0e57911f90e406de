/**
 * Admission under attack, against a real relay child process and real sockets on loopback:
 * login budgets (an insider failing logins must not lock other members out, and nobody is ever
 * told to stop retrying) and the pending pool (a flood of connections that never log in must not
 * take the members' slots). No timing assertions: the one time bound is the issue's behaviour
 * bound for a member under a flood (logged in, keyed and a message delivered within 10 s).
 */
import { afterEach, beforeAll, describe, expect, it } from 'vitest';
import { TestMember } from '../helpers/client-engine.js';
import { ConnectionFlood, loopbackAddresses } from '../helpers/connection-flood.js';
import { makeTestGroup, type TestGroup } from '../helpers/group.js';
import { loadIdentity, must, RawMember } from '../helpers/raw-member.js';
import { RecordingProxy } from '../helpers/recording-proxy.js';
import { startRelay, type RelayProcess } from '../helpers/relay-process.js';
import type { LocalIdentity } from '../../src-main/core/pki/local-identity.js';
import type { BodyOf } from '../../src-main/core/protocol/index.js';

let group: TestGroup;
const ids: Record<string, LocalIdentity> = {};
const id = (name: string): LocalIdentity => must(ids[name], name);
const cleanup: (() => unknown)[] = [];

beforeAll(() => {
  group = makeTestGroup(['alice', 'bob', 'dave', 'erin']);
  for (const n of ['alice', 'bob', 'dave', 'erin']) ids[n] = loadIdentity(must(group.bundles[n]), 'member');
});

afterEach(async () => {
  for (const f of cleanup.splice(0).reverse()) await f();
});

async function relayWith(args: string[]): Promise<RelayProcess> {
  const relay = await startRelay(group.relayBundle, ['--presence-interval-ms', '0', ...args]);
  cleanup.push(async () => expect(await relay.stop()).toBe(0));
  return relay;
}

function member(name: string, port: number): TestMember {
  const m = new TestMember(id(name), port);
  cleanup.push(() => m.kill());
  m.engine.start();
  return m;
}

/**
 * Waits until `m` chats under a key whose members (the roster's, M) include `members`; fails at
 * once if it gives up.
 */
async function chatting(m: TestMember, members: string[], timeoutMs = 30_000, since = 0): Promise<void> {
  const want = [...members].sort().join(',');
  await m.waitFor(
    () =>
      m.engine.state === 'Failed' ||
      (m.events.length > since &&
        m.engine.state === 'Chatting' &&
        members.every((n) => (m.engine.key?.members ?? []).includes(n))),
    `a key over ${want}`,
    timeoutMs,
  );
  expect(m.engine.state, JSON.stringify(m.of('state').slice(-3))).toBe('Chatting');
}

async function delivered(from: TestMember, to: TestMember, text: string, timeoutMs = 30_000): Promise<void> {
  from.engine.send(text);
  await to.waitFor(
    () => to.of('message').some((x) => x.from === from.name && x.text === text),
    `"${text}" from ${from.name}`,
    timeoutMs,
  );
}

/** Waits until the relay has logged a line matching `predicate` (checked as its stderr grows). */
function loggedByRelay(
  relay: RelayProcess,
  predicate: (line: Record<string, unknown>) => boolean,
  what: string,
  timeoutMs = 30_000,
): Promise<void> {
  const stderr = must(relay.child.stderr, 'relay stderr');
  return new Promise((resolve, reject) => {
    const check = (): void => {
      if (!relay.logs().some(predicate)) return;
      clearTimeout(timer);
      stderr.off('data', check);
      resolve();
    };
    const timer = setTimeout(() => {
      stderr.off('data', check);
      reject(new Error(`the relay did not log ${what}`));
    }, timeoutMs);
    stderr.on('data', check);
    check();
  });
}

function neverFailed(m: TestMember): void {
  expect(m.of('state').filter((s) => s.state === 'Failed')).toEqual([]);
}

/**
 * `name` logs in over its own TLS link with CONNECTIONs signed by someone else's key, again and
 * again, until it has made `attempts` failed logins or the relay says RateLimited.
 */
async function failLogins(
  port: number,
  name: string,
  attempts: number,
): Promise<{ failed: number; rateLimited?: BodyOf<'ERROR'> }> {
  let failed = 0;
  while (failed < attempts) {
    const m = await RawMember.open(id(name), { port });
    cleanup.push(() => m.destroy());
    await m.until(() => m.hello, 10_000, 'HELLO');
    let seen = 0;
    let fatal = false;
    while (!fatal && failed < attempts) {
      if (m.errors().length === seen) m.sendPayload(m.connectionFrame({ signer: id('erin') }));
      const err = await m.until(() => m.errors()[seen], 10_000, 'a refused login');
      seen++;
      if (err.code === 'RateLimited') {
        m.destroy();
        return { failed, rateLimited: err };
      }
      expect(err.code).toBe('AuthFailed');
      failed++;
      fatal = err.fatal;
    }
    m.destroy();
  }
  return { failed };
}

describe('login budgets', { timeout: 120_000 }, () => {
  it("an insider's 40 failed logins from 127.0.0.1 lock out neither bob nor a reconnecting alice", async () => {
    const relay = await relayWith([]);
    // alice goes through a proxy on the network path, so the test can cut her connection.
    const proxy = await RecordingProxy.start({ host: '127.0.0.1', port: relay.port });
    cleanup.push(() => proxy.close());
    const alice = member('alice', proxy.port);
    await alice.waitFor(() => alice.engine.members.some((m) => m.name === 'alice'), 'alice in');

    // More failed logins than the 30 a minute one address may make.
    const dave = await failLogins(relay.port, 'dave', 40);
    expect(dave.failed).toBeGreaterThan(0);

    const bob = member('bob', relay.port);
    await chatting(bob, ['alice', 'bob']);
    await chatting(alice, ['alice', 'bob']);
    await delivered(bob, alice, 'bob is in');

    const before = alice.events.length;
    const link = must(proxy.latest, 'alice on the proxy');
    link.client.destroy();
    link.upstream.destroy();
    await alice.waitFor(
      () => alice.events.slice(before).some((e) => e.event === 'state' && e.state === 'Reconnecting'),
      'alice noticing the drop',
    );
    const dropped = alice.events.length;
    await chatting(alice, ['alice', 'bob'], 30_000, dropped);
    await delivered(alice, bob, 'alice is back');
    neverFailed(alice);
    neverFailed(bob);
  });

  it('an insider who spent his own budget is told RateLimited with a retry time; his client waits it out and gets in', async () => {
    const relay = await relayWith(['--identity-auth-failures', '6']);
    const alice = member('alice', relay.port);
    await alice.waitFor(() => alice.engine.members.some((m) => m.name === 'alice'), 'alice in');

    const spent = await failLogins(relay.port, 'dave', 40);
    const refusal = must(spent.rateLimited, 'ERROR RateLimited');
    expect(refusal.fatal).toBe(true);
    expect(refusal.retryAfterMs).toBeGreaterThan(0);
    expect(refusal.retryAfterMs).toBeLessThanOrEqual(60_000);

    // Another identity from the same address is not refused.
    const erin = await RawMember.join(id('erin'), { port: relay.port });
    erin.destroy();
    await alice.waitFor(
      () => alice.engine.members.map((m) => m.name).join(',') === 'alice',
      'erin gone again',
    );

    const dave = member('dave', relay.port);
    await dave.waitFor(() => dave.of('error').some((e) => e.code === 'RateLimited'), 'RateLimited');
    await chatting(dave, ['alice', 'dave']);
    await delivered(dave, alice, 'dave waited his turn');
    neverFailed(dave);

    // Every wait the client chose after a RateLimited was at least the relay's retry time.
    const told = relay
      .logs()
      .filter((l) => l.event === 'refused' && l.code === 'RateLimited' && l.name === 'dave')
      .map((l) => Number(l.retryAfterMs));
    const refusals = dave.of('error').filter((e) => e.code === 'RateLimited').length;
    const waits: number[] = [];
    let afterRefusal = false;
    for (const e of dave.events) {
      if (e.event === 'error' && e.code === 'RateLimited') afterRefusal = true;
      if (e.event === 'state' && e.state === 'Reconnecting' && afterRefusal) {
        waits.push(must(e.retryInMs, 'retryInMs'));
        afterRefusal = false;
      }
    }
    expect(waits).toHaveLength(refusals);
    const forClient = told.slice(-refusals);
    waits.forEach((w, i) => expect(w).toBeGreaterThanOrEqual(must(forClient[i], 'a logged retry time')));
  });
});

describe('pending pool', { timeout: 180_000 }, () => {
  it('1,000 connections from 100 other addresses that never log in leave room for members', async () => {
    const relay = await relayWith(['--log-level', 'warn']);
    const flood = new ConnectionFlood({
      port: relay.port,
      addresses: loopbackAddresses(100),
      perAddress: 10,
    });
    cleanup.push(() => flood.stop());
    await flood.start();
    // Every flood connection reached the relay, and the relay has dealt with (closed) at least
    // half of them: the flood is in full swing before the first member arrives.
    await flood.relayClosed(flood.size / 2);
    // And the relay reports it: pending connections evicted, connections over the address cap closed.
    await loggedByRelay(
      relay,
      (l) => l.event === 'admission-pressure' && Number(l.evicted) > 0 && Number(l.refusedPerAddress) > 0,
      'admission pressure with evictions',
    );

    const budget = Date.now() + 10_000;
    const left = (): number => Math.max(1, budget - Date.now());
    const alice = member('alice', relay.port);
    const bob = member('bob', relay.port);
    await chatting(alice, ['alice', 'bob'], left());
    await chatting(bob, ['alice', 'bob'], left());
    await delivered(alice, bob, 'through the flood', left());
    neverFailed(alice);
    neverFailed(bob);

    expect(relay.alive()).toBe(true);
    expect(relay.logs().filter((l) => l.event === 'internal-error')).toEqual([]);
  });
});
