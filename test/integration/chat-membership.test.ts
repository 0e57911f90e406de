/**
 * Joins and leaves re-key: a departed member's old key cannot read what follows, and a newcomer
 * cannot read what came before. Members alice and bob are real processes; the member whose keys
 * we inspect is an in-process engine with the TEST-ONLY key hook (test/helpers/client-engine.ts).
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

function decrypts(key: Buffer, groupId: string, sender: string, m: WireChat, epoch = m.epoch): boolean {
  try {
    aesGcmDecrypt(key, m.iv, m.ciphertext, chatAad(groupId, epoch, sender, m.seq));
    return true;
  } catch {
    return false;
  }
}

describe('membership changes re-key', () => {
  it('after a member leaves, the others move to a new epoch its old key cannot decrypt', async () => {
    const r = await startRelay(g.group.relayBundle);
    relay = r;
    const proxy = await RecordingProxy.start(r, g.relayHost());
    proxies.push(proxy);
    const alice = ChatProcess.start('alice', g.group.bundles.alice as string, proxy.address);
    const bob = ChatProcess.start('bob', g.group.bundles.bob as string, proxy.address);
    const dave = new TestMember(g.identities.dave as LocalIdentity, proxy.port);
    running = [alice, bob, dave];
    dave.engine.start();
    await Promise.all([alice.waitForKey(['alice', 'bob', 'dave']), bob.waitForKey(['alice', 'bob', 'dave'])]);
    await dave.waitForKey(['alice', 'bob', 'dave']);
    const oldEpoch = dave.engine.key?.epoch as number;
    const oldKey = dave.keys.get(oldEpoch) as Buffer;
    alice.send('while dave is here');
    await dave.waitFor(
      () => dave.of('message').some((m) => m.text === 'while dave is here'),
      'the first message',
    );

    await dave.engine.stop('bye');
    await Promise.all([alice.waitForKey(['alice', 'bob']), bob.waitForKey(['alice', 'bob'])]);
    const newKey = alice.lastKey();
    expect(newKey?.epoch).toBeGreaterThan(oldEpoch);
    expect(newKey?.safetyNumber).toBe(bob.lastKey()?.safetyNumber);
    alice.send('after dave left');
    await bob.waitForMessage('alice', 'after dave left');

    const alicesFrames = chatFramesFrom(proxy, g.identities.alice as LocalIdentity);
    const before = alicesFrames.filter((m) => m.epoch === oldEpoch);
    const after = alicesFrames.filter((m) => m.epoch === newKey?.epoch);
    expect(before.length).toBe(1);
    expect(after.length).toBe(1);
    const groupId = g.identities.alice?.groupId as string;
    // The recording proves the old key worked on the old epoch...
    expect(decrypts(oldKey, groupId, 'alice', before[0] as WireChat)).toBe(true);
    // ...and reads nothing of the new one, whichever epoch it is tried under.
    for (const m of after) {
      expect(decrypts(oldKey, groupId, 'alice', m)).toBe(false);
      expect(decrypts(oldKey, groupId, 'alice', m, oldEpoch)).toBe(false);
    }
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
