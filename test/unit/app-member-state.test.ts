/**
 * The desktop app's member state stores (src-main/app/member-state.ts): real encrypted SQLite files
 * in a temporary data folder, the settings in memory, the keystore an in-memory AES key (or absent).
 */
import { createCipheriv, createDecipheriv, randomBytes } from 'node:crypto';
import { existsSync, mkdirSync, mkdtempSync, readFileSync, statSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { describe, expect, it } from 'vitest';
import { AppMemberState, memberStateDir, stateKeyId } from '../../src-main/app/member-state.js';
import { noSecretStorage } from '../../src-main/app/node-ports.js';
import type { SecretStoragePort, SettingsStore } from '../../src-main/app/ports.js';
import { Settings } from '../../src-main/app/settings.js';
import { StateStoreError } from '../../src-main/client/state/errors.js';
import { SALT_FILE, STATE_DB_FILE } from '../../src-main/client/state/store-key.js';

const owner = { groupId: 'ab'.repeat(32), member: 'alice' };
const PASSWORD = 'correct horse battery staple';

function memorySettings(): { store: SettingsStore; data: Map<string, unknown> } {
  const data = new Map<string, unknown>();
  return {
    data,
    store: {
      get: (key) => structuredClone(data.get(key)),
      set: (key, value) => void data.set(key, structuredClone(value)),
      delete: (key) => void data.delete(key),
    },
  };
}

/** Stands in for safeStorage: AES-256-GCM under a key of this process; `available` can be switched. */
function memoryKeystore(): SecretStoragePort & { available: boolean } {
  const key = randomBytes(32);
  return {
    available: true,
    isAvailable() {
      return this.available;
    },
    encryptString(plain) {
      const iv = randomBytes(12);
      const c = createCipheriv('aes-256-gcm', key, iv);
      const body = Buffer.concat([c.update(plain, 'utf8'), c.final()]);
      return Buffer.concat([iv, c.getAuthTag(), body]);
    },
    decryptString(data) {
      const buf = Buffer.from(data);
      const d = createDecipheriv('aes-256-gcm', key, buf.subarray(0, 12));
      d.setAuthTag(buf.subarray(12, 28));
      return Buffer.concat([d.update(buf.subarray(28)), d.final()]).toString('utf8');
    },
  };
}

interface Setup {
  dataDir: string;
  settings: Settings;
  raw: Map<string, unknown>;
  secrets: SecretStoragePort;
  /** A new AppMemberState over the same folder and settings: the app started again. */
  restart(secrets?: SecretStoragePort): AppMemberState;
}

function setup(secrets: SecretStoragePort): Setup {
  const dataDir = mkdtempSync(join(tmpdir(), 'scx-app-state-'));
  const { store, data } = memorySettings();
  const settings = new Settings(store);
  return {
    dataDir,
    settings,
    raw: data,
    secrets,
    restart: (s = secrets) => new AppMemberState({ dataDir, settings, secrets: s }),
  };
}

function codeOf(fn: () => unknown): string | undefined {
  try {
    fn();
  } catch (err) {
    return err instanceof StateStoreError ? err.code : `not a StateStoreError: ${String(err)}`;
  }
  return undefined;
}

const mode = (path: string): number => statSync(path).mode & 0o777;

async function saveEpoch(state: AppMemberState, epoch: number): Promise<void> {
  await state.unlock(owner, PASSWORD);
  const store = state.open(owner);
  store.save(epoch);
  store.close();
}

async function loadEpoch(state: AppMemberState): Promise<number> {
  await state.unlock(owner, PASSWORD);
  const store = state.open(owner);
  try {
    return store.load();
  } finally {
    store.close();
  }
}

describe('app member state: with a keystore', () => {
  it('makes a random key, keeps it wrapped in the settings, reopens the same store after a restart', async () => {
    const s = setup(memoryKeystore());
    await saveEpoch(s.restart(), 7);
    const dir = memberStateDir(s.dataDir, owner);
    expect(dir).toBe(join(s.dataDir, 'state', owner.groupId, 'alice'));
    expect(existsSync(join(dir, STATE_DB_FILE))).toBe(true);
    // Not the password's: no salt file.
    expect(existsSync(join(dir, SALT_FILE))).toBe(false);
    const wrapped = s.settings.get('stateKeys')?.[stateKeyId(owner)];
    expect(wrapped).toBeDefined();
    // The settings hold the key only as the keystore encrypted it.
    const plainHex = s.secrets.decryptString(Buffer.from(wrapped ?? '', 'base64'));
    expect(plainHex).toMatch(/^[0-9a-f]{64}$/);
    expect(JSON.stringify([...s.raw])).not.toContain(plainHex);

    expect(await loadEpoch(s.restart())).toBe(7);
  });

  it('folders are 0700 and files 0600', async () => {
    const s = setup(memoryKeystore());
    await saveEpoch(s.restart(), 1);
    const dir = memberStateDir(s.dataDir, owner);
    for (const d of [join(s.dataDir, 'state'), join(s.dataDir, 'state', owner.groupId), dir]) {
      expect(mode(d), d).toBe(0o700);
    }
    expect(mode(join(dir, STATE_DB_FILE))).toBe(0o600);
  });

  it('a kept key that is not this store’s is StateKeyWrong, and the store is left as it was', async () => {
    const s = setup(memoryKeystore());
    await saveEpoch(s.restart(), 9);
    const db = join(memberStateDir(s.dataDir, owner), STATE_DB_FILE);
    const before = readFileSync(db);
    const other = Buffer.from(s.secrets.encryptString(randomBytes(32).toString('hex'))).toString('base64');
    const good = s.settings.get('stateKeys');
    s.settings.set('stateKeys', { [stateKeyId(owner)]: other });
    const state = s.restart();
    await state.unlock(owner, PASSWORD);
    expect(codeOf(() => state.open(owner))).toBe('StateKeyWrong');
    expect(readFileSync(db).equals(before)).toBe(true);
    // With the right key back, the old epoch is still there.
    s.settings.set('stateKeys', good ?? {});
    expect(await loadEpoch(s.restart())).toBe(9);
  });

  it('a store whose key is no longer kept is StateKeyWrong: no new key, no new store', async () => {
    const s = setup(memoryKeystore());
    await saveEpoch(s.restart(), 3);
    s.settings.delete('stateKeys');
    const state = s.restart();
    await state.unlock(owner, PASSWORD);
    expect(codeOf(() => state.open(owner))).toBe('StateKeyWrong');
    expect(s.settings.get('stateKeys')).toBeUndefined();
  });

  it('a kept key the keystore cannot decrypt, or no keystore at all, is StateKeyUnavailable', async () => {
    const s = setup(memoryKeystore());
    await saveEpoch(s.restart(), 2);
    const elsewhere = s.restart(memoryKeystore());
    await elsewhere.unlock(owner, PASSWORD);
    expect(codeOf(() => elsewhere.open(owner))).toBe('StateKeyUnavailable');
    const without = s.restart(noSecretStorage);
    await without.unlock(owner, PASSWORD);
    expect(codeOf(() => without.open(owner))).toBe('StateKeyUnavailable');
    // A damaged kept key is reported as such.
    s.settings.set('stateKeys', {
      [stateKeyId(owner)]: Buffer.from(s.secrets.encryptString('not a key')).toString('base64'),
    });
    const damaged = s.restart();
    await damaged.unlock(owner, PASSWORD);
    expect(codeOf(() => damaged.open(owner))).toBe('StateStoreCorrupt');
  });

  it('open() before unlock() for that identity is refused', async () => {
    const s = setup(memoryKeystore());
    const state = s.restart();
    expect(codeOf(() => state.open(owner))).toBe('StateKeyUnavailable');
    await state.unlock({ ...owner, member: 'bob' }, PASSWORD);
    expect(codeOf(() => state.open(owner))).toBe('StateKeyUnavailable');
  });
});

describe('app member state: without a keystore (bundle password)', () => {
  it('derives the key from the password at unlock (salt file beside the store) and reopens it', async () => {
    const s = setup(noSecretStorage);
    await saveEpoch(s.restart(), 11);
    const dir = memberStateDir(s.dataDir, owner);
    expect(mode(join(dir, SALT_FILE))).toBe(0o600);
    expect(mode(join(dir, STATE_DB_FILE))).toBe(0o600);
    expect(mode(dir)).toBe(0o700);
    expect(s.settings.get('stateKeys')).toBeUndefined();
    expect(await loadEpoch(s.restart())).toBe(11);
  });

  it('another password is StateKeyWrong and leaves the store as it was', async () => {
    const s = setup(noSecretStorage);
    await saveEpoch(s.restart(), 4);
    const db = join(memberStateDir(s.dataDir, owner), STATE_DB_FILE);
    const before = readFileSync(db);
    const state = s.restart();
    await state.unlock(owner, 'another password');
    expect(codeOf(() => state.open(owner))).toBe('StateKeyWrong');
    expect(readFileSync(db).equals(before)).toBe(true);
    expect(await loadEpoch(s.restart())).toBe(4);
  });

  it('a damaged salt file does not fail the unlock; opening says StateStoreCorrupt', async () => {
    const s = setup(noSecretStorage);
    await saveEpoch(s.restart(), 4);
    writeFileSync(join(memberStateDir(s.dataDir, owner), SALT_FILE), '{"kdf":"md5"}');
    const state = s.restart();
    await expect(state.unlock(owner, PASSWORD)).resolves.toBeUndefined();
    expect(codeOf(() => state.open(owner))).toBe('StateStoreCorrupt');
  });

  it('a password store stays a password store when a keystore appears later', async () => {
    const s = setup(noSecretStorage);
    await saveEpoch(s.restart(), 5);
    const withKeystore = s.restart(memoryKeystore());
    expect(await loadEpoch(withKeystore)).toBe(5);
    expect(s.settings.get('stateKeys')).toBeUndefined();
  });

  it('lock() zeroes the derived key: the store cannot be opened until the next unlock', async () => {
    const s = setup(noSecretStorage);
    const state = s.restart();
    await state.unlock(owner, PASSWORD);
    state.open(owner).close();
    state.lock();
    expect(codeOf(() => state.open(owner))).toBe('StateKeyUnavailable');
  });
});

describe('app member state: folders and removal', () => {
  it('names "." and ".." do not become folder names; bad group ids are refused', () => {
    expect(memberStateDir('/d', { ...owner, member: '..' })).toBe(join('/d/state', owner.groupId, '_..'));
    expect(memberStateDir('/d', { ...owner, member: '.' })).toBe(join('/d/state', owner.groupId, '_.'));
    expect(codeOf(() => memberStateDir('/d', { groupId: '../x', member: 'alice' }))).toBe('StateStoreIo');
    expect(codeOf(() => memberStateDir('/d', { ...owner, member: 'a/b' }))).toBe('StateStoreIo');
  });

  it('remove() deletes the identity’s folder and kept key, and nothing of another identity', async () => {
    const s = setup(memoryKeystore());
    const bob = { ...owner, member: 'bob' };
    const state = s.restart();
    await saveEpoch(state, 6);
    await state.unlock(bob, PASSWORD);
    state.open(bob).close();
    await state.remove(owner);
    expect(existsSync(memberStateDir(s.dataDir, owner))).toBe(false);
    expect(existsSync(memberStateDir(s.dataDir, bob))).toBe(true);
    expect(Object.keys(s.settings.get('stateKeys') ?? {})).toEqual([stateKeyId(bob)]);
    // bob's store is still open-able: removing alice locked nothing of his.
    state.open(bob).close();
    await state.remove(bob);
    expect(existsSync(join(s.dataDir, 'state', owner.groupId))).toBe(false);
    expect(s.settings.get('stateKeys')).toEqual({});
    // A fresh start after removal: a new, empty store.
    expect(await loadEpoch(s.restart())).toBe(0);
  });

  it('a file in the way of the folder is StateStoreIo, not a crash', async () => {
    const s = setup(noSecretStorage);
    mkdirSync(join(s.dataDir, 'state'), { recursive: true });
    writeFileSync(join(s.dataDir, 'state', owner.groupId), 'in the way');
    const state = s.restart();
    await state.unlock(owner, PASSWORD);
    expect(codeOf(() => state.open(owner))).toBe('StateStoreIo');
  });
});
