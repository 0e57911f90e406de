/**
 * Removal, proven from what was recorded (issue 9, DESIGN.md §10.5): real relay, chat and publish
 * processes, with a recording proxy in the relay's position (it sees every frame a member sends).
 * After `remove-member carol` + `group publish`, nothing the group sends is readable with what
 * carol keeps: her bundle's private key and every epoch key in her state store. The same attempt
 * with bob's state reads it (so the proof can fail), and carol's own keys read what came before.
 */
import { mkdtempSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterEach, beforeAll, describe, expect, it } from 'vitest';
import { chatAad, keyDistributionAad, nonceRequestLabel } from '../../src-main/client/key-schedule.js';
import type { StoredEpochKey } from '../../src-main/client/state/epoch-keys.js';
import { openStoreWithPassword } from '../../src-main/client/state/store-key.js';
import { aesGcmDecrypt } from '../../src-main/core/crypto/primitives.js';
import type { LocalIdentity } from '../../src-main/core/pki/local-identity.js';
import { decodeBody, readHeader } from '../../src-main/core/protocol/envelope.js';
import {
  ChatProcess,
  cleanup,
  FAST_RELAY_FLAGS,
  publishRoster,
  startRelay,
  type RelayProcess,
} from '../helpers/client-processes.js';
import { makeLoadedGroup, type LoadedGroup } from '../helpers/client-identities.js';
import { TEST_PASSWORD } from '../helpers/group.js';
import { RecordingProxy } from '../helpers/recording-proxy.js';

let g: LoadedGroup;
let relay: RelayProcess | undefined;
let proxy: RecordingProxy | undefined;
let running: ChatProcess[] = [];

beforeAll(() => {
  // dave publishes the roster: alice's own login would replace her running session.
  g = makeLoadedGroup(['alice', 'bob', 'carol', 'dave']);
});

afterEach(async () => {
  await cleanup(...running);
  running = [];
  await proxy?.close();
  proxy = undefined;
  await cleanup(relay);
  relay = undefined;
});

type Frame = ReturnType<typeof readHeader>;

/** How many frames each connection had sent so far: a mark to split the recording at. */
function mark(p: RecordingProxy): Map<unknown, number> {
  return new Map(p.connections.map((c) => [c, c.toRelay.length]));
}

/** Frames members sent, parsed, split at `at`: those before it, and those after on every connection. */
function sentFrames(p: RecordingProxy, at: Map<unknown, number>): { before: Frame[]; after: Frame[] } {
  const before: Frame[] = [];
  const after: Frame[] = [];
  for (const c of p.connections) {
    const n = at.get(c) ?? 0;
    before.push(...c.toRelay.slice(0, n).map((f) => readHeader(f)));
    after.push(...c.toRelay.slice(n).map((f) => readHeader(f)));
  }
  return { before, after };
}

function nameOf(fingerprint: Buffer): string | undefined {
  for (const [name, id] of Object.entries(g.identities))
    if (id.certificate.fingerprint.equals(fingerprint)) return name;
  return undefined;
}

async function storedKeys(dir: string, member: string): Promise<StoredEpochKey[]> {
  const store = await openStoreWithPassword(dir, TEST_PASSWORD, {
    groupId: (g.identities[member] as LocalIdentity).groupId,
    member,
  });
  try {
    return store.loadKeys();
  } finally {
    store.close();
  }
}

/** How many of the chat frames any of `keys` opens, under the frame's epoch or the key's own. */
function readable(frames: ReturnType<typeof readHeader>[], keys: StoredEpochKey[], groupId: string): number {
  let opened = 0;
  for (const h of frames) {
    if (h.type !== 'ENCRYPTED_TEXT' || h.sender.kind !== 'fingerprint') continue;
    const body = decodeBody('ENCRYPTED_TEXT', h.body);
    const sender = nameOf(h.sender.fingerprint) as string;
    const opens = keys.some((k) =>
      [body.epoch, k.epoch].some((epoch) => {
        try {
          aesGcmDecrypt(k.key, body.iv, body.ciphertext, chatAad(groupId, epoch, sender, body.seq));
          return true;
        } catch {
          return false;
        }
      }),
    );
    if (opens) opened++;
  }
  return opened;
}

describe('removal, proven from the recorded frames', { timeout: 120_000 }, () => {
  it("after remove-member carol + publish, nothing sent opens with carol's bundle or state; bob's state opens it", async () => {
    const r = await startRelay(g.group.relayBundle, 0, FAST_RELAY_FLAGS);
    relay = r;
    const p = await RecordingProxy.start({ host: '127.0.0.1', port: r.port }, g.relayHost());
    proxy = p;
    const dirs: Record<string, string> = {};
    const start = (name: string) => {
      dirs[name] = mkdtempSync(join(tmpdir(), `scx-removal-${name}-`));
      const m = ChatProcess.start(name, g.group.bundles[name] as string, `127.0.0.1:${p.port}`, {
        stateDir: dirs[name],
      });
      running.push(m);
      return m;
    };
    const [alice, bob, carol] = ['alice', 'bob', 'carol'].map(start) as [
      ChatProcess,
      ChatProcess,
      ChatProcess,
    ];
    await Promise.all([alice, bob, carol].map((m) => m.waitForKey(['alice', 'bob', 'carol'])));
    alice.send('while carol is here');
    await carol.waitForMessage('alice', 'while carol is here');
    const removalMark = mark(p);

    g.group.changeRoster({ kind: 'remove-member', name: 'carol', reason: 'lost laptop' });
    expect((await publishRoster(g.group.rosterPath, g.group.bundles.dave as string, r.address)).code).toBe(0);
    expect(await carol.exited).toBe(4);
    const withoutCarol = (m: ChatProcess) => {
      const k = m.lastKey();
      return m.state === 'Chatting' && k !== undefined && !k.members.includes('carol');
    };
    await Promise.all([alice, bob].map((m) => m.waitFor(withoutCarol, 'a key without carol')));
    const removalEpoch = alice.lastKey()?.epoch as number;
    for (let i = 1; i <= 3; i++) alice.send(`after the removal ${i}`);
    bob.send('bob after the removal');
    await bob.waitForMessage('alice', 'after the removal 3');
    await alice.waitForMessage('bob', 'bob after the removal');
    for (const m of [alice, bob]) m.end();
    expect(await Promise.all([alice.exited, bob.exited])).toEqual([0, 0]);

    const groupId = (g.identities.alice as LocalIdentity).groupId;
    const { before, after } = sentFrames(p, removalMark);
    const chatAfter = after.filter((h) => h.type === 'ENCRYPTED_TEXT');
    expect(chatAfter.length).toBeGreaterThanOrEqual(4);
    for (const h of chatAfter)
      expect(decodeBody('ENCRYPTED_TEXT', h.body).epoch).toBeGreaterThanOrEqual(removalEpoch);

    // What carol keeps: her state's epoch keys (her current key of before included) and her bundle.
    const carolKeys = await storedKeys(dirs.carol as string, 'carol');
    expect(carolKeys.length).toBeGreaterThan(0);
    expect(readable(before, carolKeys, groupId)).toBeGreaterThan(0); // she read before
    expect(readable(chatAfter, carolKeys, groupId)).toBe(0);
    // Nothing of a later epoch was sealed for her, nor opens with her private key whoever it was for.
    const carol_ = g.identities.carol as LocalIdentity;
    for (const h of after) {
      if (h.sender.kind !== 'fingerprint') continue;
      const from = nameOf(h.sender.fingerprint) as string;
      if (h.type === 'KEY_DISTRIBUTION') {
        const body = decodeBody('KEY_DISTRIBUTION', h.body);
        expect(h.target).not.toBe('carol');
        // An HPKE envelope (sealed to the target's prekey) has no RSA part: tried as one all the same.
        const asRsa = {
          wrappedKey: body.wrappedKey ?? body.hpke?.enc ?? Buffer.alloc(0),
          iv: body.iv ?? Buffer.alloc(12),
          ciphertext: body.ciphertext,
        };
        for (const target of ['carol', h.target])
          expect(() =>
            carol_.openEnvelope(asRsa, keyDistributionAad(groupId, body.epoch, from, target)),
          ).toThrow();
      }
      if (h.type === 'NONCE_REQUEST') {
        const body = decodeBody('NONCE_REQUEST', h.body);
        expect(h.target).not.toBe('carol');
        expect(body.members).not.toContain('carol');
        for (const target of ['carol', h.target])
          expect(() =>
            carol_.decrypt(body.challenge, nonceRequestLabel(groupId, body.epoch, from, target)),
          ).toThrow();
      }
    }
    // The same attempt with bob's state reads every one of them: the proof can fail.
    expect(readable(chatAfter, await storedKeys(dirs.bob as string, 'bob'), groupId)).toBe(chatAfter.length);
  });
});
