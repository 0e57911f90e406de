/**
 * The ports through which the app service reaches the outside world. The Electron shell
 * (src-main/electron) implements them with Electron APIs; tests and plain Node use the
 * implementations in node-ports.ts.
 */
import type { LoadedBundle } from '../core/pki/bundle.js';
import type { Certificate } from '../core/pki/certificate.js';
import type { RosterChangeSpec } from './pki-protocol.js';
import type { LocalIdentity } from '../core/pki/local-identity.js';
import type { ChatEngineApi, RelayAddress } from '../client/engine-types.js';
import type { LogHistory } from '../client/log-follower.js';
import type { EpochStore } from '../client/options.js';
import type { RosterStore } from '../client/roster-tracker.js';
import type { PrekeyStore } from '../client/prekeys.js';

/** Native dialogs. Paths never come from the renderer: only from here. */
export interface DialogPort {
  /** Resolves to the chosen .p12 path, or null when cancelled. */
  openBundle(purpose: 'identity' | 'relay' | 'ca'): Promise<string | null>;
  /** Resolves to the chosen folder, or null when cancelled. */
  chooseFolder(): Promise<string | null>;
}

/** A persistent key-value store (electron-store in the app, conf in tests). Values are untrusted on read. */
export interface SettingsStore {
  get(key: string): unknown;
  set(key: string, value: unknown): void;
  delete(key: string): void;
}

export interface NotificationPort {
  /**
   * Shows a desktop notification, replacing the one shown before for the same `group` (one per
   * group); the shell may skip it while the window has focus.
   */
  notify(notification: { group: string; title: string; body: string }): void;
}

/** Where unread counts show outside the window: its title, the dock or taskbar badge. */
export interface AttentionPort {
  setUnread(count: number): void;
}

/** The system browser (Electron shell.openExternal). Only external-links.ts calls it, after validating. */
export interface ExternalLinkPort {
  /** Opens an http(s) URL in the user's default browser, never in the app window. */
  openExternal(url: string): Promise<void>;
}

/** The OS keystore (Electron safeStorage). */
export interface SecretStoragePort {
  isAvailable(): boolean;
  encryptString(plain: string): Uint8Array;
  decryptString(encrypted: Uint8Array): string;
}

/** What the relay child process reports (src-main/relay/child-entry.ts). */
export type RelayChildMessage =
  | { type: 'listening'; host: string; port: number }
  | { type: 'members'; count: number; members: string[] }
  | { type: 'error'; message: string };

export interface RelayLaunchOptions {
  bundlePath: string;
  password: string;
  host: string;
  port: number;
  /** The relay's durable state (its log, the highest roster). */
  dataDir: string;
}

export interface RelayProcess {
  /** OS process id, when known (shown nowhere; lets tests and logs name the process). */
  readonly pid: number | undefined;
  /** Messages from the child, and its exit (code null when killed by a signal). */
  onMessage(listener: (message: RelayChildMessage) => void): void;
  onExit(listener: (code: number | null, signal: string | null) => void): void;
  /** Asks the relay to stop; resolves when the process has exited. */
  stop(): Promise<void>;
}

export interface RelayLauncher {
  launch(options: RelayLaunchOptions): RelayProcess;
}

export interface NewGroupOptions {
  groupName: string;
  members: string[];
  relayName: string;
  password: string;
  kdfIterations: number;
}

export interface NewGroupFiles {
  caFingerprintHex: string;
  /** ca.pem, ca.p12, one .p12 per member, the relay's .p12, roster.scx (in that order). */
  files: { name: string; bytes: Uint8Array }[];
}

export interface RosterChangeOptions {
  /** ca.p12 as read from disk (a copy is transferred to the worker and zeroed there). */
  caBundle: Uint8Array;
  caPassword: string;
  /** The group CA's fingerprint: another group's CA bundle is refused. */
  groupId: string;
  /** The newest roster known (CA-signed envelope). */
  roster: Uint8Array;
  change: RosterChangeSpec;
}

export interface RosterChangeResult {
  /** The next roster, signed by the CA. */
  roster: Buffer;
  version: number;
  /** For add-member: the new member's bundle (under the password given) and fingerprint. */
  added?: { bundle: Uint8Array; fingerprintHex: string };
}

/**
 * The CPU-heavy PKI work (opening a bundle, creating a group), off the main thread: a worker
 * thread in the app and in tests (pki-client.ts). Failures reject with the core's PkiError.
 */
export interface PkiPort {
  /** readBundle of core/pki/bundle.ts: the holder's certificate, the CA and the private key. */
  readBundle(data: Uint8Array, password: string): Promise<LoadedBundle>;
  /** The bundle's own certificate, opened with its password; the private key never leaves the worker. */
  readCertificate(data: Uint8Array, password: string): Promise<Certificate>;
  /**
   * A new CA, a bundle per member and one for the relay, all under the one password, and roster
   * v1 listing them, signed by the CA.
   */
  createGroup(options: NewGroupOptions): Promise<NewGroupFiles>;
  /**
   * Opens the group's CA bundle, applies one change to the roster and signs the next version (and
   * for a new member issues its bundle). Rejects with PkiError (e.g. WrongPassword, UnexpectedCa)
   * or RosterError (e.g. RosterDuplicate).
   */
  changeRoster(options: RosterChangeOptions): Promise<RosterChangeResult>;
  /** Stops the worker (app quit); later calls start a new one. */
  close(): Promise<void>;
}

/**
 * What the service gives each engine it makes, besides identity and address: the identity's
 * durable state, all in its one MemberStateStore (member-state.ts), open for as long as the
 * engine runs. The same ports `securechat-x chat` passes (cli/commands/chat.ts).
 */
export interface EngineSession {
  /** The highest epoch this identity has seen (epoch numbers never repeat across restarts). */
  epochStore: EpochStore;
  /** The same store's message history and log position: the engine follows the relay's log. */
  history?: LogHistory;
  /** The same store's highest roster: never rolled back across restarts, uploaded to an older relay. */
  rosterStore?: RosterStore;
  /**
   * The same store's signed X25519 prekeys: challenges and key envelopes are sealed to them (HPKE)
   * and erased on schedule (docs/protocol.md "Erasure"); without one the engine uses RSA-OAEP.
   */
  prekeyStore?: PrekeyStore;
}

/** `relays`: at least one; the engine fails over from each to the next when its link is lost. */
export type EngineFactory = (
  identity: LocalIdentity,
  relays: readonly RelayAddress[],
  session: EngineSession,
) => ChatEngineApi;

export interface AppServicePorts {
  dialogs: DialogPort;
  settings: SettingsStore;
  notifications: NotificationPort;
  /** Unread counts in the title and badge (default: shown nowhere). */
  attention?: AttentionPort;
  links: ExternalLinkPort;
  secrets: SecretStoragePort;
  relayLauncher: RelayLauncher;
  pki: PkiPort;
  engineFactory: EngineFactory;
  /** A private folder for the kept bundle (Electron: app.getPath('userData')). */
  dataDir: string;
  appInfo: { name: string; version: string; platform: string };
  /** KDF cost of bundles written by "create group" (tests lower it). */
  kdfIterations?: number;
}
