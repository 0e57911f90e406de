/**
 * A member back after being away, with the relay's log on and keys over the roster: the key of
 * what was said meanwhile was sealed for it too and stored, so the replay brings everything it
 * missed, readable, once, in order; nobody re-keys because it left or came back. Real relay and
 * `chat --json` processes. (Frames under a key a member never held are reported once, not one
 * error each: test/unit/client-log-follower.test.ts.)
 */
import { mkdtempSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterEach, describe, expect, it } from 'vitest';
import { makeLoadedGroup } from '../helpers/client-identities.js';
import {
  ChatProcess,
  cleanup,
  startRelay,
  waitForAgreedKey,
  type RelayProcess,
} from '../helpers/client-processes.js';

let running: { kill(): Promise<unknown> }[] = [];
let relay: RelayProcess | undefined;

afterEach(async () => {
  await cleanup(...running, relay);
  running = [];
  relay = undefined;
});

describe('a member back from being away (relay log on)', () => {
  it('reads what was said while it was away, once and in order, and chats on without a re-key', async () => {
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
    const { epoch } = await waitForAgreedKey([alice, bob, carol], three);
    alice.send('before');
    await carol.waitForMessage('alice', 'before');
    carol.end();
    expect(await carol.exited).toBe(0);
    for (let i = 1; i <= 30; i++) alice.send(`while away ${i}`);
    await alice.waitFor((p) => p.of('sent').length >= 31, '31 sent');
    await bob.waitForMessage('alice', 'while away 30');

    carol = start('carol', carolState);
    await carol.waitForMessage('alice', 'while away 30');
    alice.send('welcome back');
    await carol.waitForMessage('alice', 'welcome back');
    expect(carol.of('error')).toEqual([]);
    // 'before' was shown in the first session; the new one shows what it missed, once, in order.
    expect(carol.messages().map((m) => m.text)).toEqual([
      ...Array.from({ length: 30 }, (_, i) => `while away ${i + 1}`),
      'welcome back',
    ]);
    // Leaving and coming back are presence changes: one key throughout.
    for (const p of [alice, bob, carol]) expect(p.lastKey()?.epoch).toBe(epoch);
    expect(carol.messages().every((m) => m.epoch === epoch)).toBe(true);
  }, 120_000);
});
