/**
 * The desktop app's service: everything the window can ask for, in plain Node (no electron
 * import). The Electron shell binds it to IPC; the browser tests bind it to Playwright pages.
 *
 * Every public method returns the contract's Result union and never throws. Events for the
 * window go to the listeners registered with on(). Opening bundles and creating groups run in the
 * PKI worker thread (ports.pki), never on this event loop.
 */
import { randomBytes } from 'node:crypto';
import { existsSync } from 'node:fs';
import { mkdir, readFile, rm, stat, writeFile } from 'node:fs/promises';
import { basename, join } from 'node:path';
import { MAX_BUNDLE_BYTES, DEFAULT_KDF_ITERATIONS } from '../core/pki/bundle.js';
import { formatFingerprint } from '../core/pki/fingerprint.js';
import { LocalIdentity } from '../core/pki/local-identity.js';
import { ROSTER_FILE } from '../core/roster/index.js';
import type { ChatEngineApi, EngineEvent } from '../client/engine-types.js';
import type { MemberStateStore } from '../client/state/member-store.js';
import type {
  AppEvent,
  AppEventListener,
  Args,
  Responses,
  Result,
  ServiceApi,
} from '../../src-shared/ipc-contract.js';
import type {
  AppSnapshot,
  ChatLine,
  ConnectionView,
  FileChoice,
  FingerprintWarning,
  IdentityState,
  IdentityView,
  KeyView,
  MemberEntry,
  MemberView,
  RelayView,
} from '../../src-shared/model.js';
import { AppFailure, toAppError, toResult } from './errors.js';
import { AppMemberState } from './member-state.js';
import type { AppServicePorts, RelayChildMessage, RelayProcess } from './ports.js';
import { Settings, type KeptIdentity } from './settings.js';

const KEPT_BUNDLE_FILE = 'identity.p12';
const CHOICE_TTL_MS = 30 * 60_000;
const MAX_TIMELINE = 5_000;
const RELAY_START_TIMEOUT_MS = 60_000;

interface Choice {
  path: string;
  kind: 'bundle' | 'folder';
  expires: number;
}

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

/** Turns an engine reason ("connect ECONNREFUSED 127.0.0.1:4000") into plain words. */
export function describeConnectionReason(
  reason: string | undefined,
  address?: { host: string; port: number },
): string | undefined {
  if (reason === undefined) return undefined;
  const where = address ? `${address.host}:${address.port}` : 'the relay';
  if (/ECONNREFUSED/i.test(reason)) return `Relay unreachable: nothing is listening at ${where}.`;
  if (/ENOTFOUND|EAI_AGAIN/i.test(reason)) return `Relay unreachable: the host name of ${where} is unknown.`;
  if (/ETIMEDOUT|EHOSTUNREACH|ENETUNREACH/i.test(reason))
    return `Relay unreachable: ${where} does not answer.`;
  if (/ECONNRESET|EPIPE|socket hang up/i.test(reason)) return `The relay at ${where} closed the connection.`;
  return reason;
}

function withoutKey(record: Record<string, string>, key: string): Record<string, string> {
  return Object.fromEntries(Object.entries(record).filter(([k]) => k !== key));
}

export class AppService implements ServiceApi {
  readonly #ports: AppServicePorts;
  readonly #settings: Settings;
  readonly #listeners = new Set<AppEventListener>();
  readonly #choices = new Map<string, Choice>();

  #identity: LocalIdentity | undefined;
  #identityState: IdentityState = { status: 'none' };
  #engine: ChatEngineApi | undefined;
  #engineOff: (() => void) | undefined;
  /** The identity's state stores (member-state.ts); the one open while an engine runs. */
  readonly #memberState: AppMemberState;
  #stateStore: MemberStateStore | undefined;
  #connection: ConnectionView = { state: 'Disconnected' };
  #loggedIn = false;
  #reportedUnreachable = false;
  #rawMembers: MemberView[] = [];
  #members: MemberEntry[] = [];
  /** Session memory of verified members whose certificate changed: name → previously verified fingerprint. */
  readonly #changed = new Map<string, string>();
  #warnings: FingerprintWarning[] = [];
  #key: KeyView | undefined;
  #timeline: ChatLine[] = [];
  #lineSeq = 0;
  #relay: RelayView = { status: 'stopped', memberCount: 0, members: [] };
  #relayProcess: RelayProcess | undefined;
  /** A startRelay is checking its bundle (in the PKI worker) and has not launched yet. */
  #relayChecking = false;
  #relayStopping = false;

  private constructor(ports: AppServicePorts) {
    this.#ports = ports;
    this.#settings = new Settings(ports.settings);
    this.#memberState = new AppMemberState({
      dataDir: ports.dataDir,
      settings: this.#settings,
      secrets: ports.secrets,
    });
  }

  /** Creates the service and reopens the kept identity (without a prompt when the keystore can). */
  static async create(ports: AppServicePorts): Promise<AppService> {
    const service = new AppService(ports);
    await service.#restoreIdentity();
    return service;
  }

  // ---- events ------------------------------------------------------------------------------

  on(listener: AppEventListener): () => void {
    this.#listeners.add(listener);
    return () => this.#listeners.delete(listener);
  }

  #emit(event: AppEvent): void {
    for (const listener of [...this.#listeners]) {
      try {
        listener(event);
      } catch {
        // A broken listener (closed window) must not stop the others.
      }
    }
  }

  /** For the shell's menu: asks the window to open one of its dialogs. */
  requestMenuAction(action: Extract<AppEvent, { type: 'menu' }>['action']): void {
    this.#emit({ type: 'menu', action });
  }

  // ---- snapshot & settings -----------------------------------------------------------------

  async getSnapshot(): Promise<Result<Responses['getSnapshot']>> {
    return toResult(() => this.snapshot());
  }

  snapshot(): AppSnapshot {
    return {
      app: {
        ...this.#ports.appInfo,
        secretStorageAvailable: this.#secretsAvailable(),
      },
      identity: this.#identityState,
      connection: this.#connection,
      members: this.#members,
      ...(this.#key ? { key: this.#key } : {}),
      timeline: [...this.#timeline],
      warnings: [...this.#warnings],
      relay: this.#relay,
      settings: this.#settings.view(),
    };
  }

  async updateSettings(arg: Args<'updateSettings'>): Promise<Result<Responses['updateSettings']>> {
    return toResult(() => {
      if (arg.theme !== undefined) this.#settings.set('theme', arg.theme);
      if (arg.notifications !== undefined) this.#settings.set('notifications', arg.notifications);
      if (arg.notificationPreviews !== undefined)
        this.#settings.set('notificationPreviews', arg.notificationPreviews);
      const settings = this.#settings.view();
      this.#emit({ type: 'settings', settings });
      return settings;
    });
  }

  // ---- dialogs -----------------------------------------------------------------------------

  async chooseBundle(arg: Args<'chooseBundle'>): Promise<Result<Responses['chooseBundle']>> {
    return toResult(async () => {
      const path = await this.#ports.dialogs.openBundle(arg.purpose);
      return path === null ? null : this.#remember(path, 'bundle');
    });
  }

  async chooseFolder(): Promise<Result<Responses['chooseFolder']>> {
    return toResult(async () => {
      const path = await this.#ports.dialogs.chooseFolder();
      return path === null ? null : this.#remember(path, 'folder');
    });
  }

  #remember(path: string, kind: Choice['kind']): FileChoice {
    const now = Date.now();
    for (const [token, choice] of this.#choices) if (choice.expires < now) this.#choices.delete(token);
    const token = randomBytes(18).toString('base64url');
    this.#choices.set(token, { path, kind, expires: now + CHOICE_TTL_MS });
    return { token, displayName: basename(path) };
  }

  #resolve(token: string, kind: Choice['kind']): string {
    const choice = this.#choices.get(token);
    if (!choice || choice.kind !== kind || choice.expires < Date.now()) {
      throw new AppFailure(
        'ChoiceExpired',
        kind === 'bundle' ? 'Choose the bundle file again.' : 'Choose the folder again.',
      );
    }
    return choice.path;
  }

  async #readBundleFile(path: string): Promise<Buffer> {
    const info = await stat(path);
    if (!info.isFile() || info.size === 0 || info.size > MAX_BUNDLE_BYTES) {
      throw new AppFailure(
        'NotABundle',
        'This file is not a SecureChat-X certificate bundle (.p12): it is empty, a folder or far too large.',
      );
    }
    return readFile(path);
  }

  /** Opens a bundle in the PKI worker; the private key goes straight into a LocalIdentity. */
  async #openBundle(data: Uint8Array, password: string, role: 'member' | 'relay'): Promise<LocalIdentity> {
    return LocalIdentity.fromBundle(await this.#ports.pki.readBundle(data, password), role);
  }

  // ---- identity ----------------------------------------------------------------------------

  #secretsAvailable(): boolean {
    try {
      return this.#ports.secrets.isAvailable();
    } catch {
      return false;
    }
  }

  async #restoreIdentity(): Promise<void> {
    const kept = this.#settings.get('identity');
    if (!kept) return;
    const file = join(this.#ports.dataDir, kept.file);
    if (!existsSync(file)) {
      this.#settings.delete('identity');
      return;
    }
    if (kept.encryptedPassword !== undefined && this.#secretsAvailable()) {
      try {
        const password = this.#ports.secrets.decryptString(Buffer.from(kept.encryptedPassword, 'base64'));
        const data = await readFile(file);
        const identity = await this.#openBundle(data, password, 'member');
        data.fill(0);
        await this.#unlockState(identity, password);
        this.#setIdentity(identity, 'safeStorage');
        return;
      } catch (err) {
        this.#setIdentityState({
          status: 'locked',
          name: kept.name,
          fingerprint: kept.fingerprint,
          reason: `The saved password could not open your bundle (${toAppError(err, 'identity').message}) Enter it again.`,
        });
        return;
      }
    }
    this.#setIdentityState({ status: 'locked', name: kept.name, fingerprint: kept.fingerprint });
  }

  #setIdentityState(state: IdentityState): void {
    this.#identityState = state;
    this.#emit({ type: 'identity', identity: state });
  }

  #setIdentity(identity: LocalIdentity, storage: IdentityView['storage']): IdentityView {
    this.#identity = identity;
    const view = identityView(identity, storage);
    this.#setIdentityState({ status: 'ready', identity: view });
    return view;
  }

  #assertNotConnected(what: string): void {
    if (this.#engine && !['Disconnected', 'Failed'].includes(this.#connection.state)) {
      throw new AppFailure('AlreadyConnected', `Disconnect before ${what}.`);
    }
  }

  async importIdentity(arg: Args<'importIdentity'>): Promise<Result<Responses['importIdentity']>> {
    return toResult(async () => {
      this.#assertNotConnected('changing your identity');
      const data = await this.#readBundleFile(this.#resolve(arg.token, 'bundle'));
      try {
        const identity = await this.#openBundle(data, arg.password, 'member');
        // A connect may have started while the worker was busy.
        this.#assertNotConnected('changing your identity');
        const storage = await this.#keep(identity, data, arg.password);
        await this.#unlockState(identity, arg.password);
        this.#choices.delete(arg.token);
        return this.#setIdentity(identity, storage);
      } finally {
        data.fill(0);
      }
    }, 'identity');
  }

  /** Keeps the password-protected bundle in the data folder, and the password in the keystore if it can. */
  async #keep(identity: LocalIdentity, data: Buffer, password: string): Promise<IdentityView['storage']> {
    const previous = this.#settings.get('identity');
    if (previous && previous.groupId !== identity.groupId) {
      // Verified marks belong to one group's certificates.
      this.#settings.delete('verified');
      this.#changed.clear();
    }
    await mkdir(this.#ports.dataDir, { recursive: true, mode: 0o700 });
    await writeFile(join(this.#ports.dataDir, KEPT_BUNDLE_FILE), data, { mode: 0o600 });
    let encryptedPassword: string | undefined;
    if (this.#secretsAvailable()) {
      try {
        encryptedPassword = Buffer.from(this.#ports.secrets.encryptString(password)).toString('base64');
      } catch {
        encryptedPassword = undefined;
      }
    }
    const kept: KeptIdentity = {
      name: identity.name,
      fingerprint: identity.certificate.fingerprintHex,
      groupId: identity.groupId,
      file: KEPT_BUNDLE_FILE,
      ...(encryptedPassword !== undefined ? { encryptedPassword } : {}),
    };
    this.#settings.set('identity', kept);
    return encryptedPassword !== undefined ? 'safeStorage' : 'password';
  }

  async unlockIdentity(arg: Args<'unlockIdentity'>): Promise<Result<Responses['unlockIdentity']>> {
    return toResult(async () => {
      const kept = this.#settings.get('identity');
      if (!kept)
        throw new AppFailure('NoIdentity', 'No certificate bundle is kept on this computer. Import one.');
      const data = await readFile(join(this.#ports.dataDir, kept.file));
      try {
        const identity = await this.#openBundle(data, arg.password, 'member');
        const storage = await this.#keep(identity, data, arg.password);
        await this.#unlockState(identity, arg.password);
        return this.#setIdentity(identity, storage);
      } finally {
        data.fill(0);
      }
    }, 'identity');
  }

  /** The state store's key comes from the password at unlock (member-state.ts); never fails. */
  async #unlockState(identity: LocalIdentity, password: string): Promise<void> {
    await this.#memberState.unlock({ groupId: identity.groupId, member: identity.name }, password);
  }

  async removeIdentity(): Promise<Result<null>> {
    return toResult(async () => {
      await this.#stopEngine('identity removed');
      const kept = this.#settings.get('identity');
      // The state first: if its folder cannot be deleted, the identity stays and the user can retry.
      if (kept) await this.#memberState.remove({ groupId: kept.groupId, member: kept.name });
      this.#memberState.lock();
      if (kept) await rm(join(this.#ports.dataDir, kept.file), { force: true });
      this.#settings.delete('identity');
      this.#identity = undefined;
      this.#setIdentityState({ status: 'none' });
      return null;
    });
  }

  // ---- connection --------------------------------------------------------------------------

  #requireIdentity(): LocalIdentity {
    if (this.#identity) return this.#identity;
    if (this.#identityState.status === 'locked')
      throw new AppFailure('IdentityLocked', 'Unlock your certificate bundle with its password first.');
    throw new AppFailure('NoIdentity', 'Import your certificate bundle first.');
  }

  async connect(arg: Args<'connect'>): Promise<Result<Responses['connect']>> {
    return toResult(async () => {
      const identity = this.#requireIdentity();
      this.#assertNotConnected('connecting again');
      await this.#stopEngine();
      const epochStore = this.#openStateStore(identity);
      const address = { host: arg.host, port: arg.port };
      this.#settings.set('relayAddress', address);
      this.#emit({ type: 'settings', settings: this.#settings.view() });
      this.#loggedIn = false;
      this.#reportedUnreachable = false;
      this.#key = undefined;
      this.#rawMembers = [];
      this.#members = [];
      let engine: ChatEngineApi;
      try {
        // The CLI's durable state (cli/commands/chat.ts): epochs and keys, history, highest roster.
        engine = this.#ports.engineFactory(identity, address, {
          epochStore,
          history: epochStore.history,
          rosterStore: epochStore,
        });
      } catch (err) {
        epochStore.close();
        throw err;
      }
      this.#stateStore = epochStore;
      this.#engine = engine;
      this.#engineOff = engine.on((event) => this.#onEngineEvent(engine, event));
      this.#setConnection({ state: engine.state, address });
      engine.start();
      return this.#connection;
    });
  }

  /**
   * Opens the identity's state store for a connect. A failure is an error event and a failed
   * connect (StorageFailed, details[0] = the StateStoreError code), never an engine without it:
   * an engine with an empty store could reuse epoch numbers.
   */
  #openStateStore(identity: LocalIdentity): MemberStateStore {
    try {
      return this.#memberState.open({ groupId: identity.groupId, member: identity.name });
    } catch (err) {
      const error = toAppError(err);
      this.#emit({ type: 'error', error });
      throw new AppFailure(error.code, error.message, error.details);
    }
  }

  #closeStateStore(): void {
    const store = this.#stateStore;
    this.#stateStore = undefined;
    try {
      store?.close();
    } catch {
      // Closing flushes nothing new (every save is committed when it returns); nothing to report.
    }
  }

  async disconnect(): Promise<Result<null>> {
    return toResult(async () => {
      if (!this.#engine) throw new AppFailure('NotConnected', 'You are not connected.');
      await this.#stopEngine('user disconnected');
      return null;
    });
  }

  async #stopEngine(reason?: string): Promise<void> {
    const engine = this.#engine;
    if (!engine) return;
    try {
      await engine.stop(reason);
    } finally {
      if (this.#engine === engine) {
        this.#engineOff?.();
        this.#engine = undefined;
        this.#engineOff = undefined;
        // After stop(): the engine saves no more epochs.
        this.#closeStateStore();
        this.#key = undefined;
        this.#rawMembers = [];
        this.#members = [];
        this.#emit({ type: 'members', members: [] });
        const address = this.#connection.address;
        this.#setConnection({ state: 'Disconnected', ...(address ? { address } : {}) });
        this.#addSystem('disconnected', 'You left the chat.');
      }
    }
  }

  #setConnection(view: ConnectionView): void {
    this.#connection = view;
    this.#emit({ type: 'state', ...view });
  }

  #onEngineEvent(engine: ChatEngineApi, event: EngineEvent): void {
    if (engine !== this.#engine) return;
    switch (event.event) {
      case 'state': {
        const address = this.#connection.address;
        const reason = describeConnectionReason(event.reason, address);
        this.#setConnection({
          state: event.state,
          ...(reason !== undefined ? { reason } : {}),
          ...(event.retryInMs !== undefined ? { retryInMs: event.retryInMs } : {}),
          ...(address ? { address } : {}),
        });
        // Logged in to the relay (certificates next): say so once per connect.
        if (['CertExchange', 'KeyEstablishment', 'Chatting'].includes(event.state) && !this.#loggedIn) {
          this.#loggedIn = true;
          this.#addSystem(
            'connected',
            `Connected to ${address ? `${address.host}:${address.port}` : 'the relay'}.`,
          );
        }
        if (
          (event.state === 'Reconnecting' || event.state === 'Failed') &&
          !this.#loggedIn &&
          !this.#reportedUnreachable &&
          reason !== undefined
        ) {
          this.#reportedUnreachable = true;
          this.#emit({
            type: 'error',
            error: {
              code: reason.startsWith('Relay unreachable') ? 'RelayUnreachable' : 'NotConnected',
              message: reason,
            },
          });
        }
        break;
      }
      case 'members':
        this.#rawMembers = event.members;
        this.#refreshMembers(true);
        break;
      case 'key': {
        const { event: _e, ...key } = event;
        const previous = this.#key;
        this.#key = key;
        this.#emit({ type: 'key', key });
        if (!previous || previous.epoch !== key.epoch) {
          this.#addSystem(
            'rekey',
            previous
              ? `New group key (epoch ${key.epoch}) for ${key.members.join(', ')}. Compare the safety number again.`
              : `Group key established (epoch ${key.epoch}) for ${key.members.join(', ')}.`,
            { epoch: key.epoch },
          );
        }
        break;
      }
      case 'message': {
        const line: ChatLine = {
          kind: 'message',
          id: this.#nextId('m'),
          from: event.from,
          text: event.text,
          epoch: event.epoch,
          seq: event.seq,
          sentAt: event.sentAt,
          receivedAt: Date.now(),
        };
        this.#pushLine(line);
        this.#notify(event.from, event.text);
        break;
      }
      case 'outgoing': {
        const id = `own-${event.localId}`;
        const existing = this.#timeline.find((l) => l.id === id);
        const line: ChatLine = {
          kind: 'own',
          id,
          from: this.#identity?.name ?? engine.name,
          text: event.text,
          status: event.status,
          ...(event.epoch !== undefined ? { epoch: event.epoch } : {}),
          ...(event.seq !== undefined ? { seq: event.seq } : {}),
          sentAt: existing?.kind === 'own' ? existing.sentAt : Date.now(),
        };
        if (existing) {
          this.#timeline[this.#timeline.indexOf(existing)] = line;
          this.#emit({ type: 'line', line });
        } else {
          this.#pushLine(line);
        }
        break;
      }
      case 'system':
        this.#addSystem(
          event.kind,
          event.kind === 'joined' ? `${event.name} joined the chat.` : `${event.name} left the chat.`,
          { name: event.name },
        );
        break;
      case 'gap':
        this.#addSystem('warning', `Some earlier messages cannot be shown: ${event.reason}.`);
        break;
      case 'sent':
        // Durable at the relay; the timeline shows "sent" from the 'outgoing' event already.
        break;
      case 'error': {
        this.#emit({
          type: 'error',
          error: { code: 'ChatError', message: event.message, details: [event.code] },
        });
        this.#addSystem('warning', event.message);
        break;
      }
    }
  }

  #nextId(prefix: string): string {
    this.#lineSeq += 1;
    return `${prefix}-${this.#lineSeq}`;
  }

  #pushLine(line: ChatLine): void {
    this.#timeline.push(line);
    if (this.#timeline.length > MAX_TIMELINE) this.#timeline.splice(0, this.#timeline.length - MAX_TIMELINE);
    this.#emit({ type: 'line', line });
  }

  #addSystem(
    event: Extract<ChatLine, { kind: 'system' }>['event'],
    text: string,
    extra: { name?: string; epoch?: number } = {},
  ): void {
    this.#pushLine({ kind: 'system', id: this.#nextId('s'), event, text, ...extra, at: Date.now() });
  }

  #notify(from: string, text: string): void {
    const settings = this.#settings.view();
    if (!settings.notifications) return;
    try {
      this.#ports.notifications.notify(
        settings.notificationPreviews
          ? { title: from, body: text.length > 200 ? `${text.slice(0, 199)}…` : text }
          : { title: 'SecureChat-X', body: 'New message' },
      );
    } catch {
      // Notifications are a courtesy; a failure must not touch the chat.
    }
  }

  // ---- members & verification --------------------------------------------------------------

  #refreshMembers(detectChanges: boolean): void {
    let marks = this.#settings.verifiedMarks();
    const self = this.#identity?.name;
    let marksChanged = false;
    for (const member of this.#rawMembers) {
      const verified = marks[member.name];
      if (
        detectChanges &&
        verified !== undefined &&
        verified !== member.fingerprint &&
        member.name !== self
      ) {
        // A verified member presents another certificate: clear the mark, warn loudly.
        marks = withoutKey(marks, member.name);
        marksChanged = true;
        this.#changed.set(member.name, verified);
        const warning: FingerprintWarning = {
          name: member.name,
          previousFingerprint: verified,
          currentFingerprint: member.fingerprint,
          at: Date.now(),
        };
        this.#warnings = [...this.#warnings.filter((w) => w.name !== member.name), warning];
        this.#emit({ type: 'fingerprint-changed', ...warning });
        this.#addSystem(
          'warning',
          `${member.name}’s certificate changed since you verified it (was ${formatFingerprint(verified).slice(0, 19)}…). Verify it again before trusting it.`,
          { name: member.name },
        );
      }
    }
    if (marksChanged) this.#settings.set('verified', marks);
    this.#members = this.#rawMembers.map((m) => {
      const previous = this.#changed.get(m.name);
      const changed = previous !== undefined && previous !== m.fingerprint;
      return {
        name: m.name,
        fingerprint: m.fingerprint,
        self: m.name === self,
        verified: marks[m.name] === m.fingerprint,
        fingerprintChanged: changed,
        ...(changed ? { previousFingerprint: previous } : {}),
      };
    });
    this.#emit({ type: 'members', members: this.#members });
  }

  async setVerified(arg: Args<'setVerified'>): Promise<Result<Responses['setVerified']>> {
    return toResult(() => {
      const member = this.#rawMembers.find((m) => m.name === arg.name);
      if (arg.verified) {
        if (!member) throw new AppFailure('InvalidArgument', `${arg.name} is not in the chat right now.`);
        if (member.fingerprint !== arg.fingerprint)
          throw new AppFailure(
            'InvalidArgument',
            `${arg.name}’s certificate changed while you were comparing. Compare the new fingerprint.`,
          );
      }
      const marks = withoutKey(this.#settings.verifiedMarks(), arg.name);
      if (arg.verified) marks[arg.name] = arg.fingerprint;
      this.#settings.set('verified', marks);
      if (arg.verified) {
        this.#changed.delete(arg.name);
        this.#warnings = this.#warnings.filter((w) => w.name !== arg.name);
      }
      this.#refreshMembers(false);
      return this.#members;
    });
  }

  // ---- chat --------------------------------------------------------------------------------

  async send(arg: Args<'send'>): Promise<Result<Responses['send']>> {
    return toResult(() => {
      if (!this.#engine) throw new AppFailure('NotConnected', 'Connect to a relay before sending.');
      const localId = this.#engine.send(arg.text);
      return { localId };
    });
  }

  async rekey(): Promise<Result<null>> {
    return toResult(() => {
      if (!this.#engine || this.#connection.state !== 'Chatting')
        throw new AppFailure('NotConnected', 'Keys can only be renewed while you are chatting.');
      this.#engine.requestRekey();
      return null;
    });
  }

  // ---- relay -------------------------------------------------------------------------------

  #setRelay(view: RelayView): void {
    this.#relay = view;
    this.#emit({ type: 'relay', relay: view });
  }

  async startRelay(arg: Args<'startRelay'>): Promise<Result<Responses['startRelay']>> {
    return toResult(async () => {
      if (this.#relayProcess || this.#relayChecking)
        throw new AppFailure('RelayAlreadyRunning', 'A relay is already running.');
      const bundlePath = this.#resolve(arg.token, 'bundle');
      // Check the bundle here (in the PKI worker), for typed errors in plain words; the child opens it again.
      this.#relayChecking = true;
      let dataDir: string;
      try {
        const data = await this.#readBundleFile(bundlePath);
        const relayIdentity = await this.#openBundle(data, arg.password, 'relay');
        data.fill(0);
        // One data directory per group and relay identity: a relay of another group never meets this log.
        dataDir = join(this.#ports.dataDir, 'relays', relayIdentity.groupId, relayIdentity.name);
      } finally {
        this.#relayChecking = false;
      }
      const host = arg.host ?? '127.0.0.1';
      this.#settings.set('relayLaunch', { port: arg.port });
      this.#setRelay({ status: 'starting', memberCount: 0, members: [] });
      this.#relayStopping = false;
      let proc: RelayProcess;
      try {
        proc = this.#ports.relayLauncher.launch({
          bundlePath,
          password: arg.password,
          host,
          port: arg.port,
          dataDir,
        });
      } catch (err) {
        this.#setRelay({ status: 'stopped', memberCount: 0, members: [], error: toAppError(err).message });
        throw new AppFailure('RelayFailed', `The relay could not be started: ${toAppError(err).message}`);
      }
      this.#relayProcess = proc;
      return await new Promise<RelayView>((resolve, reject) => {
        let settled = false;
        const timer = setTimeout(() => {
          if (settled) return;
          settled = true;
          void proc.stop();
          reject(new AppFailure('RelayFailed', 'The relay did not start within a minute.'));
        }, RELAY_START_TIMEOUT_MS);
        const settle = (fn: () => void): void => {
          if (settled) return;
          settled = true;
          clearTimeout(timer);
          fn();
        };
        proc.onMessage((message) => {
          this.#onRelayMessage(proc, message);
          if (message.type === 'listening') settle(() => resolve(this.#relay));
          if (message.type === 'error' && this.#relay.status === 'starting')
            settle(() => {
              void proc.stop();
              reject(new AppFailure('RelayFailed', `The relay could not start: ${message.message}`));
            });
        });
        proc.onExit((code, signal) => {
          this.#onRelayExit(proc, code, signal);
          settle(() =>
            reject(
              new AppFailure(
                'RelayFailed',
                `The relay stopped while starting (${signal ?? `exit code ${String(code)}`})${this.#relay.error ? `: ${this.#relay.error}` : ''}.`,
              ),
            ),
          );
        });
      });
    }, 'relay');
  }

  /** The relay child's process id while one runs (for logs and tests). */
  get relayProcessId(): number | undefined {
    return this.#relayProcess?.pid;
  }

  #onRelayMessage(proc: RelayProcess, message: RelayChildMessage): void {
    if (proc !== this.#relayProcess) return;
    switch (message.type) {
      case 'listening':
        this.#setRelay({ ...this.#relay, status: 'running', host: message.host, port: message.port });
        break;
      case 'members':
        this.#setRelay({ ...this.#relay, memberCount: message.count, members: [...message.members] });
        break;
      case 'error':
        this.#setRelay({ ...this.#relay, error: message.message });
        this.#emit({ type: 'error', error: { code: 'RelayFailed', message: `Relay: ${message.message}` } });
        break;
    }
  }

  #onRelayExit(proc: RelayProcess, code: number | null, signal: string | null): void {
    if (proc !== this.#relayProcess) return;
    this.#relayProcess = undefined;
    if (this.#relayStopping) {
      this.#setRelay({ status: 'stopped', memberCount: 0, members: [] });
      return;
    }
    const how = signal ? `was killed (${signal})` : `stopped unexpectedly (exit code ${String(code)})`;
    const error = `The relay ${how}.${this.#relay.error ? ` Last error: ${this.#relay.error}` : ''}`;
    this.#setRelay({ status: 'crashed', memberCount: 0, members: [], error });
    this.#emit({ type: 'error', error: { code: 'RelayFailed', message: error } });
  }

  async stopRelay(): Promise<Result<Responses['stopRelay']>> {
    return toResult(async () => {
      const proc = this.#relayProcess;
      if (!proc) {
        if (this.#relay.status === 'crashed')
          this.#setRelay({ status: 'stopped', memberCount: 0, members: [] });
        else throw new AppFailure('RelayNotRunning', 'No relay is running.');
        return this.#relay;
      }
      this.#relayStopping = true;
      this.#setRelay({ ...this.#relay, status: 'stopping' });
      await proc.stop();
      if (this.#relayProcess === proc) this.#onRelayExit(proc, 0, null);
      return this.#relay;
    });
  }

  // ---- group creation ----------------------------------------------------------------------

  async createGroup(arg: Args<'createGroup'>): Promise<Result<Responses['createGroup']>> {
    return toResult(async () => {
      const folder = this.#resolve(arg.folderToken, 'folder');
      // The roster is one of the group's files: checked for overwriting and listed like the rest.
      const files = [
        'ca.pem',
        'ca.p12',
        ...arg.members.map((m) => `${m}.p12`),
        `${arg.relayName}.p12`,
        ROSTER_FILE,
      ];
      const existing = files.filter((f) => existsSync(join(folder, f)));
      if (existing.length > 0 && !arg.overwrite) {
        throw new AppFailure(
          'WouldOverwrite',
          `${existing.length === 1 ? 'A file' : `${existing.length} files`} in ${basename(folder)} would be replaced: ${existing.join(', ')}.`,
          existing,
        );
      }
      const kdfIterations = this.#ports.kdfIterations ?? DEFAULT_KDF_ITERATIONS;
      // Keys, bundles and the roster's signature are made in the PKI worker; the CA's private key
      // exists there only.
      const group = await this.#ports.pki.createGroup({
        groupName: arg.groupName,
        members: arg.members,
        relayName: arg.relayName,
        password: arg.password,
        kdfIterations,
      });
      try {
        if (group.files.map((f) => f.name).join('/') !== files.join('/'))
          throw new AppFailure(
            'Internal',
            'Something went wrong: the new group’s files are not the expected ones.',
          );
        const flag = arg.overwrite ? 'w' : 'wx';
        await mkdir(folder, { recursive: true });
        for (const { name, bytes } of group.files) {
          await writeFile(join(folder, name), bytes, { flag, mode: name.endsWith('.p12') ? 0o600 : 0o644 });
        }
      } finally {
        for (const file of group.files) file.bytes.fill(0);
      }
      return { folder, caFingerprint: group.caFingerprintHex, files };
    });
  }

  // ---- lifecycle ---------------------------------------------------------------------------

  /** Stops the engine and the relay (app quit). */
  async dispose(): Promise<void> {
    await this.#stopEngine('app closed').catch(() => undefined);
    this.#closeStateStore();
    this.#memberState.lock();
    if (this.#relayProcess) await this.stopRelay();
    await this.#ports.pki.close().catch(() => undefined);
    this.#listeners.clear();
  }
}
