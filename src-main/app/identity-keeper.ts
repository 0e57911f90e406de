/**
 * One group's identity: keeping an imported certificate bundle (the password-protected .p12 in
 * the data folder, its password in the OS keystore when there is one), reopening it at start or
 * with the password (unlock), and removing it. The app holds one per group (group-session.ts);
 * its record is one entry of the kept identities (kept-identities.ts). Each opening also unlocks
 * the identity's state store key (member-state.ts): the only moments the bundle password is at hand.
 */
import { existsSync } from 'node:fs';
import { mkdir, readFile, rm, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import type { LocalIdentity } from '../core/pki/local-identity.js';
import type { Args } from '../../src-shared/ipc-contract.js';
import type { IdentityState, IdentityView } from '../../src-shared/model.js';
import { openBundle } from './bundle-files.js';
import { AppFailure, toAppError } from './errors.js';
import type { EventHub } from './event-hub.js';
import type { AppMemberState } from './member-state.js';
import type { AppServicePorts } from './ports.js';
import { bundleFileOf, ownerKey, type KeptIdentities } from './kept-identities.js';
import type { KeptIdentity } from './settings.js';

function identityView(identity: LocalIdentity, storage: IdentityView['storage']): IdentityView {
  const cert = identity.certificate;
  return {
    name: cert.name,
    fingerprint: cert.fingerprintHex,
    issuer: cert.issuerName,
    groupId: identity.groupId,
    caFingerprint: identity.ca.fingerprintHex,
    notBefore: cert.notBefore.getTime(),
    notAfter: cert.notAfter.getTime(),
    storage,
  };
}

export interface IdentityKeeperDeps {
  ports: Pick<AppServicePorts, 'dataDir' | 'secrets' | 'pki'>;
  hub: EventHub;
  kept: KeptIdentities;
  /** `<group id>/<name>`: the identity this keeper holds. */
  owner: string;
  memberState: AppMemberState;
  /** The identity is open (import, unlock, start with the keystore): its history can be shown. */
  onOpened?: (identity: LocalIdentity) => void;
}

export class IdentityKeeper {
  readonly #deps: IdentityKeeperDeps;
  #identity: LocalIdentity | undefined;
  #state: IdentityState = { status: 'none' };

  constructor(deps: IdentityKeeperDeps) {
    this.#deps = deps;
  }

  get state(): IdentityState {
    return this.#state;
  }

  /** The open identity, if any. */
  get current(): LocalIdentity | undefined {
    return this.#identity;
  }

  /** The open identity; IdentityLocked or NoIdentity otherwise. */
  require(): LocalIdentity {
    if (this.#identity) return this.#identity;
    if (this.#state.status === 'locked')
      throw new AppFailure('IdentityLocked', 'Unlock your certificate bundle with its password first.');
    throw new AppFailure('NoIdentity', 'Import your certificate bundle first.');
  }

  secretsAvailable(): boolean {
    try {
      return this.#deps.ports.secrets.isAvailable();
    } catch {
      return false;
    }
  }

  /** At start: reopens the kept identity without a prompt when the keystore holds its password. */
  async restore(): Promise<void> {
    const { ports, kept: keptIdentities, owner } = this.#deps;
    const kept = keptIdentities.get(owner);
    if (!kept) return;
    const file = join(ports.dataDir, kept.file);
    if (!existsSync(file)) {
      keptIdentities.remove(owner);
      return;
    }
    if (kept.encryptedPassword !== undefined && this.secretsAvailable()) {
      try {
        const password = ports.secrets.decryptString(Buffer.from(kept.encryptedPassword, 'base64'));
        const data = await readFile(file);
        const identity = await openBundle(ports.pki, data, password, 'member');
        data.fill(0);
        await this.#unlockState(identity, password);
        this.#setIdentity(identity, 'safeStorage');
        return;
      } catch (err) {
        this.#setState({
          status: 'locked',
          name: kept.name,
          fingerprint: kept.fingerprint,
          reason: `The saved password could not open your bundle (${toAppError(err, 'identity').message}) Enter it again.`,
        });
        return;
      }
    }
    this.#setState({ status: 'locked', name: kept.name, fingerprint: kept.fingerprint });
  }

  /** A bundle of this identity, opened by the caller (import): kept, and the identity opened. */
  async adopt(identity: LocalIdentity, data: Buffer, password: string): Promise<IdentityView> {
    if (ownerKey({ groupId: identity.groupId, name: identity.name }) !== this.#deps.owner)
      throw new AppFailure('Internal', 'Something went wrong: this bundle belongs to another group.');
    const storage = await this.#keep(identity, data, password);
    await this.#unlockState(identity, password);
    return this.#setIdentity(identity, storage);
  }

  /** Opens the kept bundle with its password (no keystore, or the keystore could not). */
  async unlock(arg: Args<'unlockIdentity'>): Promise<IdentityView> {
    const { ports, kept: keptIdentities, owner } = this.#deps;
    const kept = keptIdentities.get(owner);
    if (!kept)
      throw new AppFailure('NoIdentity', 'No certificate bundle is kept on this computer. Import one.');
    const data = await readFile(join(ports.dataDir, kept.file));
    try {
      const identity = await openBundle(ports.pki, data, arg.password, 'member');
      if (ownerKey({ groupId: identity.groupId, name: identity.name }) !== owner)
        throw new AppFailure(
          'NotABundle',
          'The kept bundle is not this identity’s any more. Import it again.',
        );
      const storage = await this.#keep(identity, data, arg.password);
      await this.#unlockState(identity, arg.password);
      return this.#setIdentity(identity, storage);
    } finally {
      data.fill(0);
    }
  }

  /** Forgets the identity: its state store and kept key first, then the bundle (engine stopped before). */
  async remove(): Promise<void> {
    const { ports, kept: keptIdentities, owner, memberState } = this.#deps;
    const kept = keptIdentities.get(owner);
    // The state first: if its folder cannot be deleted, the identity stays and the user can retry.
    if (kept) await memberState.remove({ groupId: kept.groupId, member: kept.name });
    if (kept) await rm(join(ports.dataDir, kept.file), { force: true });
    keptIdentities.remove(owner);
    this.#identity = undefined;
    this.#setState({ status: 'none' });
  }

  /** Keeps the password-protected bundle in the data folder, and the password in the keystore if it can. */
  async #keep(identity: LocalIdentity, data: Buffer, password: string): Promise<IdentityView['storage']> {
    const { ports, kept: keptIdentities, owner } = this.#deps;
    const previous = keptIdentities.get(owner);
    const file = previous?.file ?? bundleFileOf(owner);
    await mkdir(ports.dataDir, { recursive: true, mode: 0o700 });
    await writeFile(join(ports.dataDir, file), data, { mode: 0o600 });
    let encryptedPassword: string | undefined;
    if (this.secretsAvailable()) {
      try {
        encryptedPassword = Buffer.from(ports.secrets.encryptString(password)).toString('base64');
      } catch {
        encryptedPassword = undefined;
      }
    }
    // The group's preferences (marks, relay) stay; the wrapped password is the new one or none.
    const { encryptedPassword: _previousPassword, ...preferences } = previous ?? {};
    const kept: KeptIdentity = {
      ...preferences,
      name: identity.name,
      fingerprint: identity.certificate.fingerprintHex,
      groupId: identity.groupId,
      groupName: identity.ca.name,
      file,
      ...(encryptedPassword !== undefined ? { encryptedPassword } : {}),
    };
    keptIdentities.put(kept);
    return encryptedPassword !== undefined ? 'safeStorage' : 'password';
  }

  /** The state store's key comes from the password at unlock (member-state.ts); never fails. */
  async #unlockState(identity: LocalIdentity, password: string): Promise<void> {
    await this.#deps.memberState.unlock({ groupId: identity.groupId, member: identity.name }, password);
  }

  #setState(state: IdentityState): void {
    this.#state = state;
    this.#deps.hub.emit({ type: 'identity', identity: state });
  }

  #setIdentity(identity: LocalIdentity, storage: IdentityView['storage']): IdentityView {
    this.#identity = identity;
    const view = identityView(identity, storage);
    this.#setState({ status: 'ready', identity: view });
    this.#deps.onOpened?.(identity);
    return view;
  }
}
