/**
 * The pure parts of roster enforcement: the relay's RosterKeeper (load from file and store, offers,
 * never back) over an in-memory store, the member's RosterTracker and its store (migration 3), the
 * client's classification of the roster refusals, and the chat output of roster events.
 */
import { randomBytes } from 'node:crypto';
import { mkdtempSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { pino } from 'pino';
import { beforeAll, describe, expect, it } from 'vitest';
import { classifyRelayError } from '../../src-main/client/relay-link.js';
import { MemoryRosterStore, RosterTracker } from '../../src-main/client/roster-tracker.js';
import { MemberStateStore } from '../../src-main/client/state/member-store.js';
import { humanLine, jsonLine } from '../../src-main/cli/chat-output.js';
import {
  buildRoster,
  nextRoster,
  signRoster,
  verifyRoster,
  type Roster,
} from '../../src-main/core/roster/index.js';
import type { RelayLog } from '../../src-main/relay/log/types.js';
import { RelayRosterError, ROSTER_META_KEY, RosterKeeper } from '../../src-main/relay/roster-keeper.js';
import {
  makeRosterFixtures,
  signRawRoster,
  wireBody,
  type RosterFixtures,
} from '../helpers/roster-fixtures.js';

let f: RosterFixtures;
let v1: Roster;
let v2: Roster;
let v3: Roster;
/** Another v2: signed from v1 with another change (a fork). */
let fork2: Roster;

const silent = pino({ level: 'silent' });

beforeAll(async () => {
  f = await makeRosterFixtures();
  const sign = (body: Parameters<typeof signRoster>[0]): Roster =>
    verifyRoster(signRoster(body, f.ca), f.ca.certificate);
  const m = f.members;
  v1 = sign(
    buildRoster({
      ca: f.ca.certificate,
      name: 'Test',
      members: [m.alice, m.bob, m.carol].map((c) => c as NonNullable<typeof c>),
      relays: [f.relays.relay as NonNullable<(typeof f.relays)['relay']>],
    }),
  );
  v2 = sign(nextRoster(v1, { kind: 'remove-member', name: 'carol', reason: 'gone' }));
  v3 = sign(nextRoster(v2, { kind: 'remove-member', name: 'bob' }));
  fork2 = sign(nextRoster(v1, { kind: 'remove-member', name: 'bob' }));
}, 60_000);

/** The meta part of a RelayLog, in memory; `failWrites` makes setMeta reject. */
function memoryStore(initial?: Buffer): RelayLog & { meta: Map<string, Buffer>; failWrites: boolean } {
  const meta = new Map<string, Buffer>();
  if (initial) meta.set(ROSTER_META_KEY, initial);
  const unused = (): never => {
    throw new Error('not used by the roster keeper');
  };
  const store = {
    meta,
    failWrites: false,
    streamId: 'test',
    append: unused,
    read: unused,
    bounds: unused,
    firstOffsetFor: unused,
    enforceRetention: unused,
    close: () => Promise.resolve(),
    getMeta: (key: string) => Promise.resolve(meta.get(key)),
    setMeta: (key: string, value: Buffer) => {
      if (store.failWrites) return Promise.reject(new Error('disk full'));
      meta.set(key, Buffer.from(value));
      return Promise.resolve();
    },
  };
  return store;
}

const fp = (name: string): string => {
  const cert = f.members[name];
  if (!cert) throw new Error(name);
  return cert.fingerprintHex;
};

describe('relay RosterKeeper', () => {
  it('refuses a --roster that does not verify with the relay CA (typed), and holds nothing before load', () => {
    const foreign = signRawRoster(wireBody(v1.body()), f.other);
    expect(() => new RosterKeeper(f.ca.certificate, undefined, silent, foreign)).toThrow(RelayRosterError);
    const keeper = new RosterKeeper(f.ca.certificate, undefined, silent, v1.bytes);
    expect(keeper.current).toBeUndefined();
    expect(keeper.verdict(fp('alice'))).toEqual({ kind: 'no-roster' });
  });

  it('stores the file when newer than the stored one, keeps the stored one when the file is older or a fork', async () => {
    const store = memoryStore(v1.bytes);
    const a = new RosterKeeper(f.ca.certificate, store, silent, v2.bytes);
    await a.load();
    expect(a.current?.version).toBe(2);
    expect(store.meta.get(ROSTER_META_KEY)?.equals(v2.bytes)).toBe(true);

    const b = new RosterKeeper(f.ca.certificate, store, silent, v1.bytes);
    await b.load();
    expect(b.current?.version).toBe(2);
    const c = new RosterKeeper(f.ca.certificate, store, silent, fork2.bytes);
    await c.load();
    expect(c.current?.sameBytes(v2)).toBe(true);
    expect(store.meta.get(ROSTER_META_KEY)?.equals(v2.bytes)).toBe(true);
    // Its frame is the stored envelope with a length prefix.
    expect(c.frame?.subarray(4).equals(v2.bytes)).toBe(true);
    expect(c.frame?.readUInt32BE(0)).toBe(v2.bytes.length);
  });

  it('ignores a stored roster that does not verify, and then takes the file', async () => {
    const store = memoryStore(Buffer.from('not a roster'));
    const k = new RosterKeeper(f.ca.certificate, store, silent, v1.bytes);
    await k.load();
    expect(k.current?.version).toBe(1);
  });

  it('admits listed members only: removed and unlisted certificates have their verdicts', async () => {
    const k = new RosterKeeper(f.ca.certificate, memoryStore(), silent, v2.bytes);
    await k.load();
    expect(k.verdict(fp('alice'))).toEqual({ kind: 'member' });
    expect(k.verdict(fp('carol'))).toEqual({ kind: 'removed', name: 'carol', reason: 'gone' });
    expect(k.verdict(fp('dave'))).toEqual({ kind: 'not-listed' });
    expect(k.verdict(f.reissued.alice?.fingerprintHex ?? '')).toEqual({ kind: 'not-listed' });
  });

  it('offers: newer stored (after the write), same ignored, older / fork / foreign / junk rejected, a failed write not held', async () => {
    const store = memoryStore();
    const k = new RosterKeeper(f.ca.certificate, store, silent);
    await k.load();
    expect(k.current).toBeUndefined();
    expect(await k.offer(Buffer.from('junk'))).toMatchObject({ kind: 'rejected', code: 'RosterEncoding' });
    expect(await k.offer(signRawRoster(wireBody(v1.body()), f.other))).toMatchObject({
      kind: 'rejected',
      code: 'RosterForeignGroup',
    });
    expect(await k.offer(v2.bytes)).toMatchObject({ kind: 'stored', previous: undefined });
    expect(store.meta.get(ROSTER_META_KEY)?.equals(v2.bytes)).toBe(true);
    expect(await k.offer(v2.bytes)).toMatchObject({ kind: 'same' });
    expect(await k.offer(v1.bytes)).toMatchObject({ kind: 'rejected', code: 'RosterRollback' });
    expect(await k.offer(fork2.bytes)).toMatchObject({ kind: 'rejected', code: 'RosterConflict' });
    store.failWrites = true;
    expect(await k.offer(v3.bytes)).toMatchObject({ kind: 'rejected', code: 'RosterStoreFailed' });
    expect(k.current?.version).toBe(2);
    store.failWrites = false;
    expect(await k.offer(v3.bytes)).toMatchObject({ kind: 'stored' });
    expect(k.current?.version).toBe(3);
  });

  it('handles concurrent offers in order: an older one offered after a newer never wins', async () => {
    const k = new RosterKeeper(f.ca.certificate, memoryStore(), silent, v1.bytes);
    await k.load();
    const [a, b, c] = await Promise.all([k.offer(v3.bytes), k.offer(v2.bytes), k.offer(v3.bytes)]);
    expect([a.kind, b.kind, c.kind]).toEqual(['stored', 'rejected', 'same']);
    expect(k.current?.version).toBe(3);
  });

  it('adopts a roster another cluster node stored: newer held without a write, older written over with the held one', async () => {
    const store = memoryStore();
    const k = new RosterKeeper(f.ca.certificate, store, silent, v1.bytes);
    await k.load();
    // Another node stored v2 in the shared meta: held here, not written again.
    store.meta.set(ROSTER_META_KEY, v2.bytes);
    store.failWrites = true;
    expect(await k.adopt(v2.bytes)).toMatchObject({ kind: 'stored', previous: { version: 1 } });
    expect(k.current?.version).toBe(2);
    expect(await k.adopt(v2.bytes)).toMatchObject({ kind: 'same' });
    expect(await k.adopt(Buffer.from('junk'))).toMatchObject({ kind: 'rejected', code: 'RosterEncoding' });
    expect(k.current?.version).toBe(2);
    // A slower node's older write landed last: the held v2 is written back over it.
    store.failWrites = false;
    store.meta.set(ROSTER_META_KEY, v1.bytes);
    expect(await k.adopt(v1.bytes)).toMatchObject({ kind: 'rejected', code: 'RosterRollback' });
    expect(store.meta.get(ROSTER_META_KEY)?.equals(v2.bytes)).toBe(true);
    expect(await k.adopt(fork2.bytes)).toMatchObject({ kind: 'rejected', code: 'RosterConflict' });
    expect(k.current?.version).toBe(2);
  });
});

describe('member RosterTracker', () => {
  it('keeps the highest, reports each held version once, answers an older one with ours', () => {
    const store = new MemoryRosterStore();
    const t = new RosterTracker(f.ca.certificate, store);
    expect(t.held).toBeUndefined();
    expect(t.receive(v1.bytes).kind).toBe('newer');
    expect(t.toReport()).toEqual({ version: 1, members: ['alice', 'bob', 'carol'], removed: [] });
    expect(t.toReport()).toBeUndefined();
    expect(t.receive(v1.bytes).kind).toBe('same');
    expect(t.receive(v2.bytes).kind).toBe('newer');
    expect(t.toReport()).toEqual({ version: 2, members: ['alice', 'bob'], removed: ['carol'] });
    const older = t.receive(v1.bytes);
    expect(older.kind).toBe('older');
    expect(t.held?.version).toBe(2);
    expect(t.receive(fork2.bytes)).toMatchObject({ kind: 'refused', code: 'RosterConflict' });
    expect(t.receive(signRawRoster(wireBody(v3.body()), f.other))).toMatchObject({
      kind: 'refused',
      code: 'RosterForeignGroup',
    });
    // A tampered signature.
    const bad = Buffer.from(v3.bytes);
    bad[bad.length - 1] = (bad[bad.length - 1] ?? 0) ^ 1;
    expect(t.receive(bad)).toMatchObject({ kind: 'refused', code: 'RosterSignature' });
    expect(t.held?.version).toBe(2);
    // A new tracker over the same store starts from the saved v2 and never reports v1.
    const again = new RosterTracker(f.ca.certificate, store);
    expect(again.held?.version).toBe(2);
    expect(again.receive(v1.bytes).kind).toBe('older');
    expect(again.toReport()?.version).toBe(2);
  });

  it('does not hold a roster it could not save', () => {
    const t = new RosterTracker(f.ca.certificate, {
      loadRoster: () => undefined,
      saveRoster: () => {
        throw new Error('disk full');
      },
    });
    expect(t.receive(v1.bytes)).toMatchObject({ kind: 'refused', code: 'StateStoreFailed' });
    expect(t.held).toBeUndefined();
  });

  it('the member store keeps the highest roster across reopen and never lowers it', () => {
    const path = join(mkdtempSync(join(tmpdir(), 'scx-roster-store-')), 'm.db');
    const key = randomBytes(32);
    const owner = { groupId: v1.groupId, member: 'alice' };
    const a = MemberStateStore.open(path, key, owner);
    expect(a.loadRoster()).toBeUndefined();
    a.saveRoster(v2.bytes, 2);
    a.saveRoster(v1.bytes, 1);
    expect(a.rosterVersion).toBe(2);
    a.close();
    const b = MemberStateStore.open(path, key, owner);
    expect(b.loadRoster()?.equals(v2.bytes)).toBe(true);
    const t = new RosterTracker(f.ca.certificate, b);
    expect(t.held?.version).toBe(2);
    expect(t.receive(v3.bytes).kind).toBe('newer');
    expect(b.rosterVersion).toBe(3);
    b.close();
  });
});

describe('client: roster refusals', () => {
  const error = (code: string, fatal: boolean) => ({
    session: Buffer.alloc(32),
    code: code as 'Removed',
    message: 'x',
    fatal,
  });

  it('Removed and NotInRoster end the story; NoRoster only once fatal', () => {
    for (const authenticated of [false, true]) {
      expect(classifyRelayError(error('Removed', true), authenticated)).toEqual({ kind: 'terminal' });
      expect(classifyRelayError(error('NotInRoster', true), authenticated)).toEqual({ kind: 'terminal' });
      expect(classifyRelayError(error('NoRoster', true), authenticated)).toEqual({ kind: 'terminal' });
      expect(classifyRelayError(error('NoRoster', false), authenticated)).toEqual({ kind: 'report' });
      expect(classifyRelayError(error('RosterRejected', false), authenticated)).toEqual({ kind: 'report' });
    }
    // Unchanged: other fatal errors reconnect.
    expect(classifyRelayError(error('SlowConsumer', true), true)).toEqual({
      kind: 'reconnect',
      atLeastMs: 0,
    });
  });

  it('chat output: the roster line (keys in order) and Removed in words', () => {
    const line = jsonLine({ event: 'roster', version: 2, members: ['alice', 'bob'], removed: ['carol'] });
    expect(line).toBe('{"event":"roster","version":2,"members":["alice","bob"],"removed":["carol"]}');
    expect(
      humanLine({ event: 'error', code: 'Removed', message: 'relay: carol was removed' }, 'carol'),
    ).toMatch(/^! You were removed from this group/);
    expect(humanLine({ event: 'roster', version: 2, members: ['alice'], removed: ['carol'] }, 'alice')).toBe(
      '* roster v2: alice; removed: carol',
    );
  });
});
