/**
 * Prekeys through a real relay process (docs/protocol.md "Prekeys"): a member's PREKEY is verified,
 * stored durably and forwarded; a member logging in gets PREKEYS; and every bad PREKEY (malformed,
 * oversized, wrong signer, another identity, expired, rollback, conflict, bad envelope signature)
 * is refused with a typed error while the relay stays up and the others keep talking. A replayed
 * PREKEY is ignored. No timing assertions: every wait is for a frame or a log line.
 */
import { mkdtempSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { makeTestGroup, type TestGroup } from '../helpers/group.js';
import { loadIdentity, must, RawMember } from '../helpers/raw-member.js';
import { startRelay, type RelayProcess } from '../helpers/relay-process.js';
import type { LocalIdentity } from '../../src-main/core/pki/local-identity.js';
import { createPrekey, signPrekey, type SignedPrekey } from '../../src-main/core/pki/prekey.js';
import { encodeFrame, sealMessage, type BodyOf } from '../../src-main/core/protocol/index.js';

let group: TestGroup;
let relay: RelayProcess;
let dataDir: string;
const ids: Record<string, LocalIdentity> = {};
const id = (name: string): LocalIdentity => must(ids[name], name);
const open: RawMember[] = [];

async function member(name: string): Promise<RawMember> {
  const m = await RawMember.join(id(name), { port: relay.port });
  open.push(m);
  return m;
}

/** A prekey of `member` with `serial`, signed by `signer` (default: the member itself). */
function prekey(
  member: string,
  serial: number,
  options: { signer?: string; notBefore?: number; lifetimeMs?: number } = {},
): SignedPrekey {
  const fresh = createPrekey(member, serial, options.notBefore ?? Date.now() - 1000, options.lifetimeMs);
  fresh.privateKey.fill(0);
  return signPrekey(fresh.prekey, id(options.signer ?? member));
}

function prekeyFrame(from: RawMember, p: SignedPrekey): Buffer {
  return from.seal('PREKEY', '', { prekey: p });
}

/** Sends a bad PREKEY and waits for the refusal naming `code`. */
async function refused(
  m: RawMember,
  payload: Buffer,
  code: string,
  relayCode = 'PrekeyRejected',
): Promise<void> {
  const before = m.errors().length;
  m.sendPayload(payload);
  const err = await m.until(
    () =>
      m
        .errors()
        .slice(before)
        .find((e) => e.code === relayCode),
    20_000,
    `ERROR ${relayCode}`,
  );
  expect(err.fatal).toBe(false);
  expect(err.message).toContain(code);
}

/** The others still exchange frames: a PREKEY of bob's reaches alice (forwarded, not refused). */
async function stillForwarding(alice: RawMember, bob: RawMember, serial: number): Promise<void> {
  const p = prekey('bob', serial);
  bob.sendPayload(prekeyFrame(bob, p));
  await alice.waitFor(
    'PREKEY',
    (f) =>
      bodySerial(f) === serial &&
      f.header.sender.kind === 'fingerprint' &&
      f.header.sender.fingerprint.equals(bob.fingerprint),
  );
  expect(relay.alive()).toBe(true);
}

function bodySerial(f: { raw: Buffer; type: string }): number | undefined {
  if (f.type !== 'PREKEY') return undefined;
  const body = JSON.parse(readBody(f.raw)) as BodyOf<'PREKEY'>;
  return body.prekey.serial;
}

/** The JSON body of an envelope (tests only: the frame was verified by whoever checks it). */
function readBody(raw: Buffer): string {
  const senderLen = raw.readUInt16BE(3);
  let at = 5 + senderLen;
  const targetLen = raw.readUInt8(at);
  at += 1 + targetLen;
  const bodyLen = raw.readUInt32BE(at);
  return raw.subarray(at + 4, at + 4 + bodyLen).toString('utf8');
}

beforeAll(async () => {
  group = makeTestGroup(['alice', 'bob', 'carol']);
  for (const n of ['alice', 'bob', 'carol']) ids[n] = loadIdentity(must(group.bundles[n]), 'member');
  dataDir = mkdtempSync(join(tmpdir(), 'scx-relay-prekeys-'));
  relay = await startRelay(group.relayBundle, ['--data-dir', dataDir]);
});

afterAll(async () => {
  for (const m of open) m.destroy();
  await relay?.stop();
});

describe('prekeys at the relay', () => {
  it('forwards a valid PREKEY to the others, hands it out at login, and ignores a replay', async () => {
    const alice = await member('alice');
    const bob = await member('bob');
    const first = prekey('alice', 1);
    const frame = prekeyFrame(alice, first);
    alice.sendPayload(frame);
    const got = await bob.waitFor('PREKEY');
    expect(got.raw.equals(frame)).toBe(true);
    await relay.waitForLog((l) => l.event === 'prekey-stored' && l.name === 'alice', 'alice stored');

    // A newcomer gets it in PREKEYS, before its first PRESENCE.
    const carol = await member('carol');
    const welcome = await carol.waitFor('PREKEYS');
    expect(welcome.body.prekeys.map((p) => [p.member, p.serial])).toEqual([['alice', 1]]);
    const firstPresence = carol.frames.findIndex((f) => f.type === 'PRESENCE');
    expect(carol.frames.indexOf(welcome)).toBeLessThan(firstPresence);

    // The same frame again (a replay): no error, not forwarded twice.
    alice.sendPayload(frame);
    await stillForwarding(alice, bob, 1);
    expect(bob.ofType('PREKEY').filter((f) => f.raw.equals(frame))).toHaveLength(1);
    expect(alice.errors().filter((e) => e.code === 'PrekeyRejected')).toHaveLength(0);
    for (const m of [alice, bob, carol]) m.destroy();
  });

  it('refuses bad prekeys with typed errors and keeps serving', async () => {
    const alice = await member('alice');
    const bob = await member('bob');
    // Another member's key signed it.
    await refused(alice, prekeyFrame(alice, prekey('alice', 5, { signer: 'bob' })), 'PrekeySignature');
    // A prekey naming someone else, sent by alice.
    await refused(alice, prekeyFrame(alice, prekey('bob', 9)), 'PrekeyIdentity');
    // Expired, and not yet valid.
    await refused(
      alice,
      prekeyFrame(alice, prekey('alice', 6, { notBefore: Date.now() - 10_000, lifetimeMs: 5_000 })),
      'PrekeyExpired',
    );
    await refused(
      alice,
      prekeyFrame(alice, prekey('alice', 6, { notBefore: Date.now() + 3_600_000 })),
      'PrekeyNotYetValid',
    );
    // A serial below the stored one (1, from the test above): rollback.
    alice.sendPayload(prekeyFrame(alice, prekey('alice', 3)));
    await relay.waitForLog(
      (l) => l.event === 'prekey-stored' && l.name === 'alice' && l.serial === 3,
      'serial 3',
    );
    await refused(alice, prekeyFrame(alice, prekey('alice', 2)), 'PrekeyRollback');
    // The stored serial with another key: conflict.
    await refused(alice, prekeyFrame(alice, prekey('alice', 3)), 'PrekeyConflict');
    // Malformed bodies: schema refusals, before any prekey check.
    const good = prekey('alice', 4);
    const shortKey = { ...good, publicKey: good.publicKey.subarray(0, 31) };
    await refused(alice, prekeyFrame(alice, shortKey), 'at prekey.publicKey', 'SchemaViolation');
    const sealedRaw = sealMessage(
      'DISCONNECT',
      { kind: 'fingerprint', fingerprint: alice.fingerprint },
      '',
      { reason: 'x' },
      (d) => id('alice').sign(d),
    );
    // A DISCONNECT body under the PREKEY type byte: the signature no longer covers what is sent.
    const retyped = Buffer.from(sealedRaw);
    retyped[1] = 17;
    await refused(alice, retyped, '', 'BadSignature');
    // Oversized: a signature field past the bound.
    const huge = { ...good, signature: Buffer.alloc(2048, 1) };
    await refused(alice, prekeyFrame(alice, huge), 'at prekey.signature', 'SchemaViolation');
    // Nobody may send PREKEYS but the relay.
    await refused(
      alice,
      alice.seal('PREKEYS', '', { session: Buffer.alloc(32), prekeys: [] }),
      '',
      'NotAllowed',
    );
    await stillForwarding(alice, bob, 2);
    // A frame of the full bound's size is a FrameTooLarge for the connection, not for the relay.
    const bomb = await member('carol');
    bomb.sendRaw(encodeFrame(Buffer.alloc(2 * 1024 * 1024, 1), Number.MAX_SAFE_INTEGER));
    await bomb.waitForError('FrameTooLarge');
    await stillForwarding(alice, bob, 3);
    for (const m of [alice, bob, bomb]) m.destroy();
  });

  it('keeps prekeys across a restart, and refuses a rollback against the stored serial', async () => {
    await relay.stop();
    relay = await startRelay(group.relayBundle, ['--data-dir', dataDir]);
    const carol = await member('carol');
    const welcome = await carol.waitFor('PREKEYS');
    expect(welcome.body.prekeys.map((p) => [p.member, p.serial])).toEqual([
      ['alice', 3],
      ['bob', 3],
    ]);
    const alice = await member('alice');
    await refused(alice, prekeyFrame(alice, prekey('alice', 1)), 'PrekeyRollback');
    expect(relay.alive()).toBe(true);
    for (const m of [alice, carol]) m.destroy();
  });
});
