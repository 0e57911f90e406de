/**
 * The desktop member's state store (DESIGN.md §10.4): the same encrypted MemberStateStore as the
 * CLI's, so that epoch numbers never repeat across restarts of the app, kept at
 * `<dataDir>/state/<group id>/<name>/member-state.db` (folders 0700, files 0600).
 *
 * Its 32-byte key comes from one of two places, decided per identity when the identity is
 * unlocked (the only moment the bundle password is at hand):
 * - **keystore**: a random key, encrypted by the secret-storage port (Electron safeStorage) and
 *   kept in the settings (`stateKeys`, one entry per `<group id>/<name>`). Made on first open.
 * - **password**: where the keystore is unavailable, scrypt of the bundle password with the salt
 *   file beside the database (storeKeyFromPassword, as in the CLI). Derived at unlock and held in
 *   memory until the identity is locked again (removed, replaced, app quit).
 * A store keeps the kind it was made with: a kept wrapped key means keystore, a salt file means
 * password, whatever the keystore says today. Otherwise a keystore appearing or disappearing
 * would produce another key, and the store would become unreadable.
 *
 * A key that does not open an existing database is an error (StateKeyWrong), never a reason to
 * make a new, empty store over it: an empty store would let this member reuse epoch numbers.
 */
import { randomBytes } from 'node:crypto';
import { chmodSync, existsSync, mkdirSync, statSync } from 'node:fs';
import { rm, rmdir } from 'node:fs/promises';
import { join } from 'node:path';
import { IDENTITY_NAME_PATTERN } from '../core/pki/identity-name.js';
import { StateStoreError } from '../client/state/errors.js';
import { MemberStateStore, STORE_KEY_BYTES, type MemberStoreOwner } from '../client/state/member-store.js';
import { SALT_FILE, STATE_DB_FILE, storeKeyFromPassword } from '../client/state/store-key.js';
import type { SecretStoragePort } from './ports.js';
import type { Settings } from './settings.js';

export const STATE_FOLDER = 'state';

const GROUP_ID_PATTERN = /^[0-9a-f]{64}$/;

export interface MemberStateDeps {
  /** The app's private data folder (ports.dataDir). */
  dataDir: string;
  settings: Settings;
  secrets: SecretStoragePort;
}

/** Where the key of the unlocked identity's store comes from. */
type KeySource =
  | { kind: 'keystore' }
  | { kind: 'password'; key: Buffer }
  /** Preparing the key failed at unlock; reported when the store is opened (at connect). */
  | { kind: 'failed'; error: StateStoreError };

/** The settings key of an identity's wrapped store key. */
export function stateKeyId(owner: MemberStoreOwner): string {
  return `${owner.groupId}/${owner.member}`;
}

/** `<dataDir>/state/<group id>/<name>`: one folder per identity, like the CLI's default folder. */
export function memberStateDir(dataDir: string, owner: MemberStoreOwner): string {
  // Both parts come from a verified certificate; check anyway, they become path segments.
  if (!GROUP_ID_PATTERN.test(owner.groupId) || !IDENTITY_NAME_PATTERN.test(owner.member)) {
    throw new StateStoreError('StateStoreIo', `not a valid identity for a state folder: ${owner.member}`);
  }
  // Names may be "." or "..": those must not become folders.
  const member = /^\.+$/.test(owner.member) ? `_${owner.member}` : owner.member;
  return join(dataDir, STATE_FOLDER, owner.groupId, member);
}

function asStateError(err: unknown, doing: string): StateStoreError {
  if (err instanceof StateStoreError) return err;
  return new StateStoreError('StateStoreIo', `${doing}: ${(err as Error).message}`, { cause: err });
}

export class AppMemberState {
  readonly #deps: MemberStateDeps;
  /** The key source of each identity unlocked in this run, by `<group id>/<name>`. */
  readonly #unlocked = new Map<string, KeySource>();

  constructor(deps: MemberStateDeps) {
    this.#deps = deps;
  }

  dirOf(owner: MemberStoreOwner): string {
    return memberStateDir(this.#deps.dataDir, owner);
  }

  /**
   * Called when an identity is opened with its password (import, unlock, start with the
   * keystore): decides where its store key comes from and derives it if it is the password's.
   * Never throws: the identity is usable without its store; a failure is reported by open().
   */
  async unlock(owner: MemberStoreOwner, password: string): Promise<void> {
    this.lock(owner);
    const id = stateKeyId(owner);
    let source: KeySource;
    try {
      const dir = this.dirOf(owner);
      if (this.#wrappedKey(id) !== undefined) source = { kind: 'keystore' };
      else if (existsSync(join(dir, SALT_FILE))) source = await this.#passwordSource(dir, password);
      else if (this.#secretsAvailable()) source = { kind: 'keystore' };
      else source = await this.#passwordSource(dir, password);
    } catch (err) {
      source = { kind: 'failed', error: asStateError(err, 'cannot prepare the state key') };
    }
    this.#unlocked.set(id, source);
  }

  /**
   * Zeroes the password-derived key held since unlock: of `owner` (its identity removed or
   * imported again), or of every identity (app quit).
   */
  lock(owner?: MemberStoreOwner): void {
    const ids = owner ? [stateKeyId(owner)] : [...this.#unlocked.keys()];
    for (const id of ids) {
      const source = this.#unlocked.get(id);
      if (source?.kind === 'password') source.key.fill(0);
      this.#unlocked.delete(id);
    }
  }

  /** Opens (or creates) the unlocked identity's store; throws StateStoreError. */
  open(owner: MemberStoreOwner): MemberStateStore {
    const source = this.#unlocked.get(stateKeyId(owner));
    if (!source) {
      throw new StateStoreError('StateKeyUnavailable', `the state store of ${owner.member} is not unlocked`);
    }
    if (source.kind === 'failed') throw source.error;
    const dir = this.dirOf(owner);
    const dbPath = join(dir, STATE_DB_FILE);
    // MemberStateStore.open does not keep the key; the copy is zeroed here, the held one at lock().
    const key = source.kind === 'password' ? Buffer.from(source.key) : this.#keystoreKey(owner, dbPath);
    try {
      makePrivateFolders(this.#deps.dataDir, dir);
      return MemberStateStore.open(dbPath, key, owner);
    } catch (err) {
      throw asStateError(err, `cannot open ${dbPath}`);
    } finally {
      key.fill(0);
    }
  }

  /** Deletes an identity's store folder and its kept key (the identity is removed). */
  async remove(owner: MemberStoreOwner): Promise<void> {
    this.lock(owner);
    const dir = this.dirOf(owner);
    try {
      await rm(dir, { recursive: true, force: true });
      // The group's folder too, once no other identity of that group has one.
      await rmdir(join(this.#deps.dataDir, STATE_FOLDER, owner.groupId)).catch(() => undefined);
    } catch (err) {
      throw asStateError(err, `cannot delete ${dir}`);
    }
    const keys = this.#deps.settings.get('stateKeys');
    if (keys && stateKeyId(owner) in keys) {
      const { [stateKeyId(owner)]: _removed, ...rest } = keys;
      this.#deps.settings.set('stateKeys', rest);
    }
  }

  #secretsAvailable(): boolean {
    try {
      return this.#deps.secrets.isAvailable();
    } catch {
      return false;
    }
  }

  #wrappedKey(id: string): string | undefined {
    return this.#deps.settings.get('stateKeys')?.[id];
  }

  async #passwordSource(dir: string, password: string): Promise<KeySource> {
    // storeKeyFromPassword makes the salt file (and the leaf folder); the parents must be private too.
    makePrivateFolders(this.#deps.dataDir, dir);
    return { kind: 'password', key: await storeKeyFromPassword(dir, password) };
  }

  /** The kept random key, unwrapped by the keystore; made (and kept first) for a new store. */
  #keystoreKey(owner: MemberStoreOwner, dbPath: string): Buffer {
    const id = stateKeyId(owner);
    const wrapped = this.#wrappedKey(id);
    if (wrapped !== undefined) return this.#unwrap(wrapped);
    if (existsSync(dbPath) && statSync(dbPath).size > 0) {
      // A store exists but its key is no longer kept (settings reset or edited): never replace it.
      throw new StateStoreError(
        'StateKeyWrong',
        `${dbPath} exists but its key is no longer kept in the settings`,
      );
    }
    if (!this.#secretsAvailable()) {
      throw new StateStoreError('StateKeyUnavailable', 'the system keystore is not available');
    }
    const key = randomBytes(STORE_KEY_BYTES);
    let sealed: string;
    try {
      // The port takes strings: the hex form of the key cannot be zeroed (JavaScript strings).
      sealed = Buffer.from(this.#deps.secrets.encryptString(key.toString('hex'))).toString('base64');
    } catch (err) {
      key.fill(0);
      throw new StateStoreError('StateKeyUnavailable', 'the system keystore cannot encrypt the state key', {
        cause: err,
      });
    }
    // Kept before the database exists: a database whose key was never kept could not be opened again.
    try {
      this.#deps.settings.set('stateKeys', { ...this.#deps.settings.get('stateKeys'), [id]: sealed });
    } catch (err) {
      key.fill(0);
      throw asStateError(err, 'cannot keep the state key in the settings');
    }
    return key;
  }

  #unwrap(wrapped: string): Buffer {
    if (!this.#secretsAvailable()) {
      throw new StateStoreError(
        'StateKeyUnavailable',
        'the state key is kept by the system keystore, which is not available now',
      );
    }
    let hex: string;
    try {
      hex = this.#deps.secrets.decryptString(Buffer.from(wrapped, 'base64'));
    } catch (err) {
      throw new StateStoreError(
        'StateKeyUnavailable',
        'the system keystore cannot decrypt the state key (another user account or computer?)',
        { cause: err },
      );
    }
    if (!/^[0-9a-f]{64}$/.test(hex)) {
      throw new StateStoreError('StateStoreCorrupt', 'the kept state key is not a 32-byte key');
    }
    return Buffer.from(hex, 'hex');
  }
}

/** `<dataDir>/state/<group id>/<name>`, each level 0700 (mkdir's mode does not touch existing ones). */
function makePrivateFolders(dataDir: string, dir: string): void {
  mkdirSync(dir, { recursive: true, mode: 0o700 });
  const root = join(dataDir, STATE_FOLDER);
  for (let d = dir; d.startsWith(root); d = join(d, '..')) chmodSync(d, 0o700);
}
