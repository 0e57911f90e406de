/**
 * The member's encrypted state store (src-main/client/state): real SQLCipher-format files in a
 * temporary folder.
 */
import { randomBytes } from 'node:crypto';
import { mkdtempSync, readFileSync, statSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import Database from 'better-sqlite3-multiple-ciphers';
import { describe, expect, it } from 'vitest';
import { StateStoreError } from '../../src-main/client/state/errors.js';
import { MemberStateStore, SCHEMA_VERSION } from '../../src-main/client/state/member-store.js';
import {
  defaultStateDir,
  openStoreWithPassword,
  SALT_FILE,
  STATE_DB_FILE,
} from '../../src-main/client/state/store-key.js';

const owner = { groupId: 'ab'.repeat(32), member: 'alice' };
const tmp = () => mkdtempSync(join(tmpdir(), 'scx-store-'));

function codeOf(fn: () => unknown): string | undefined {
  try {
    fn();
  } catch (err) {
    return err instanceof StateStoreError ? err.code : `not a StateStoreError: ${String(err)}`;
  }
  return undefined;
}

describe('member state store', () => {
  it('keeps the highest epoch across reopen, never lowers it, and is encrypted on disk', () => {
    const path = join(tmp(), 'm.db');
    const key = randomBytes(32);
    const a = MemberStateStore.open(path, key, owner);
    expect(a.load()).toBe(0);
    a.save(5);
    a.save(3);
    expect(a.load()).toBe(5);
    a.close();
    const b = MemberStateStore.open(path, key, owner);
    expect(b.load()).toBe(5);
    b.close();
    const head = readFileSync(path).subarray(0, 16).toString('latin1');
    expect(head).not.toContain('SQLite format');
    expect(readFileSync(path).includes(Buffer.from('highestEpoch'))).toBe(false);
  });

  it('a wrong key is StateKeyWrong; another member or group is StateStoreMismatch', () => {
    const path = join(tmp(), 'm.db');
    const key = randomBytes(32);
    MemberStateStore.open(path, key, owner).close();
    expect(codeOf(() => MemberStateStore.open(path, randomBytes(32), owner))).toBe('StateKeyWrong');
    expect(codeOf(() => MemberStateStore.open(path, key, { ...owner, member: 'bob' }))).toBe(
      'StateStoreMismatch',
    );
    expect(codeOf(() => MemberStateStore.open(path, key, { ...owner, groupId: 'cd'.repeat(32) }))).toBe(
      'StateStoreMismatch',
    );
  });

  it('is schema-versioned: migrations are recorded, a newer schema is refused', () => {
    const path = join(tmp(), 'm.db');
    const key = randomBytes(32);
    MemberStateStore.open(path, key, owner).close();
    const db = new Database(path);
    db.pragma(`cipher = 'sqlcipher'`);
    db.pragma('legacy = 4');
    db.pragma(`key = "x'${key.toString('hex')}'"`);
    const versions = db.prepare('SELECT version FROM schema_migrations ORDER BY version').all();
    expect(versions).toEqual(Array.from({ length: SCHEMA_VERSION }, (_, i) => ({ version: i + 1 })));
    db.prepare('INSERT INTO schema_migrations (version, applied_at) VALUES (?, ?)').run(
      SCHEMA_VERSION + 1,
      0,
    );
    db.close();
    expect(codeOf(() => MemberStateStore.open(path, key, owner))).toBe('StateStoreTooNew');
  });

  it('with a password: folder 0700, files 0600, salt beside the database, wrong password refused', async () => {
    const dir = join(tmp(), 'nested', 'alice');
    const store = await openStoreWithPassword(dir, 'correct horse', owner);
    store.save(9);
    store.close();
    expect(statSync(dir).mode & 0o777).toBe(0o700);
    expect(statSync(join(dir, STATE_DB_FILE)).mode & 0o777).toBe(0o600);
    expect(statSync(join(dir, SALT_FILE)).mode & 0o777).toBe(0o600);
    const again = await openStoreWithPassword(dir, 'correct horse', owner);
    expect(again.load()).toBe(9);
    again.close();
    await expect(openStoreWithPassword(dir, 'wrong', owner)).rejects.toMatchObject({ code: 'StateKeyWrong' });
  });

  it('default folder: XDG_DATA_HOME, else ~/.local/share, per group and member', () => {
    expect(defaultStateDir(owner, { XDG_DATA_HOME: '/x/data' }, '/home/u')).toBe(
      `/x/data/securechat-x/${owner.groupId}/alice`,
    );
    expect(defaultStateDir(owner, {}, '/home/u')).toBe(
      `/home/u/.local/share/securechat-x/${owner.groupId}/alice`,
    );
    expect(defaultStateDir(owner, { XDG_DATA_HOME: 'relative' }, '/home/u')).toBe(
      `/home/u/.local/share/securechat-x/${owner.groupId}/alice`,
    );
  });
});
