/**
 * A member PROCESS (`securechat-x chat --json`) is killed with SIGKILL while every member is
 * sending: no DISCONNECT, a socket the kernel closes. The relay (a real child process) must notice,
 * send PRESENCE without it, and the others must keep exchanging messages with nothing lost, under
 * the same epoch (a leave is a presence change, never a re-key: the key belongs to the roster). Counts and order are compared, never timings.
 */
import { afterEach, beforeAll, describe, expect, it } from 'vitest';
import { ChatProcess, cleanup } from '../helpers/client-processes.js';
import { makeTestGroup, type TestGroup } from '../helpers/group.js';
import { startRelay, type RelayProcess } from '../helpers/relay-process.js';

const NAMES = ['alice', 'bob', 'carol', 'dave'];
const SURVIVORS = ['alice', 'bob', 'carol'];
/** Messages per survivor in each phase: before the kill, right after it, after the PRESENCE. */
const PER_PHASE = 25;

let group: TestGroup;
let relay: RelayProcess | undefined;
let members: ChatProcess[] = [];

beforeAll(() => {
  group = makeTestGroup(NAMES);
});

afterEach(async () => {
  await cleanup(...members);
  members = [];
  await relay?.stop();
  relay = undefined;
});

const namesOf = (e: Record<string, unknown> | undefined): string[] =>
  ((e?.members as { name: string }[] | undefined) ?? []).map((m) => m.name);

describe('relay under attack: a member process killed mid-traffic', () => {
  it('announces it gone, the others keep their epoch and lose nothing', async () => {
    // Default log level (info): the test reads the relay's `left` and `presence` events.
    const r = await startRelay(group.relayBundle, ['--presence-interval-ms', '0', '--rate-frames', '0']);
    relay = r;
    const address = `127.0.0.1:${r.port}`;
    members = NAMES.map((n) => ChatProcess.start(n, group.bundles[n] as string, address));
    const byName = new Map(members.map((m) => [m.name, m]));
    const survivors = SURVIVORS.map((n) => byName.get(n) as ChatProcess);
    const dave = byName.get('dave') as ChatProcess;
    await Promise.all(members.map((m) => m.waitForKey(NAMES)));
    // Early joins may key more than once: start from one key for everyone.
    await Promise.all(
      members.map((m) =>
        m.waitFor(
          (p) => p.lastKey()?.safetyNumber === members[0]?.lastKey()?.safetyNumber && p.state === 'Chatting',
          'one key for everyone',
        ),
      ),
    );
    const epochBefore = survivors[0]?.lastKey()?.epoch as number;

    const sent = new Map<string, string[]>(NAMES.map((n) => [n, []]));
    const phase = (tag: string, who: ChatProcess[]) => {
      for (let i = 0; i < PER_PHASE; i++) {
        for (const m of who) {
          const text = `${m.name} ${tag} ${i}`;
          m.send(text);
          sent.get(m.name)?.push(text);
        }
      }
    };

    // Traffic from everyone, dave included; then dave dies without a word, mid-stream.
    phase('before', members);
    dave.proc.kill('SIGKILL');
    phase('during', survivors);
    expect(await dave.exited).toBeNull(); // killed by the signal, not exited
    expect(dave.proc.signalCode).toBe('SIGKILL');

    // The relay noticed the dead socket and told the others: PRESENCE without dave.
    const presenceWithoutDave = (): boolean => {
      const logs = r.logs();
      const leftAt = logs.findIndex((l) => l.event === 'left' && l.name === 'dave');
      return leftAt >= 0 && logs.slice(leftAt).some((l) => l.event === 'presence' && l.members === 3);
    };
    await expect.poll(presenceWithoutDave, { timeout: 20_000 }).toBe(true);
    for (const m of survivors) {
      await m.waitFor((p) => namesOf(p.of('members').at(-1)).join(',') === SURVIVORS.join(','), 'members');
    }

    // Still the epoch of before, the same key everywhere, chatting on.
    for (const m of survivors) {
      const seen = m.events.filter((e) => e.event !== 'message' && e.event !== 'sent');
      expect(m.lastKey()?.epoch, `${m.name}: ${JSON.stringify(seen.slice(-12))}`).toBe(epochBefore);
      expect(m.state).toBe('Chatting');
    }
    expect(new Set(survivors.map((m) => m.lastKey()?.safetyNumber)).size).toBe(1);

    phase('after', survivors);

    // Nothing lost between survivors: every message sent arrives once, in order.
    for (const to of survivors) {
      for (const from of survivors) {
        if (from === to) continue;
        const want = sent.get(from.name) ?? [];
        await to.waitFor(
          (p) => p.messages().filter((x) => x.from === from.name).length >= want.length,
          `${want.length} messages from ${from.name}`,
          30_000,
        );
        expect(
          to
            .messages()
            .filter((x) => x.from === from.name)
            .map((x) => x.text),
        ).toEqual(want);
      }
      // Of dave's messages, what arrived is what he typed, in order (an unbroken prefix).
      const fromDave = to
        .messages()
        .filter((x) => x.from === 'dave')
        .map((x) => x.text);
      expect(fromDave).toEqual((sent.get('dave') ?? []).slice(0, fromDave.length));
      expect(to.badLines).toEqual([]);
      expect(to.state).toBe('Chatting');
    }
    // The only errors the survivors saw are the ones a vanished member can cause, if any.
    for (const m of survivors) {
      const codes = m.of('error').map((e) => e.code);
      expect(codes.filter((c) => !['UnknownEpoch', 'KeyEstablishment'].includes(String(c)))).toEqual([]);
    }
    expect(r.alive()).toBe(true);

    for (const m of survivors) m.end();
    expect(await Promise.all(survivors.map((m) => m.exited))).toEqual([0, 0, 0]);
  }, 120_000);
});
