/**
 * The terminal client's rough edges, with real processes: a relay address where nothing listens
 * (one hint, json lines unchanged), leaving with unsent messages (exit 3), a state store that the
 * key does not open (exit 1, typed), and a signing failure reported as SignFailed (in-process
 * engine against the relay process).
 */
import { createServer } from 'node:net';
import { mkdtempSync, readFileSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterEach, beforeAll, describe, expect, it } from 'vitest';
import { SALT_FILE } from '../../src-main/client/state/store-key.js';
import type { LocalIdentity } from '../../src-main/core/pki/local-identity.js';
import { TestMember } from '../helpers/client-engine.js';
import { makeLoadedGroup, type LoadedGroup } from '../helpers/client-identities.js';
import { ChatProcess, cleanup, startRelay, type RelayProcess } from '../helpers/client-processes.js';

let g: LoadedGroup;
let relay: RelayProcess | undefined;
let running: { kill(): Promise<unknown> }[] = [];

beforeAll(() => {
  g = makeLoadedGroup(['alice', 'bob']);
});

afterEach(async () => {
  await cleanup(...running);
  running = [];
  await cleanup(relay);
  relay = undefined;
});

/** A port where nothing listens: bound once by us, then closed. */
async function closedPort(): Promise<number> {
  const server = createServer();
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  const port = (server.address() as { port: number }).port;
  await new Promise<void>((resolve) => server.close(() => resolve()));
  return port;
}

const HINT = /still unreachable after 5 tries; check the address \(127\.0\.0\.1:\d+\)/g;

describe('chat: a relay address where nothing listens', () => {
  it('--json: every state line as before, and one hint on stderr', async () => {
    const address = `127.0.0.1:${await closedPort()}`;
    const p = ChatProcess.start('alice', g.group.bundles.alice as string, address);
    running.push(p);
    await p.waitFor(
      (x) => x.of('state').filter((s) => s.state === 'Reconnecting').length >= 10,
      '10 attempts',
    );
    const reconnecting = p.of('state').filter((s) => s.state === 'Reconnecting');
    for (const s of reconnecting) {
      expect(Object.keys(s)).toEqual(['event', 'state', 'reason', 'retryInMs']);
      expect(s.reason).toMatch(/ECONNREFUSED/);
    }
    expect(p.badLines).toEqual([]);
    expect(p.stderr.match(HINT)?.length).toBe(1);
  }, 60_000);

  it('human output: five attempt lines, the hint once, then quiet while the reason stays the same', async () => {
    const address = `127.0.0.1:${await closedPort()}`;
    const p = ChatProcess.start('alice', g.group.bundles.alice as string, address, { json: false });
    running.push(p);
    await p.waitFor((x) => (x.stderr.match(HINT)?.length ?? 0) > 0, 'the hint');
    p.end();
    await p.exited;
    expect(p.stderr.match(HINT)?.length).toBe(1);
    expect(p.badLines.filter((l) => l.startsWith('* Reconnecting')).length).toBe(5);
  }, 60_000);
});

describe('chat: exit codes', () => {
  it('leaving with messages never sent exits 3 and says how many on stderr', async () => {
    relay = await startRelay(g.group.relayBundle);
    const p = ChatProcess.start('alice', g.group.bundles.alice as string, relay.address, {
      extraArgs: ['--drain-timeout-ms', '200'],
    });
    running.push(p);
    // Alone online is legal (the key is sealed for bob too); a frozen relay never acknowledges.
    await p.waitFor((x) => x.state === 'Chatting', 'alone, chatting');
    const r = relay;
    r.proc.kill('SIGSTOP');
    p.send('nobody hears this');
    p.send('nor this');
    p.end();
    const code = await p.exited;
    r.proc.kill('SIGCONT');
    expect(code).toBe(3);
    expect(p.of('error').map((e) => e.code)).toContain('Unsent');
    expect(p.stderr).toMatch(/securechat-x: 2 message\(s\) were not sent/);
  }, 60_000);

  it('leaving with everything sent (stored for bob, who is offline) exits 0', async () => {
    relay = await startRelay(g.group.relayBundle);
    const p = ChatProcess.start('alice', g.group.bundles.alice as string, relay.address);
    running.push(p);
    await p.waitFor((x) => x.state === 'Chatting', 'connected');
    p.send('stored for bob');
    await p.waitFor((x) => x.of('sent').length === 1, 'the message stored');
    p.end();
    expect(await p.exited).toBe(0);
  }, 60_000);

  it('a state store the key does not open: exit 1, one typed line', async () => {
    relay = await startRelay(g.group.relayBundle);
    const stateDir = mkdtempSync(join(tmpdir(), 'scx-state-wrong-'));
    const first = ChatProcess.start('alice', g.group.bundles.alice as string, relay.address, { stateDir });
    running.push(first);
    await first.waitFor((x) => x.state === 'Chatting', 'connected');
    first.end();
    expect(await first.exited).toBe(0);
    // Another salt: the same password now makes another key, as another password would.
    const salt = JSON.parse(readFileSync(join(stateDir, SALT_FILE), 'utf8')) as { salt: string };
    writeFileSync(join(stateDir, SALT_FILE), JSON.stringify({ ...salt, salt: 'ab'.repeat(16) }));
    const second = ChatProcess.start('alice', g.group.bundles.alice as string, relay.address, { stateDir });
    running.push(second);
    expect(await second.exited).toBe(1);
    expect(second.stderr.trimEnd().split('\n')).toHaveLength(1);
    expect(second.stderr).toMatch(
      /^securechat-x: state store .* cannot be opened with this key .*\[StateKeyWrong\]/,
    );
  }, 60_000);
});

describe('engine: a signing failure', () => {
  it('is reported as SignFailed, and the message is sent once signing works again', async () => {
    relay = await startRelay(g.group.relayBundle);
    const real = g.identities.alice as LocalIdentity;
    let failNext = false;
    // alice's identity with a signer that fails once on demand; everything else is the real one.
    const flaky = new Proxy(real, {
      get(target, prop) {
        if (prop === 'signAsync') {
          return (data: Uint8Array) => {
            if (failNext) {
              failNext = false;
              return Promise.reject(new Error('the key store is locked'));
            }
            return target.signAsync(data);
          };
        }
        const v: unknown = Reflect.get(target, prop, target);
        return typeof v === 'function' ? (v as (...a: unknown[]) => unknown).bind(target) : v;
      },
    });
    const alice = new TestMember(flaky, relay.port);
    const bob = new TestMember(g.identities.bob as LocalIdentity, relay.port);
    running.push(alice, bob);
    alice.engine.start();
    bob.engine.start();
    await Promise.all([alice.waitForKey(['alice', 'bob']), bob.waitForKey(['alice', 'bob'])]);
    failNext = true;
    alice.engine.send('first try fails');
    await alice.waitFor(() => alice.of('error').some((e) => e.code === 'SignFailed'), 'SignFailed');
    expect(alice.of('error').some((e) => e.code === 'BadFrame')).toBe(false);
    alice.engine.send('second');
    await bob.waitFor(() => bob.of('message').some((m) => m.text === 'second'), 'the second message');
    await bob.waitFor(() => bob.of('message').some((m) => m.text === 'first try fails'), 'the first message');
  }, 60_000);
});
