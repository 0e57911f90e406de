import { createHash, hkdfSync } from 'node:crypto';
import { describe, expect, it } from 'vitest';
import {
  chatAad,
  deriveEpochKey,
  initiatorFor,
  joinLabel,
  keyDistributionAad,
  keySalt,
  nonceRequestLabel,
  safetyNumber,
  sortMembers,
  u64,
} from '../../src-main/client/key-schedule.js';

const G = 'a1'.repeat(32);
const fp = (b: number) => Buffer.alloc(32, b);
const nonce = (b: number) => Buffer.alloc(32, b);

/** The spec's formulas (v2) written out independently, straight on node:crypto. */
function referenceKey(
  groupId: string,
  epoch: number,
  rosterVersion: number,
  fps: Buffer[],
  nonces: Buffer[],
) {
  const e = Buffer.alloc(8);
  e.writeBigUInt64BE(BigInt(epoch));
  const v = Buffer.alloc(8);
  v.writeBigUInt64BE(BigInt(rosterVersion));
  const salt = createHash('sha256')
    .update(Buffer.concat([Buffer.from('SecureChat-X/v2 key-salt\0' + groupId + '\0'), e, v, ...fps]))
    .digest();
  const key = Buffer.from(hkdfSync('sha256', Buffer.concat(nonces), salt, 'SecureChat-X/v2 group-key', 32));
  const sn = Buffer.from(hkdfSync('sha256', key, salt, 'SecureChat-X/v1 safety-number', 30));
  const groups = [0, 5, 10, 15, 20, 25].map((i) => String(sn.readUIntBE(i, 5) % 100000).padStart(5, '0'));
  return { key, salt, safetyNumber: groups.join(' ') };
}

describe('key schedule (docs/protocol.md steps 5-6)', () => {
  const fps = [fp(1), fp(2), fp(3)];
  const nonces = [nonce(0xa), nonce(0xb), nonce(0xc)];

  it('matches an independent computation of salt, K_e and the safety number', () => {
    const ours = deriveEpochKey({ groupId: G, epoch: 3, rosterVersion: 2, fingerprints: fps, nonces });
    const ref = referenceKey(G, 3, 2, fps, nonces);
    expect(keySalt(G, 3, 2, fps).equals(ref.salt)).toBe(true);
    expect(ours.key.equals(ref.key)).toBe(true);
    expect(ours.safetyNumber).toBe(ref.safetyNumber);
    expect(ours.safetyNumber).toMatch(/^\d{5}( \d{5}){5}$/);
  });

  it('salts with every roster member but keys only with the contributors (one is enough)', () => {
    // Two of three members online: C = [M[0], M[2]], the salt still covers all of M.
    const some = [nonces[0] as Buffer, nonces[2] as Buffer];
    const ours = deriveEpochKey({ groupId: G, epoch: 4, rosterVersion: 1, fingerprints: fps, nonces: some });
    expect(ours.key.equals(referenceKey(G, 4, 1, fps, some).key)).toBe(true);
    const alone = deriveEpochKey({
      groupId: G,
      epoch: 4,
      rosterVersion: 1,
      fingerprints: fps,
      nonces: [nonce(9)],
    });
    expect(alone.key.equals(referenceKey(G, 4, 1, fps, [nonce(9)]).key)).toBe(true);
    // Another roster version, same nonces and members: another key.
    const v2 = deriveEpochKey({ groupId: G, epoch: 4, rosterVersion: 2, fingerprints: fps, nonces: some });
    expect(v2.key.equals(ours.key)).toBe(false);
  });

  it('is deterministic: the same nonces give every member the same key and safety number', () => {
    const a = deriveEpochKey({ groupId: G, epoch: 7, rosterVersion: 1, fingerprints: fps, nonces });
    const b = deriveEpochKey({
      groupId: G,
      epoch: 7,
      rosterVersion: 1,
      fingerprints: [...fps],
      nonces: nonces.map((n) => Buffer.from(n)),
    });
    expect(a.key.equals(b.key)).toBe(true);
    expect(a.safetyNumber).toBe(b.safetyNumber);
  });

  it('changes key and safety number when the member list, a fingerprint, a nonce, the epoch or the group differ', () => {
    const base = deriveEpochKey({ groupId: G, epoch: 1, rosterVersion: 1, fingerprints: fps, nonces });
    const variants = [
      deriveEpochKey({
        groupId: G,
        epoch: 1,
        rosterVersion: 1,
        fingerprints: fps.slice(0, 2),
        nonces: nonces.slice(0, 2),
      }),
      deriveEpochKey({ groupId: G, epoch: 1, rosterVersion: 1, fingerprints: [fp(1), fp(2), fp(4)], nonces }),
      deriveEpochKey({
        groupId: G,
        epoch: 1,
        rosterVersion: 1,
        fingerprints: fps,
        nonces: [nonce(0xa), nonce(0xb), nonce(0xd)],
      }),
      deriveEpochKey({ groupId: G, epoch: 2, rosterVersion: 1, fingerprints: fps, nonces }),
      deriveEpochKey({ groupId: 'b2'.repeat(32), epoch: 1, rosterVersion: 1, fingerprints: fps, nonces }),
      deriveEpochKey({ groupId: G, epoch: 1, rosterVersion: 2, fingerprints: fps, nonces }),
    ];
    for (const v of variants) {
      expect(v.key.equals(base.key)).toBe(false);
      expect(v.safetyNumber).not.toBe(base.safetyNumber);
    }
  });

  it('the safety number is not the key', () => {
    const k = deriveEpochKey({ groupId: G, epoch: 1, rosterVersion: 1, fingerprints: fps, nonces });
    expect(safetyNumber(k.key, keySalt(G, 1, 1, fps))).toBe(k.safetyNumber);
    expect(k.safetyNumber.replace(/ /g, '')).not.toContain(k.key.toString('hex').slice(0, 10));
  });

  it('refuses malformed inputs', () => {
    expect(() =>
      deriveEpochKey({ groupId: G, epoch: 1, rosterVersion: 1, fingerprints: [fp(1)], nonces: [] }),
    ).toThrow();
    expect(() =>
      deriveEpochKey({
        groupId: G,
        epoch: 1,
        rosterVersion: 1,
        fingerprints: [fp(1)],
        nonces: [nonce(1), nonce(2)],
      }),
    ).toThrow();
    expect(() =>
      deriveEpochKey({
        groupId: G,
        epoch: 1,
        rosterVersion: 1,
        fingerprints: fps,
        nonces: [nonce(1), nonce(2), Buffer.alloc(31)],
      }),
    ).toThrow();
    expect(() => u64(-1)).toThrow();
  });

  it('labels join UTF-8 parts with a zero byte, epochs in decimal', () => {
    expect(joinLabel('a', 'b', 12).toString('latin1')).toBe('a\0b\x0012');
    expect(nonceRequestLabel(G, 5, 'alice', 'bob').toString()).toBe(
      `SecureChat-X/v1 nonce-request\0${G}\x005\0alice\0bob`,
    );
    expect(keyDistributionAad(G, 5, 'alice', 'bob').toString()).toBe(
      `SecureChat-X/v2 key-distribution\0${G}\x005\0alice\0bob`,
    );
  });

  it('chat AAD = L("…chat", G) ‖ 0 ‖ u64(e) ‖ sender ‖ 0 ‖ u64(seq)', () => {
    const aad = chatAad(G, 2, 'bob', 9);
    const expected = Buffer.concat([
      Buffer.from(`SecureChat-X/v1 chat\0${G}\0`),
      Buffer.from([0, 0, 0, 0, 0, 0, 0, 2]),
      Buffer.from('bob\0'),
      Buffer.from([0, 0, 0, 0, 0, 0, 0, 9]),
    ]);
    expect(aad.equals(expected)).toBe(true);
    expect(chatAad(G, 2, 'bob', 10).equals(aad)).toBe(false);
    expect(chatAad(G, 3, 'bob', 9).equals(aad)).toBe(false);
  });

  it('M is sorted by code point; the initiator of attempt a is O[a mod |O|]', () => {
    const m = sortMembers(['carol', 'Bob', 'alice', 'bob']);
    expect(m).toEqual(['Bob', 'alice', 'bob', 'carol']);
    expect(initiatorFor(m, 0)).toBe('Bob');
    expect(initiatorFor(m, 5)).toBe('alice');
  });
});
