/**
 * Durable groups from outside (issue 9), with a real relay process on its data directory and real
 * `chat --json` processes on their state directories:
 *
 * - offline catch-up: carol quits, alice and bob exchange 200 messages, nobody re-keys, carol comes
 *   back and shows all 200 once each in log order, and her `history` lists them;
 * - alone online: alice writes while nobody else is connected; bob and carol read it later;
 * - relay kill -9 in the middle of a 5,000-message burst, restarted on the same data directory:
 *   every message its sender saw `sent` reaches everyone exactly once.
 */
import { execFile } from 'node:child_process';
import { mkdtempSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { promisify } from 'node:util';
import { afterEach, describe, expect, it } from 'vitest';
import { makeLoadedGroup, type LoadedGroup } from '../helpers/client-identities.js';
import {
  ChatProcess,
  cleanup,
  FAST_RELAY_FLAGS,
  startRelay,
  waitForAgreedKey,
  type ChatJsonEvent,
  type RelayProcess,
} from '../helpers/client-processes.js';
import { TEST_PASSWORD } from '../helpers/group.js';
import { CLI } from '../helpers/relay-process.js';

const run = promisify(execFile);
let running: { kill(): Promise<unknown> }[] = [];

afterEach(async () => {
  await cleanup(...running);
  running = [];
});

interface Member {
  name: string;
  state: string;
}

/** A group with its roster v1 and a state directory per member. */
function durableGroup(names: string[]): { g: LoadedGroup; roster: string; members: Record<string, Member> } {
  const g = makeLoadedGroup(names);
  const roster = g.group.rosterPath;
  const members: Record<string, Member> = {};
  for (const n of names) members[n] = { name: n, state: mkdtempSync(join(tmpdir(), `scx-state-${n}-`)) };
  return { g, roster, members };
}

async function relayOn(g: LoadedGroup, roster: string, dataDir: string, port = 0): Promise<RelayProcess> {
  const r = await startRelay(g.group.relayBundle, port, [
    ...FAST_RELAY_FLAGS,
    '--roster',
    roster,
    '--data-dir',
    dataDir,
  ]);
  running.push(r);
  return r;
}

function chat(g: LoadedGroup, m: Member, relay: RelayProcess): ChatProcess {
  const p = ChatProcess.start(m.name, g.group.bundles[m.name] as string, relay.address, {
    stateDir: m.state,
  });
  running.push(p);
  return p;
}

const messagesOf = (p: ChatProcess) =>
  p.of('message') as unknown as { from: string; text: string; epoch: number; seq: number; offset?: number }[];
const sentOf = (p: ChatProcess) =>
  p.of('sent') as unknown as { epoch: number; seq: number; offset: number }[];
const keysOf = (p: ChatProcess) =>
  p.of('key') as unknown as { epoch: number; members: string[]; contributors: string[] }[];

async function leave(p: ChatProcess): Promise<void> {
  p.end();
  expect(await p.exited).toBe(0);
}

async function historyJson(g: LoadedGroup, m: Member): Promise<ChatJsonEvent[]> {
  const { stdout } = await run(
    process.execPath,
    [CLI, 'history', '--bundle', g.group.bundles[m.name] as string, '--state-dir', m.state, '--json'],
    { env: { ...process.env, SECURECHAT_PASSWORD: TEST_PASSWORD }, maxBuffer: 64 * 1024 * 1024 },
  );
  return stdout
    .trim()
    .split('\n')
    .filter((l) => l.length > 0)
    .map((l) => JSON.parse(l) as ChatJsonEvent);
}

const dataDir = () => mkdtempSync(join(tmpdir(), 'scx-relay-data-'));

describe('durable group', () => {
  it('offline catch-up: carol returns to 200 messages, shows each once in log order, nobody re-keyed', async () => {
    const { g, roster, members } = durableGroup(['alice', 'bob', 'carol']);
    const relay = await relayOn(g, roster, dataDir());
    const alice = chat(g, members.alice as Member, relay);
    const bob = chat(g, members.bob as Member, relay);
    let carol = chat(g, members.carol as Member, relay);
    const { epoch } = await waitForAgreedKey([alice, bob, carol], ['alice', 'bob', 'carol']);
    alice.send('before carol leaves');
    await carol.waitForMessage('alice', 'before carol leaves');
    await leave(carol);
    const keysBefore = [keysOf(alice).length, keysOf(bob).length];

    for (let i = 1; i <= 100; i++) {
      alice.send(`alice ${i}`);
      bob.send(`bob ${i}`);
    }
    await alice.waitFor((p) => sentOf(p).length >= 101, '101 sent', 60_000);
    await bob.waitFor((p) => sentOf(p).length >= 100, '100 sent', 60_000);
    await bob.waitForMessage('alice', 'alice 100', 60_000);
    await alice.waitForMessage('bob', 'bob 100', 60_000);
    // Presence changes never re-key: nobody saw a new key when carol left.
    expect([keysOf(alice).length, keysOf(bob).length]).toEqual(keysBefore);
    expect(keysOf(bob).at(-1)?.epoch).toBe(epoch);

    carol = chat(g, members.carol as Member, relay);
    await carol.waitFor(
      (p) => messagesOf(p).filter((m) => /^(alice|bob) \d+$/.test(m.text)).length >= 200,
      '200 messages',
      60_000,
    );
    await carol.waitFor((p) => p.state === 'Chatting', 'Chatting');
    const got = messagesOf(carol).filter((m) => /^(alice|bob) \d+$/.test(m.text));
    expect(got).toHaveLength(200);
    expect(new Set(got.map((m) => m.text)).size).toBe(200);
    expect(messagesOf(carol).some((m) => m.text === 'before carol leaves')).toBe(false); // shown before, once
    // In log order: offsets only grow, and each sender's messages come in the order sent.
    const offsets = got.map((m) => m.offset as number);
    expect(offsets.every((o, i) => i === 0 || o > (offsets[i - 1] as number))).toBe(true);
    for (const who of ['alice', 'bob']) {
      expect(got.filter((m) => m.from === who).map((m) => m.text)).toEqual(
        Array.from({ length: 100 }, (_, i) => `${who} ${i + 1}`),
      );
    }
    await leave(carol);
    const history = await historyJson(g, members.carol as Member);
    const texts = history.map((h) => h.text as string);
    expect(texts[0]).toBe('before carol leaves');
    expect(texts.filter((t) => /^(alice|bob) \d+$/.test(t))).toHaveLength(200);
    expect(new Set(texts).size).toBe(texts.length);
  }, 180_000);

  it('alone online: alice writes with nobody else connected; bob and carol read it later', async () => {
    const { g, roster, members } = durableGroup(['alice', 'bob', 'carol']);
    const relay = await relayOn(g, roster, dataDir());
    const alice = chat(g, members.alice as Member, relay);
    await alice.waitFor((p) => p.state === 'Chatting', 'alice Chatting alone');
    // Alone, the key is made for the first message: over the roster, she its only contributor.
    for (const t of ['anyone there?', 'leaving a note', 'bye']) alice.send(t);
    await alice.waitFor((p) => sentOf(p).length >= 3, '3 sent');
    const key = keysOf(alice).at(-1);
    expect([...(key?.members ?? [])].sort()).toEqual(['alice', 'bob', 'carol']);
    expect(key?.contributors).toEqual(['alice']);
    await leave(alice);
    const bob = chat(g, members.bob as Member, relay);
    const carol = chat(g, members.carol as Member, relay);
    for (const p of [bob, carol]) {
      await p.waitForMessage('alice', 'bye', 30_000);
      expect(messagesOf(p).map((m) => m.text)).toEqual(['anyone there?', 'leaving a note', 'bye']);
    }
  }, 120_000);

  it('relay kill -9 during a 5,000-message burst: every message alice saw sent reaches bob and carol exactly once', async () => {
    const { g, roster, members } = durableGroup(['alice', 'bob', 'carol']);
    const dir = dataDir();
    const relay = await relayOn(g, roster, dir);
    const port = relay.port;
    const alice = chat(g, members.alice as Member, relay);
    const bob = chat(g, members.bob as Member, relay);
    const carol = chat(g, members.carol as Member, relay);
    await Promise.all([alice, bob, carol].map((p) => p.waitFor((x) => x.state === 'Chatting', 'Chatting')));
    const TOTAL = 5000;
    for (let i = 1; i <= TOTAL; i++) alice.send(`burst ${i}`);
    await alice.waitFor((p) => sentOf(p).length >= 1000, '1,000 acknowledged', 120_000);
    await relay.kill('SIGKILL');
    await relayOn(g, roster, dir, port);
    await alice.waitFor(
      (p) => new Set(sentOf(p).map((s) => `${s.epoch}.${s.seq}`)).size >= TOTAL,
      'all 5,000 acknowledged',
      240_000,
    );
    const sent = sentOf(alice);
    const acknowledged = new Set(sent.map((s) => `${s.epoch}.${s.seq}`));
    for (const p of [bob, carol]) {
      await p.waitFor(
        (x) => messagesOf(x).filter((m) => m.from === 'alice').length >= acknowledged.size,
        `${acknowledged.size} messages`,
        240_000,
      );
      const got = messagesOf(p).filter((m) => m.from === 'alice');
      const ids = got.map((m) => `${m.epoch}.${m.seq}`);
      expect(new Set(ids).size).toBe(ids.length); // exactly once
      for (const id of acknowledged) expect(ids.includes(id), id).toBe(true);
      expect(new Set(got.map((m) => m.text)).size).toBe(got.length);
    }
  }, 400_000);
});
