/**
 * Epochs over the roster: a member who leaves (goes offline) keeps its place and no re-key happens;
 * a member removed from the roster is re-keyed out, and its old key cannot read what follows; a
 * newcomer cannot read what came before; a member coming back with its stored key chats on under
 * it (no new epoch for its return). The members whose keys we inspect are in-process engines with
 * the TEST-ONLY key hook (test/helpers/client-engine.ts); alice and bob are real processes where
 * no roster is needed (the transitional presence fallback).
 */
import { afterEach, beforeAll, describe, expect, it } from 'vitest';
import { chatAad } from '../../src-main/client/key-schedule.js';
import { aesGcmDecrypt } from '../../src-main/core/crypto/primitives.js';
import type { LocalIdentity } from '../../src-main/core/pki/local-identity.js';
import { decodeBody, readHeader } from '../../src-main/core/protocol/envelope.js';
import { ChatProcess, cleanup, startRelay, type RelayProcess } from '../helpers/client-processes.js';
import { TestMember } from '../helpers/client-engine.js';
import { makeLoadedGroup, type LoadedGroup } from '../helpers/client-identities.js';
import { RecordingProxy } from '../helpers/recording-proxy.js';
import { rosterOf, withoutMember } from '../helpers/test-roster.js';
import { MemoryEpochStore } from '../../src-main/client/options.js';

let g: LoadedGroup;
let relay: RelayProcess | undefined;
const proxies: RecordingProxy[] = [];
let running: { kill(): Promise<unknown> }[] = [];

beforeAll(() => {
  g = makeLoadedGroup(['alice', 'bob', 'dave', 'erin']);
});

afterEach(async () => {
  await cleanup(...running);
  running = [];
  for (const p of proxies.splice(0)) await p.close();
  await cleanup(relay);
  relay = undefined;
});

interface WireChat {
  epoch: number;
  seq: number;
  iv: Buffer;
  ciphertext: Buffer;
  frame: Buffer;
}

/** ENCRYPTED_TEXT frames a member sent, as recorded on the wire. */
function chatFramesFrom(proxy: RecordingProxy, sender: LocalIdentity): WireChat[] {
  const out: WireChat[] = [];
  for (const c of proxy.connections) {
    for (const frame of c.toRelay) {
      const h = readHeader(frame);
      if (h.type !== 'ENCRYPTED_TEXT' || h.sender.kind !== 'fingerprint') continue;
      if (!h.sender.fingerprint.equals(sender.certificate.fingerprint)) continue;
      const body = decodeBody('ENCRYPTED_TEXT', h.body);
      out.push({ ...body, frame });
    }
  }
  return out;
}

/**
 * Starts members one after the other, each once the ones before it chat: members connecting at the
 * same instant each see themselves alone and key alone, which the group resolves (KeyConflict, a
 * new epoch) but a test comparing epochs must not race with.
 */
async function startInOrder(ms: TestMember[], members: string[]): Promise<void> {
  for (const [i, m] of ms.entries()) {
    m.engine.start();
    await m.waitFor(() => m.engine.state === 'Chatting', 'chatting');
    if (i > 0) await sameKey(ms.slice(0, i + 1), members);
  }
  await sameKey(ms, members);
}

/** Until every one of `ms` chats under the same key over `members` (early joins may key twice). */
async function sameKey(ms: TestMember[], members: string[]): Promise<void> {
  await Promise.all(ms.map((m) => m.waitForKey(members)));
  const first = ms[0] as TestMember;
  await first.waitFor(
    () => new Set(ms.map((m) => `${m.engine.key?.epoch}/${m.engine.key?.safetyNumber}`)).size === 1,
    'one key for everyone',
  );
}

function decrypts(key: Buffer, groupId: string, sender: string, m: WireChat, epoch = m.epoch): boolean {
  try {
    aesGcmDecrypt(key, m.iv, m.ciphertext, chatAad(groupId, epoch, sender, m.seq));
    return true;
  } catch {
    return false;
  }
}

describe('epochs over the roster', () => {
  it('a leave is no re-key; removal from the roster is, and the removed member’s old key cannot decrypt what follows', async () => {
    const r = await startRelay(g.group.relayBundle);
    relay = r;
    const proxy = await RecordingProxy.start(r, g.relayHost());
    proxies.push(proxy);
    const v1 = rosterOf(g, ['alice', 'bob', 'dave']);
    const [alice, bob, dave] = (['alice', 'bob', 'dave'] as const).map(
      (n) => new TestMember(g.identities[n] as LocalIdentity, proxy.port, { roster: v1 }),
    ) as [TestMember, TestMember, TestMember];
    running = [alice, bob, dave];
    await startInOrder([alice, bob, dave], ['alice', 'bob', 'dave']);
    const oldEpoch = dave.engine.key?.epoch as number;
    const oldKey = dave.keys.get(oldEpoch) as Buffer;
    alice.engine.send('while dave is here');
    await dave.waitFor(
      () => dave.of('message').some((m) => m.text === 'while dave is here'),
      'the first message',
    );

    // dave goes offline: a presence change. The key is still his too; nobody re-keys.
    const keysShown = [alice, bob].map((m) => m.of('key').length);
    await dave.engine.stop('bye');
    await alice.waitFor(() => alice.engine.members.length === 2, 'dave gone from the members');
    alice.engine.send('dave is offline');
    await bob.waitFor(
      () => bob.of('message').some((m) => m.text === 'dave is offline'),
      'the second message',
    );
    expect(bob.of('message').at(-1)?.epoch).toBe(oldEpoch);
    expect([alice, bob].map((m) => m.of('key').length)).toEqual(keysShown);

    // The CA removes dave (roster v2): a new epoch over {alice, bob}.
    const v2 = withoutMember(g, v1, 'dave');
    alice.engine.useRoster(v2);
    bob.engine.useRoster(v2);
    await Promise.all([alice.waitForKey(['alice', 'bob']), bob.waitForKey(['alice', 'bob'])]);
    const newKey = alice.engine.key;
    expect(newKey?.epoch).toBeGreaterThan(oldEpoch);
    expect(newKey?.safetyNumber).toBe(bob.engine.key?.safetyNumber);
    alice.engine.send('after dave was removed');
    await bob.waitFor(
      () => bob.of('message').some((m) => m.text === 'after dave was removed'),
      'the third message',
    );

    const alicesFrames = chatFramesFrom(proxy, g.identities.alice as LocalIdentity);
    const before = alicesFrames.filter((m) => m.epoch === oldEpoch);
    const after = alicesFrames.filter((m) => m.epoch === newKey?.epoch);
    expect(before.length).toBe(2);
    expect(after.length).toBe(1);
    const groupId = g.identities.alice?.groupId as string;
    // dave's key read both messages of his epoch (also the one sent while he was offline)...
    for (const m of before) expect(decrypts(oldKey, groupId, 'alice', m)).toBe(true);
    // ...and reads nothing of the epoch after his removal, whichever epoch it is tried under.
    for (const m of after) {
      expect(decrypts(oldKey, groupId, 'alice', m)).toBe(false);
      expect(decrypts(oldKey, groupId, 'alice', m, oldEpoch)).toBe(false);
    }
  });

  it('a member coming back with its stored key chats on under it: its return starts no new epoch', async () => {
    const r = await startRelay(g.group.relayBundle);
    relay = r;
    const v1 = rosterOf(g, ['alice', 'bob', 'dave']);
    const store = new MemoryEpochStore();
    const member = (n: string, extra = {}) =>
      new TestMember(g.identities[n] as LocalIdentity, r.port, { roster: v1, ...extra });
    const alice = member('alice');
    const bob = member('bob');
    const dave = member('dave', { epochStore: store });
    running = [alice, bob, dave];
    await startInOrder([alice, bob, dave], ['alice', 'bob', 'dave']);
    const epoch = alice.engine.key?.epoch as number;
    const shown = [alice, bob].map((m) => m.of('key').length);
    const errorsBefore = [alice, bob].map((m) => m.of('error').length);
    await dave.engine.stop('restart');

    const dave2 = member('dave', { epochStore: store });
    running.push(dave2);
    dave2.engine.start();
    // The stored key is shown at start and used as soon as dave is back.
    await dave2.waitForKey(['alice', 'bob', 'dave']);
    expect(dave2.of('key').map((k) => k.epoch)).toEqual([epoch]);
    expect(dave2.engine.key?.safetyNumber).toBe(alice.engine.key?.safetyNumber);
    alice.engine.send('welcome back');
    await dave2.waitFor(() => dave2.of('message').some((m) => m.text === 'welcome back'), 'the welcome');
    dave2.engine.send('thanks');
    await bob.waitFor(() => bob.of('message').some((m) => m.text === 'thanks'), 'the answer');
    expect(bob.of('message').at(-1)?.epoch).toBe(epoch);
    expect([alice, bob].map((m) => m.of('key').length)).toEqual(shown);
    expect([alice, bob].flatMap((m, i) => m.of('error').slice(errorsBefore[i]))).toEqual([]);
    expect(dave2.of('error')).toEqual([]);
  });

  it('a newcomer cannot decrypt what was said before it joined, even when the old frames are replayed to it', async () => {
    const r = await startRelay(g.group.relayBundle);
    relay = r;
    const proxy = await RecordingProxy.start(r, g.relayHost());
    const erinProxy = await RecordingProxy.start(r, g.relayHost());
    proxies.push(proxy, erinProxy);
    const alice = ChatProcess.start('alice', g.group.bundles.alice as string, proxy.address);
    const bob = ChatProcess.start('bob', g.group.bundles.bob as string, proxy.address);
    running = [alice, bob];
    await Promise.all([alice.waitForKey(['alice', 'bob']), bob.waitForKey(['alice', 'bob'])]);
    alice.send('before erin joined 1');
    alice.send('before erin joined 2');
    await bob.waitForMessage('alice', 'before erin joined 2');
    const oldEpoch = alice.lastKey()?.epoch as number;

    const erin = new TestMember(g.identities.erin as LocalIdentity, erinProxy.port);
    running.push(erin);
    erin.engine.start();
    await erin.waitForKey(['alice', 'bob', 'erin']);
    await alice.waitForKey(['alice', 'bob', 'erin']);
    expect(erin.engine.key?.epoch).toBeGreaterThan(oldEpoch);
    expect([...erin.keys.keys()].every((e) => e > oldEpoch)).toBe(true);

    // Replay alice's genuine, correctly signed old frames straight into erin's connection.
    const old = chatFramesFrom(proxy, g.identities.alice as LocalIdentity).filter(
      (m) => m.epoch === oldEpoch,
    );
    expect(old.length).toBe(2);
    for (const m of old) erinProxy.injectToClient(m.frame);
    await erin.waitFor(
      () => erin.of('error').filter((e) => e.code === 'UnknownEpoch').length >= 2,
      'two UnknownEpoch rejects',
    );
    expect(erin.of('message').some((m) => m.text.startsWith('before erin'))).toBe(false);
    // And no key erin ever held opens them.
    const groupId = g.identities.erin?.groupId as string;
    for (const key of erin.keys.values())
      for (const m of old) expect(decrypts(key, groupId, 'alice', m)).toBe(false);

    // The session goes on: erin still hears what follows.
    alice.send('welcome erin');
    await erin.waitFor(() => erin.of('message').some((m) => m.text === 'welcome erin'), 'the welcome');
  });
});
