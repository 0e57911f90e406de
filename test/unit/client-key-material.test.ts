/** The receiver's checks on a KEY_DISTRIBUTION's material: the contributor rule, live and replayed. */
import { randomBytes } from 'node:crypto';
import { describe, expect, it } from 'vitest';
import { checkKeyMaterial, type MaterialContext } from '../../src-main/client/key-material.js';
import type { KeyMaterial } from '../../src-main/core/protocol/schemas.js';

const GROUP = 'ab'.repeat(32);
const members = ['alice', 'bob', 'carol'];

function material(contributors: string[]): KeyMaterial {
  return {
    groupId: GROUP,
    epoch: 2,
    initiator: 'alice',
    rosterVersion: 1,
    members,
    contributors,
    nonces: contributors.map(() => randomBytes(32)),
  };
}

function context(over: Partial<MaterialContext> = {}): MaterialContext {
  return {
    self: 'bob',
    groupId: GROUP,
    sender: 'alice',
    epoch: 2,
    answered: undefined,
    roster: { version: 1, members },
    online: members,
    installed: false,
    backlog: false,
    ...over,
  };
}

describe('checkKeyMaterial: this member as a contributor', () => {
  it('live, a key that names a member who never answered is refused', () => {
    const v = checkKeyMaterial(material(['alice', 'bob']), context());
    expect(v.kind).toBe('refuse');
    expect(v.kind === 'refuse' && v.reason).toMatch(/never answered/);
  });

  it('from the backlog (an earlier run answered, unknown now) the same key is accepted', () => {
    expect(checkKeyMaterial(material(['alice', 'bob']), context({ backlog: true }))).toEqual({
      kind: 'accept',
      readOnly: false,
    });
  });

  it('from the backlog, an answer this run did give is still held against the key', () => {
    const m = material(['alice', 'bob']);
    const answered = { initiator: 'alice', epoch: 2, nonce: randomBytes(32), rosterVersion: 1, members };
    const v = checkKeyMaterial(m, context({ backlog: true, answered }));
    expect(v.kind).toBe('refuse');
    const right = checkKeyMaterial(
      m,
      context({ backlog: true, answered: { ...answered, nonce: m.nonces[1] as Buffer } }),
    );
    expect(right.kind).toBe('accept');
  });
});
