/**
 * Key establishment sealed to prekeys (client/handshake-seal.ts) on the in-memory bus: every
 * challenge, answer and key envelope to a member with a prekey is HPKE (never RSA-OAEP), the members
 * agree on the key, the RSA private keys alone open none of the recorded frames, an erased private
 * prekey opens nothing either, a member without a prekey is sealed to with RSA-OAEP (the documented
 * fallback), and the binding holds: a frame replayed to another member or under another epoch fails.
 */
import { beforeAll, describe, expect, it } from 'vitest';
import { MemoryPrekeyStore, OwnPrekeys, prekeyPolicy } from '../../src-main/client/prekeys.js';
import {
  hpkeInfo,
  openKeyMaterial,
  openSecret,
  type PrekeyAccess,
  type SealContext,
} from '../../src-main/client/handshake-seal.js';
import {
  keyDistributionAad,
  nonceRequestLabel,
  nonceResponseLabel,
} from '../../src-main/client/key-schedule.js';
import type { LocalIdentity } from '../../src-main/core/pki/local-identity.js';
import { decodeJsonBody } from '../../src-main/core/protocol/json-body.js';
import { BODY_SCHEMAS } from '../../src-main/core/protocol/schemas.js';
import { Bus, type Wire } from '../helpers/key-bus.js';
import { makeLoadedGroup, type LoadedGroup } from '../helpers/client-identities.js';

let g: LoadedGroup;
const ids = (...names: string[]): LocalIdentity[] => names.map((n) => g.identities[n] as LocalIdentity);
const T0 = 1_000_000;

beforeAll(() => {
  g = makeLoadedGroup(['alice', 'bob', 'carol']);
});

/** Each listed member holds a prekey; the others seal to it (verified elsewhere: prekeys.ts). */
function withPrekeys(names: string[]): { own: Map<string, OwnPrekeys>; access: (n: string) => PrekeyAccess } {
  const own = new Map<string, OwnPrekeys>();
  for (const n of names) {
    const p = new OwnPrekeys(n, g.identities[n] as LocalIdentity, new MemoryPrekeyStore(), prekeyPolicy({}));
    p.ensureCurrent(T0);
    own.set(n, p);
  }
  return {
    own,
    access: (self) => ({
      sealTarget: (cert) => own.get(cert.name)?.current?.signed,
      privateKey: (serial) => own.get(self)?.privateKey(serial),
    }),
  };
}

function context(w: Wire, epoch: number, groupId: string): SealContext {
  const kind =
    w.type === 'NONCE_REQUEST'
      ? 'nonce-request'
      : w.type === 'NONCE_RESPONSE'
        ? 'nonce-response'
        : 'key-distribution';
  const aad =
    kind === 'nonce-request'
      ? nonceRequestLabel(groupId, epoch, w.from, w.to)
      : kind === 'nonce-response'
        ? nonceResponseLabel(groupId, epoch, w.from, w.to)
        : keyDistributionAad(groupId, epoch, w.from, w.to);
  return { kind, groupId, epoch, from: w.from, to: w.to, aad };
}

/** Tries to open a recorded frame as `who` with `prekeys`; true if it opens. */
function opens(w: Wire, who: LocalIdentity, prekeys: PrekeyAccess | undefined): boolean {
  const groupId = who.groupId;
  try {
    if (w.type === 'NONCE_REQUEST') {
      const b = decodeJsonBody(BODY_SCHEMAS.NONCE_REQUEST, w.bytes, 'x');
      openSecret(context(w, b.epoch, groupId), who, prekeys, b.challenge, b.hpke);
    } else if (w.type === 'NONCE_RESPONSE') {
      const b = decodeJsonBody(BODY_SCHEMAS.NONCE_RESPONSE, w.bytes, 'x');
      openSecret(context(w, b.epoch, groupId), who, prekeys, b.sealed, b.hpke);
    } else if (w.type === 'KEY_DISTRIBUTION') {
      const b = decodeJsonBody(BODY_SCHEMAS.KEY_DISTRIBUTION, w.bytes, 'x');
      openKeyMaterial(context(w, b.epoch, groupId), who, prekeys, b);
    } else return false;
    return true;
  } catch {
    return false;
  }
}

/** Runs one round over alice, bob and carol, recording every handshake frame. */
function round(bus: Bus): Wire[] {
  const recorded: Wire[] = [];
  bus.filter = (w) => {
    recorded.push(w);
    return true;
  };
  bus.setMembership(['alice', 'bob', 'carol'], 1);
  bus.run();
  return recorded.filter((w) => w.type !== 'REKEY_REQUEST');
}

describe('HPKE sealing of the handshake', () => {
  it('seals every secret to the prekeys, the key agrees, and only the private prekey opens them', () => {
    const pk = withPrekeys(['alice', 'bob', 'carol']);
    const bus = new Bus(ids('alice', 'bob', 'carol'), undefined, (n) => ({ prekeys: pk.access(n) }));
    const frames = round(bus);
    expect(frames.map((w) => w.type).sort()).toEqual([
      'KEY_DISTRIBUTION',
      'KEY_DISTRIBUTION',
      'NONCE_REQUEST',
      'NONCE_REQUEST',
      'NONCE_RESPONSE',
      'NONCE_RESPONSE',
    ]);
    expect(bus.problems).toEqual([]);
    const keys = ['alice', 'bob', 'carol'].map((n) => bus.last(n)?.derived.key.toString('hex'));
    expect(new Set(keys).size).toBe(1);
    for (const w of frames) {
      expect(JSON.parse(w.bytes.toString('utf8'))).toHaveProperty('hpke');
      const to = g.identities[w.to] as LocalIdentity;
      expect(opens(w, to, pk.access(w.to))).toBe(true);
      // The long-term RSA key alone (a stolen bundle and password) opens nothing.
      expect(opens(w, to, undefined)).toBe(false);
      // Nor another member's prekey.
      const other = ['alice', 'bob', 'carol'].find((n) => n !== w.to && n !== w.from) as string;
      expect(opens({ ...w, to: other }, g.identities[other] as LocalIdentity, pk.access(other))).toBe(false);
    }
    // Erased: the private prekey is gone, so the recorded frames are gone for good.
    for (const [name, own] of pk.own) {
      own.ensureCurrent(T0 + 1, true);
      own.published(2, T0 + 1);
      expect(own.eraseDue(T0 + 1 + prekeyPolicy({}).retentionMs)).toEqual([1]);
      for (const w of frames.filter((f) => f.to === name))
        expect(opens(w, g.identities[name] as LocalIdentity, pk.access(name))).toBe(false);
    }
  });

  it('falls back to RSA-OAEP for a member without a prekey, and HPKE for the others', () => {
    const pk = withPrekeys(['alice', 'bob']);
    const bus = new Bus(ids('alice', 'bob', 'carol'), undefined, (n) => ({ prekeys: pk.access(n) }));
    const frames = round(bus);
    expect(bus.problems).toEqual([]);
    expect(new Set(['alice', 'bob', 'carol'].map((n) => bus.last(n)?.derived.key.toString('hex'))).size).toBe(
      1,
    );
    for (const w of frames) {
      const hpke = 'hpke' in (JSON.parse(w.bytes.toString('utf8')) as object);
      expect(hpke).toBe(w.to !== 'carol');
    }
  });

  it('binds group, epoch, sender and target: the info names the prekey serial too', () => {
    const c: SealContext = {
      kind: 'key-distribution',
      groupId: 'ab'.repeat(32),
      epoch: 7,
      from: 'alice',
      to: 'bob',
      aad: keyDistributionAad('ab'.repeat(32), 7, 'alice', 'bob'),
    };
    expect(hpkeInfo(c, 3).toString('utf8')).toBe(
      ['SecureChat-X/v2 hpke key-distribution', 'ab'.repeat(32), '7', 'alice', 'bob', '3'].join('\0'),
    );
    const pk = withPrekeys(['alice', 'bob', 'carol']);
    const bus = new Bus(ids('alice', 'bob', 'carol'), undefined, (n) => ({ prekeys: pk.access(n) }));
    const frames = round(bus);
    const kd = frames.find((w) => w.type === 'KEY_DISTRIBUTION') as Wire;
    const body = JSON.parse(kd.bytes.toString('utf8')) as { epoch: number };
    // Another epoch, the same bytes: refused.
    const moved = Buffer.from(JSON.stringify({ ...body, epoch: body.epoch + 1 }));
    expect(opens({ ...kd, bytes: moved }, g.identities[kd.to] as LocalIdentity, pk.access(kd.to))).toBe(
      false,
    );
    // Claimed from another sender: refused.
    const from = ['alice', 'bob', 'carol'].find((n) => n !== kd.from && n !== kd.to) as string;
    expect(opens({ ...kd, from }, g.identities[kd.to] as LocalIdentity, pk.access(kd.to))).toBe(false);
  });
});
