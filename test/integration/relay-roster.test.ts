/**
 * The roster enforced, with real processes on 127.0.0.1 (relay, chat, group publish): a relay
 * without a roster (NoRoster, the roster-only window, bootstrapped by publish), a valid but
 * unlisted certificate (NotInRoster), a removed member dropped and refused (Removed, exit 4), and
 * rosters that never go back: at the relay across restarts and in a member's store.
 */
import { copyFileSync, mkdtempSync, readFileSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import {
  ChatProcess,
  cleanup,
  FAST_RELAY_FLAGS,
  publishRoster,
  startRelay,
  type ChatJsonEvent,
  type RelayProcess,
} from '../helpers/client-processes.js';
import { makeTestGroup, type TestGroup } from '../helpers/group.js';

let group: TestGroup;
let running: { kill(): Promise<unknown> }[] = [];

beforeEach(() => {
  // dave publishes: a member logged in twice replaces its own session (Replaced).
  group = makeTestGroup(['alice', 'bob', 'carol', 'dave']);
});

afterEach(async () => {
  await cleanup(...running);
  running = [];
});

function bundle(name: string): string {
  const path = group.bundles[name];
  if (!path) throw new Error(`no bundle for ${name}`);
  return path;
}

async function relay(extra: string[] = [], relayBundle = group.relayBundle): Promise<RelayProcess> {
  const r = await startRelay(relayBundle, 0, [...FAST_RELAY_FLAGS, ...extra]);
  running.push(r);
  return r;
}

function chat(
  name: string,
  r: RelayProcess,
  options: { stateDir?: string; json?: boolean } = {},
): ChatProcess {
  const p = ChatProcess.start(name, bundle(name), r.address, options);
  running.push(p);
  return p;
}

/** The relay bundle alone in a folder: startRelay finds no roster.scx beside it. */
function rosterlessRelayBundle(): string {
  const dir = mkdtempSync(join(tmpdir(), 'scx-rosterless-'));
  const path = join(dir, 'relay.p12');
  copyFileSync(group.relayBundle, path);
  return path;
}

const errors = (p: ChatProcess, code: string): ChatJsonEvent[] =>
  p.of('error').filter((e) => e.code === code);
const rosters = (p: ChatProcess): ChatJsonEvent[] => p.of('roster');

describe('a relay without a roster', { timeout: 120_000 }, () => {
  it('says NoRoster (not fatal), keeps the member in the roster-only window, then ends it (fatal, no retry)', async () => {
    const r = await relay(['--roster-window-ms', '2000'], rosterlessRelayBundle());
    const alice = chat('alice', r);
    await alice.waitFor((p) => errors(p, 'NoRoster').length >= 1, 'NoRoster');
    const first = errors(alice, 'NoRoster')[0];
    expect(first?.message).toMatch(/holds no roster yet: publish one with `securechat-x group publish`/);
    // Not fatal: the session goes on (no Reconnecting, no Failed yet).
    expect(alice.of('state').map((s) => s.state)).toEqual(['Connecting']);
    expect(await alice.exited).toBe(1);
    expect(errors(alice, 'NoRoster')[1]?.message).toMatch(/no roster within 2000 ms/);
    const states = alice.of('state').map((s) => s.state);
    expect(states).not.toContain('Reconnecting');
    expect(states).toContain('Failed');
  });

  it('is bootstrapped by group publish from its roster-only window; members are admitted then', async () => {
    const r = await relay([], rosterlessRelayBundle());
    const published = await publishRoster(group.rosterPath, bundle('bob'), r.address);
    expect(published).toMatchObject({ code: 0, stdout: 'published roster v1\n' });
    const alice = chat('alice', r);
    const bob = chat('bob', r);
    await alice.waitForKey(['alice', 'bob']);
    await bob.waitForKey(['alice', 'bob']);
    // The relay's roster came before the first PRESENCE, in the documented shape.
    const i = alice.events.findIndex((e) => e.event === 'roster');
    expect(alice.events[i]).toEqual({
      event: 'roster',
      version: 1,
      members: ['alice', 'bob', 'carol', 'dave'],
      removed: [],
    });
    expect(Object.keys(alice.events[i] ?? {})).toEqual(['event', 'version', 'members', 'removed']);
    expect(alice.events.findIndex((e) => e.event === 'members')).toBeGreaterThan(i);
    // Publishing the same roster again: the relay holds it already.
    expect(await publishRoster(group.rosterPath, bundle('dave'), r.address)).toMatchObject({
      code: 0,
      stdout: 'published roster v1\n',
    });
  });
});

describe('admission by the roster', { timeout: 120_000 }, () => {
  it('refuses a valid certificate of the group that the roster does not list: NotInRoster, no retry', async () => {
    const r = await relay();
    group.addMember('mallory', { list: false });
    const mallory = chat('mallory', r);
    expect(await mallory.exited).toBe(1);
    expect(errors(mallory, 'NotInRoster')[0]?.message).toMatch(
      /mallory is not in this group's roster \(v1\)/,
    );
    expect(mallory.of('state').map((s) => s.state)).not.toContain('Reconnecting');
    expect(mallory.of('state').at(-1)?.state).toBe('Failed');
  });

  it('remove-member + publish: carol is dropped with Removed and exits 4, is refused on retry; alice and bob go on', async () => {
    const r = await relay();
    const alice = chat('alice', r);
    const bob = chat('bob', r);
    const carol = chat('carol', r);
    for (const p of [alice, bob, carol]) await p.waitForKey(['alice', 'bob', 'carol']);

    group.changeRoster({ kind: 'remove-member', name: 'carol', reason: 'left the team' });
    expect(await publishRoster(group.rosterPath, bundle('dave'), r.address)).toMatchObject({
      code: 0,
      stdout: 'published roster v2\n',
    });
    expect(await carol.exited).toBe(4);
    expect(errors(carol, 'Removed')[0]?.message).toMatch(
      /carol was removed from this group \(left the team\)/,
    );
    for (const p of [alice, bob]) {
      await p.waitFor((x) => rosters(x).some((e) => e.version === 2), 'roster v2');
      expect(rosters(p).at(-1)).toEqual({
        event: 'roster',
        version: 2,
        members: ['alice', 'bob', 'dave'],
        removed: ['carol'],
      });
      await p.waitForKey(['alice', 'bob']);
    }
    alice.send('after carol');
    await bob.waitForMessage('alice', 'after carol');

    // She tries again (human output): refused at once, the same way.
    const again = chat('carol', r, { json: false });
    expect(await again.exited).toBe(4);
    expect(again.badLines.join('\n')).toMatch(/You were removed from this group/);
    expect(again.badLines.join('\n')).not.toMatch(/Reconnecting/);
    expect(alice.state).toBe('Chatting');
  });
});

describe('rosters never go back', { timeout: 180_000 }, () => {
  it('a relay restarted with an older --roster keeps the newer one it stored', async () => {
    const v1 = join(group.dir, 'roster-v1.scx');
    writeFileSync(v1, readFileSync(group.rosterPath));
    group.changeRoster({ kind: 'remove-member', name: 'carol' });
    const dataDir = mkdtempSync(join(tmpdir(), 'scx-roster-data-'));
    const first = await relay(['--data-dir', dataDir]);
    await first.kill();
    const second = await relay(['--data-dir', dataDir, '--roster', v1, '--log-level', 'info']);
    const alice = chat('alice', second);
    await alice.waitFor((p) => rosters(p).length > 0, 'a roster');
    expect(rosters(alice).map((e) => e.version)).toEqual([2]);
    const carol = chat('carol', second);
    expect(await carol.exited).toBe(4);
  });

  it('a fresh relay given an old roster is corrected by a member holding a newer one; a member never takes the older', async () => {
    const v1 = join(group.dir, 'roster-v1.scx');
    writeFileSync(v1, readFileSync(group.rosterPath));
    group.changeRoster({ kind: 'remove-member', name: 'carol' });
    // alice learns v2 from a relay that holds it, and keeps it in her store.
    const aliceState = mkdtempSync(join(tmpdir(), 'scx-state-alice-'));
    const current = await relay();
    const learn = chat('alice', current, { stateDir: aliceState });
    await learn.waitFor((p) => rosters(p).some((e) => e.version === 2), 'roster v2');
    learn.end();
    expect(await learn.exited).toBe(0);
    await current.kill();

    // A relay with a fresh data directory and the old roster admits carol ...
    const stale = await relay(['--roster', v1]);
    const carol = chat('carol', stale);
    await carol.waitFor(
      (p) => rosters(p).length > 0 && (p.state === 'KeyEstablishment' || p.state === 'Chatting'),
      'carol logged in',
    );
    expect(rosters(carol).map((e) => e.version)).toEqual([1]);
    // ... until alice arrives with v2: she uploads it, the relay stores it and drops carol.
    const alice = chat('alice', stale, { stateDir: aliceState });
    expect(await carol.exited).toBe(4);
    await alice.waitFor((p) => p.state === 'KeyEstablishment' || p.state === 'Chatting', 'alice logged in');
    // alice never reported the relay's v1: her highest is v2 from the first roster on.
    expect(rosters(alice).map((e) => e.version)).toEqual([2]);
    expect(errors(alice, 'RosterRefused')).toEqual([]);
    const bob = chat('bob', stale);
    await bob.waitFor((p) => rosters(p).length > 0, 'a roster');
    expect(rosters(bob).map((e) => e.version)).toEqual([2]);
  });

  it("publish: an older roster meets the relay's newer one (exit 0, v2); a fork of its version is refused (exit 1)", async () => {
    const v1 = join(group.dir, 'roster-v1.scx');
    writeFileSync(v1, readFileSync(group.rosterPath));
    group.changeRoster({ kind: 'remove-member', name: 'carol' });
    const r = await relay();
    // The relay holds v2; v1 is older: the relay's v2 answers it, which is at least v1.
    const older = await publishRoster(v1, bundle('alice'), r.address);
    expect(older).toMatchObject({ code: 0, stdout: 'published roster v2\n' });
    // A fork of v2 (another change signed from v1) is refused.
    const fork = join(group.dir, 'roster-fork.scx');
    const forked = group.changeRoster({ kind: 'remove-member', name: 'bob' }, fork, readFileSync(v1));
    expect(forked.version).toBe(2);
    const refused = await publishRoster(fork, bundle('alice'), r.address);
    expect(refused.code).toBe(1);
    expect(refused.stderr).toMatch(/RosterConflict/);
    expect(refused.stdout).toBe('');
  });
});
