/**
 * A member back after being away, with the relay's log on and today's keys (agreed by the members
 * online): what was said meanwhile was sealed for a key it never held, so the replay brings it
 * frames it cannot read. It says so once (not one error per frame), shows nothing twice, and
 * chats on with the others under the next key. Real relay and `chat --json` processes.
 */
import { mkdtempSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterEach, describe, expect, it } from 'vitest';
import { makeLoadedGroup } from '../helpers/client-identities.js';
import { ChatProcess, cleanup, startRelay, type RelayProcess } from '../helpers/client-processes.js';

let running: { kill(): Promise<unknown> }[] = [];
let relay: RelayProcess | undefined;

afterEach(async () => {
  await cleanup(...running, relay);
  running = [];
  relay = undefined;
});

describe('a member back from being away (relay log on)', () => {
  it('reports what it cannot read once, shows nothing twice, and chats on', async () => {
    const g = makeLoadedGroup(['alice', 'bob', 'carol']);
    relay = await startRelay(g.group.relayBundle);
    const start = (name: string, stateDir?: string) => {
      const p = ChatProcess.start(name, g.group.bundles[name] as string, (relay as RelayProcess).address, {
        ...(stateDir ? { stateDir } : {}),
      });
      running.push(p);
      return p;
    };
    const carolState = mkdtempSync(join(tmpdir(), 'scx-state-carol-'));
    const alice = start('alice');
    const bob = start('bob');
    let carol = start('carol', carolState);
    const three = ['alice', 'bob', 'carol'];
    await Promise.all([alice, bob, carol].map((p) => p.waitForKey(three)));
    alice.send('before');
    await carol.waitForMessage('alice', 'before');
    carol.end();
    expect(await carol.exited).toBe(0);
    await alice.waitForKey(['alice', 'bob']);
    await bob.waitForKey(['alice', 'bob']);
    for (let i = 1; i <= 30; i++) alice.send(`while away ${i}`);
    await alice.waitFor((p) => p.of('sent').length >= 31, '31 sent');
    await bob.waitForMessage('alice', 'while away 30');

    carol = start('carol', carolState);
    await carol.waitForKey(three);
    await Promise.all([alice.waitForKey(three), bob.waitForKey(three)]);
    alice.send('welcome back');
    await carol.waitForMessage('alice', 'welcome back');
    const errors = carol.of('error');
    // One line for the frames it could not read, not one per frame; nothing else went wrong.
    expect(errors).toHaveLength(1);
    expect(errors[0]?.code).toBe('UnknownEpoch');
    expect(String(errors[0]?.message)).toMatch(/^30 message\(s\) sent while you were away/);
    // 'before' was shown in the first session; the new one shows only what it can read, once.
    expect(carol.messages().map((m) => m.text)).toEqual(['welcome back']);
  }, 120_000);
});
