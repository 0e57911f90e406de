/**
 * Real processes on 127.0.0.1: the relay CLI, members as `securechat-x chat --json`, and a
 * recording TCP proxy between them and the relay (what a network observer sees).
 */
import { afterEach, beforeAll, describe, expect, it } from 'vitest';
import { makeTestGroup, type TestGroup } from '../helpers/group.js';
import {
  ChatProcess,
  cleanup,
  startRelay,
  type ChatJsonEvent,
  type RelayProcess,
} from '../helpers/client-processes.js';
import { RecordingProxy } from '../helpers/recording-proxy.js';
import { loadIdentity } from '../helpers/raw-member.js';

const NAMES = ['alice', 'bob', 'carol', 'm03', 'm04', 'm05', 'm06', 'm07', 'm08', 'm09'];
let group: TestGroup;
let relay: RelayProcess | undefined;
let proxy: RecordingProxy | undefined;
let members: ChatProcess[] = [];

beforeAll(() => {
  group = makeTestGroup(NAMES);
});

afterEach(async () => {
  await cleanup(...members);
  members = [];
  await proxy?.close();
  proxy = undefined;
  await cleanup(relay);
  relay = undefined;
});

/** Every way a plaintext could show up in captured bytes: raw UTF-8 and base64 at each alignment. */
function plaintextForms(text: string): Buffer[] {
  const forms = [Buffer.from(text, 'utf8')];
  for (const pad of ['', 'x', 'xy']) {
    const b64 = Buffer.from(pad + text, 'utf8').toString('base64');
    // Drop the characters that depend on the neighbouring bytes.
    const skip = Math.ceil((pad.length * 4) / 3);
    forms.push(Buffer.from(b64.slice(skip, b64.length - 4), 'latin1'));
  }
  forms.push(Buffer.from(Buffer.from(`{"text":"${text}"`).toString('base64').slice(0, -4), 'latin1'));
  return forms;
}

function expectKeyOrder(e: ChatJsonEvent, keys: string[]): void {
  expect(Object.keys(e).slice(0, keys.length)).toEqual(keys);
}

describe('chat between real processes', () => {
  it('three members chat both ways, share epoch and safety number; the wire never carries plaintext', async () => {
    relay = await startRelay(group.relayBundle);
    const rec = await RecordingProxy.start(relay);
    proxy = rec;
    const names = ['alice', 'bob', 'carol'];
    members = names.map((n) => ChatProcess.start(n, group.bundles[n] as string, rec.address));
    await Promise.all(members.map((m) => m.waitForKey(names)));

    const texts = new Map<string, string>();
    for (const m of members) {
      for (let i = 1; i <= 3; i++) {
        const text = `secret ${i} from ${m.name} ✓ ${'abcdefgh'.repeat(i)}`;
        texts.set(text, m.name);
        m.send(text);
      }
    }
    for (const m of members) {
      for (const [text, from] of texts) if (from !== m.name) await m.waitForMessage(from, text);
    }
    // Per sender, in the order sent, with growing sequence numbers.
    for (const m of members) {
      for (const other of names.filter((n) => n !== m.name)) {
        const got = m.messages().filter((x) => x.from === other);
        expect(got.map((x) => x.text)).toEqual([...texts].filter(([, f]) => f === other).map(([t]) => t));
        expect(got.map((x) => x.seq)).toEqual([...got.map((x) => x.seq)].sort((a, b) => a - b));
      }
    }
    const keys = members.map((m) => m.lastKey());
    expect(new Set(keys.map((k) => k?.epoch)).size).toBe(1);
    expect(new Set(keys.map((k) => k?.safetyNumber)).size).toBe(1);
    expect(keys[0]?.safetyNumber).toMatch(/^\d{5}( \d{5}){5}$/);

    for (const m of members) m.end();
    expect(await Promise.all(members.map((m) => m.exited))).toEqual([0, 0, 0]);

    // The JSON line contract: only JSON objects, keys in the documented order.
    for (const m of members) {
      expect(m.badLines).toEqual([]);
      for (const e of m.events) {
        if (e.event === 'state') expectKeyOrder(e, ['event', 'state']);
        if (e.event === 'members') expectKeyOrder(e, ['event', 'members']);
        if (e.event === 'key') expectKeyOrder(e, ['event', 'epoch', 'safetyNumber', 'members']);
        if (e.event === 'message') {
          expectKeyOrder(e, ['event', 'from', 'text', 'epoch', 'seq', 'offset', 'sentAt']);
        }
        if (e.event === 'sent') expectKeyOrder(e, ['event', 'epoch', 'seq', 'offset']);
        if (e.event === 'error') expectKeyOrder(e, ['event', 'code', 'message']);
        if (e.event === 'roster') expectKeyOrder(e, ['event', 'version', 'members', 'removed']);
        expect(['state', 'members', 'key', 'message', 'sent', 'roster', 'error']).toContain(e.event);
      }
      // Every message it sent is durable in the relay's log: one `sent` each, offsets growing.
      const sent = m.of('sent').map((e) => e.offset as number);
      expect(sent).toHaveLength(3);
      expect(sent.every((o, i) => i === 0 || o > (sent[i - 1] as number))).toBe(true);
      const ms = m.of('members').at(-1)?.members as { name: string; fingerprint: string }[] | undefined;
      expect(ms?.every((x) => /^[0-9a-f]{64}$/.test(x.fingerprint))).toBe(true);
      expect(m.of('error')).toEqual([]);
      expect(m.state).toBe('Disconnected');
    }

    const wire = rec.bytes();
    expect(wire.length).toBeGreaterThan(1000);
    for (const text of texts.keys()) {
      for (const form of plaintextForms(text)) expect(wire.includes(form)).toBe(false);
    }
    // A network observer sees TLS 1.3 records (type 23, legacy version 3.3) and nothing of ours:
    // no member or relay name, no certificate or fingerprint, no JSON field name.
    expect(wire.includes(Buffer.from([0x17, 0x03, 0x03]))).toBe(true);
    for (const name of ['alice', 'carol', 'relay']) expect(wire.includes(Buffer.from(name))).toBe(false);
    for (const field of ['"text"', '"epoch"', '"members"', '"challenge"', '"fingerprint"', '"sentAt"']) {
      expect(wire.includes(Buffer.from(field))).toBe(false);
    }
    for (const file of [group.bundles.alice, group.bundles.carol, group.relayBundle]) {
      const cert = loadIdentity(file as string).certificate;
      expect(wire.includes(cert.der.subarray(0, 64))).toBe(false);
      expect(wire.includes(cert.fingerprint)).toBe(false);
      expect(wire.includes(Buffer.from(cert.fingerprintHex))).toBe(false);
    }
  });

  it('SIGINT and SIGTERM leave gracefully (DISCONNECT, exit 0) without a re-key; a member left alone chats on (her message stored for the others) and exits 0', async () => {
    const r = await startRelay(group.relayBundle);
    relay = r;
    const names = ['alice', 'bob', 'carol'];
    members = names.map((n) => ChatProcess.start(n, group.bundles[n] as string, r.address));
    const [alice, bob, carol] = members as [ChatProcess, ChatProcess, ChatProcess];
    await Promise.all(members.map((m) => m.waitForKey(names)));
    const keysBefore = alice.of('key').length;
    expect(await bob.kill('SIGINT')).toBe(0);
    expect(bob.state).toBe('Disconnected');
    // bob's leave is a presence change: alice sees it, and keeps her key (no re-key on leave).
    await alice.waitFor((p) => {
      const m = p.of('members').at(-1)?.members as { name: string }[] | undefined;
      return m !== undefined && m.map((x) => x.name).join(',') === 'alice,carol';
    }, 'bob gone from the members');
    carol.send('after bob left');
    await alice.waitForMessage('carol', 'after bob left');
    // Acknowledged to carol too (the relay may fan out before it answers STORED): else she would
    // rightly leave with an unsent message (exit 3).
    await carol.waitFor((p) => p.of('sent').length > 0, 'her message stored');
    expect(alice.of('key').length).toBe(keysBefore);
    expect(alice.state).toBe('Chatting');
    // Alone online she chats on under the same key: the relay stores her message for the others.
    expect(await carol.kill('SIGTERM')).toBe(0);
    await alice.waitFor((p) => {
      const m = p.of('members').at(-1)?.members as { name: string }[] | undefined;
      return m !== undefined && m.map((x) => x.name).join(',') === 'alice';
    }, 'carol gone from the members');
    alice.send('anyone there?');
    await alice.waitFor((p) => p.of('sent').length > 0, 'her message stored');
    expect(alice.of('key').length).toBe(keysBefore);
    expect(alice.state).toBe('Chatting');
    alice.end();
    expect(await alice.exited).toBe(0);
  }, 60_000);

  it('ten members all reach the same key and everyone hears everyone', async () => {
    const r = await startRelay(group.relayBundle);
    relay = r;
    members = NAMES.map((n) => ChatProcess.start(n, group.bundles[n] as string, r.address));
    await Promise.all(members.map((m) => m.waitForKey(NAMES, 60_000)));
    for (const m of members) m.send(`hello from ${m.name}`);
    for (const m of members) {
      for (const other of NAMES)
        if (other !== m.name) await m.waitForMessage(other, `hello from ${other}`, 30_000);
    }
    const keys = members.map((m) => m.lastKey());
    expect(new Set(keys.map((k) => `${k?.epoch}/${k?.safetyNumber}`)).size).toBe(1);
    for (const m of members) m.end();
    expect((await Promise.all(members.map((m) => m.exited))).every((c) => c === 0)).toBe(true);
  }, 120_000);
});
