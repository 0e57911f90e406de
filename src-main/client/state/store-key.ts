/**
 * Where a member's state store lives and how its key is made when it comes from a password (the
 * terminal client; the desktop app keeps a random key in the OS keystore instead, see
 * src-main/app/member-state.ts).
 *
 * Password keys: scrypt(password, salt, N = 2^15, r = 8, p = 1) → 32 bytes. The salt is random
 * (16 bytes), made when the store is created, and kept in plain text beside the database in
 * `member-state.salt` (JSON with the KDF parameters), because the database itself cannot be read
 * before the key exists.
 */
import { randomBytes, scrypt } from 'node:crypto';
import { readFile, writeFile, mkdir, chmod } from 'node:fs/promises';
import { homedir } from 'node:os';
import { join } from 'node:path';
import { z } from 'zod';
import { StateStoreError } from './errors.js';
import { MemberStateStore, STORE_KEY_BYTES, type MemberStoreOwner } from './member-store.js';

export const STATE_DB_FILE = 'member-state.db';
export const SALT_FILE = 'member-state.salt';

const SaltFileSchema = z.strictObject({
  kdf: z.literal('scrypt'),
  N: z
    .number()
    .int()
    .min(2)
    .max(2 ** 20),
  r: z.number().int().min(1).max(32),
  p: z.number().int().min(1).max(16),
  salt: z.string().regex(/^[0-9a-f]{32,128}$/),
});
type SaltFile = z.output<typeof SaltFileSchema>;

const NEW_SALT_PARAMS = { kdf: 'scrypt', N: 2 ** 15, r: 8, p: 1 } as const;

/** `$XDG_DATA_HOME/securechat-x/<group id>/<name>`, `~/.local/share/…` when XDG_DATA_HOME is unset. */
export function defaultStateDir(
  owner: MemberStoreOwner,
  env: NodeJS.ProcessEnv = process.env,
  home: string = homedir(),
): string {
  const xdg = env.XDG_DATA_HOME;
  // The XDG spec: a relative path is invalid and must be ignored.
  const base = xdg !== undefined && xdg.startsWith('/') ? xdg : join(home, '.local', 'share');
  // Identity names are letters, digits, '.', '_' and '-'; "." and ".." must not become folders.
  const member = /^\.+$/.test(owner.member) ? `_${owner.member}` : owner.member;
  return join(base, 'securechat-x', owner.groupId, member);
}

async function readOrCreateSalt(dir: string): Promise<SaltFile> {
  const path = join(dir, SALT_FILE);
  let text: string | undefined;
  try {
    text = await readFile(path, 'utf8');
  } catch (err) {
    if ((err as NodeJS.ErrnoException).code !== 'ENOENT') {
      throw new StateStoreError('StateStoreIo', `cannot read ${path}: ${(err as Error).message}`, {
        cause: err,
      });
    }
  }
  if (text !== undefined) {
    let parsed: unknown;
    try {
      parsed = JSON.parse(text);
    } catch (err) {
      throw new StateStoreError('StateStoreCorrupt', `${path} is not JSON`, { cause: err });
    }
    const result = SaltFileSchema.safeParse(parsed);
    if (!result.success) throw new StateStoreError('StateStoreCorrupt', `${path} is not a salt file`);
    return result.data;
  }
  const fresh: SaltFile = { ...NEW_SALT_PARAMS, salt: randomBytes(16).toString('hex') };
  try {
    await mkdir(dir, { recursive: true, mode: 0o700 });
    await chmod(dir, 0o700);
    // 'wx': two clients starting at once must not each write a different salt.
    await writeFile(path, `${JSON.stringify(fresh)}\n`, { mode: 0o600, flag: 'wx' });
  } catch (err) {
    if ((err as NodeJS.ErrnoException).code === 'EEXIST') return readOrCreateSalt(dir);
    throw new StateStoreError('StateStoreIo', `cannot write ${path}: ${(err as Error).message}`, {
      cause: err,
    });
  }
  return fresh;
}

/** The store key for `dir` from a password (the salt file is created on first use). */
export async function storeKeyFromPassword(dir: string, password: string): Promise<Buffer> {
  const s = await readOrCreateSalt(dir);
  return new Promise<Buffer>((resolve, reject) => {
    scrypt(
      password,
      Buffer.from(s.salt, 'hex'),
      STORE_KEY_BYTES,
      { N: s.N, r: s.r, p: s.p, maxmem: 256 * s.N * s.r + 1024 * 1024 },
      (err, key) => (err ? reject(err) : resolve(key)),
    );
  });
}

/** Opens (or creates) the store in `dir` with a key derived from `password`. */
export async function openStoreWithPassword(
  dir: string,
  password: string,
  owner: MemberStoreOwner,
): Promise<MemberStateStore> {
  const key = await storeKeyFromPassword(dir, password);
  try {
    return MemberStateStore.open(join(dir, STATE_DB_FILE), key, owner);
  } finally {
    key.fill(0);
  }
}
