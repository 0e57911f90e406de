/**
 * `securechat-x history`, with real relay and chat processes: what chat showed and sent is kept in
 * the encrypted store and printed oldest first (--json: chat's message lines), searched and
 * limited; no message text is on disk in clear; a wrong password or a missing store is refused in
 * words.
 */
import { execFile } from 'node:child_process';
import { mkdtempSync, readdirSync, readFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { promisify } from 'node:util';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { makeLoadedGroup, type LoadedGroup } from '../helpers/client-identities.js';
import { ChatProcess, cleanup, startRelay, type RelayProcess } from '../helpers/client-processes.js';
import { TEST_PASSWORD } from '../helpers/group.js';
import { CLI } from '../helpers/relay-process.js';

const run = promisify(execFile);

let g: LoadedGroup;
let relay: RelayProcess | undefined;
const bobState = mkdtempSync(join(tmpdir(), 'scx-state-bob-'));
const SECRET = 'the vault code is 7204-tangerine';

async function history(
  args: string[],
  password = TEST_PASSWORD,
): Promise<{ code: number; stdout: string; stderr: string }> {
  try {
    const { stdout, stderr } = await run(process.execPath, [CLI, 'history', ...args], {
      env: { ...process.env, SECURECHAT_PASSWORD: password },
    });
    return { code: 0, stdout, stderr };
  } catch (err) {
    const e = err as { code: number; stdout: string; stderr: string };
    return { code: e.code, stdout: e.stdout, stderr: e.stderr };
  }
}

const jsonLines = (stdout: string) =>
  stdout
    .trim()
    .split('\n')
    .filter((l) => l.length > 0)
    .map((l) => JSON.parse(l) as Record<string, unknown>);

beforeAll(async () => {
  g = makeLoadedGroup(['alice', 'bob']);
  relay = await startRelay(g.group.relayBundle);
  const alice = ChatProcess.start('alice', g.group.bundles.alice as string, relay.address);
  const bob = ChatProcess.start('bob', g.group.bundles.bob as string, relay.address, { stateDir: bobState });
  try {
    await Promise.all([alice.waitForKey(['alice', 'bob']), bob.waitForKey(['alice', 'bob'])]);
    for (const text of ['hello bob', SECRET, 'a 100% sure thing']) alice.send(text);
    await bob.waitForMessage('alice', 'a 100% sure thing');
    bob.send('hi alice');
    await alice.waitForMessage('bob', 'hi alice');
    bob.end();
    expect(await bob.exited).toBe(0);
  } finally {
    await cleanup(alice, bob);
  }
}, 90_000);

afterAll(async () => {
  await cleanup(relay);
});

describe('securechat-x history', () => {
  it('prints what chat showed and sent, oldest first; --json gives chat message lines', async () => {
    const r = await history(['--bundle', g.group.bundles.bob as string, '--state-dir', bobState, '--json']);
    expect(r.code).toBe(0);
    const lines = jsonLines(r.stdout);
    expect(lines.map((l) => [l.from, l.text])).toEqual([
      ['alice', 'hello bob'],
      ['alice', SECRET],
      ['alice', 'a 100% sure thing'],
      ['bob', 'hi alice'],
    ]);
    for (const l of lines) {
      expect(Object.keys(l).filter((k) => k !== 'offset')).toEqual([
        'event',
        'from',
        'text',
        'epoch',
        'seq',
        'sentAt',
      ]);
      expect(l.event).toBe('message');
    }
    const human = await history(['--bundle', g.group.bundles.bob as string, '--state-dir', bobState]);
    expect(human.stdout).toMatch(/alice > hello bob\n.*alice > the vault code/);
  });

  it('--search finds a substring whatever its case, --limit keeps the newest', async () => {
    const base = ['--bundle', g.group.bundles.bob as string, '--state-dir', bobState, '--json'];
    const found = jsonLines((await history([...base, '--search', 'VAULT'])).stdout);
    expect(found.map((l) => l.text)).toEqual([SECRET]);
    const percent = jsonLines((await history([...base, '--search', '0%'])).stdout);
    expect(percent.map((l) => l.text)).toEqual(['a 100% sure thing']);
    const last = jsonLines((await history([...base, '--limit', '2'])).stdout);
    expect(last.map((l) => l.text)).toEqual(['a 100% sure thing', 'hi alice']);
  });

  it('keeps no message text in clear on disk', () => {
    for (const file of readdirSync(bobState)) {
      const bytes = readFileSync(join(bobState, file));
      expect(bytes.includes(Buffer.from('vault code')), file).toBe(false);
      expect(bytes.includes(Buffer.from('hello bob')), file).toBe(false);
    }
  });

  it('refuses a wrong password and a store that does not exist, in words', async () => {
    const wrong = await history(
      ['--bundle', g.group.bundles.bob as string, '--state-dir', bobState],
      'not it',
    );
    expect(wrong.code).not.toBe(0);
    expect(wrong.stderr).toMatch(/password|MAC|bundle/i);
    const empty = mkdtempSync(join(tmpdir(), 'scx-none-'));
    const none = await history(['--bundle', g.group.bundles.bob as string, '--state-dir', empty]);
    expect(none.code).toBe(1);
    expect(none.stderr).toContain('no state store for bob');
    expect(readdirSync(empty)).toEqual([]);
  });
});
