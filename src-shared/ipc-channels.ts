/**
 * The IPC contract without its validators: channel names, request / response / event types and
 * the Result helpers. No runtime imports at all (no zod), so the sandboxed preload, which bundles
 * everything it imports, stays small. The zod schemas that validate every argument in the main
 * process live in ipc-contract.ts, which re-exports this module and checks at compile time that
 * each schema's output type is exactly the request type declared here.
 *
 * Shared code: no Node built-ins, no DOM, no electron.
 */
import type {
  AddedMember,
  AppSnapshot,
  ChatLine,
  ConnectionView,
  CreatedGroup,
  ErrorView,
  FileChoice,
  FingerprintWarning,
  GroupSummary,
  IdentityState,
  IdentityView,
  KeyView,
  MemberEntry,
  OrganiserView,
  RelayView,
  RemovedMember,
  SettingsView,
} from './model.js';

// ---------------------------------------------------------------------------------------------
// Channels
// ---------------------------------------------------------------------------------------------

/** One channel per request the window can make. */
export const CHANNELS = {
  getSnapshot: 'scx:app:get-snapshot',
  chooseBundle: 'scx:dialog:choose-bundle',
  chooseFolder: 'scx:dialog:choose-folder',
  importIdentity: 'scx:identity:import',
  unlockIdentity: 'scx:identity:unlock',
  removeIdentity: 'scx:identity:remove',
  connect: 'scx:connection:connect',
  disconnect: 'scx:connection:disconnect',
  send: 'scx:chat:send',
  setVerified: 'scx:members:set-verified',
  rekey: 'scx:key:rekey',
  startRelay: 'scx:relay:start',
  stopRelay: 'scx:relay:stop',
  createGroup: 'scx:group:create',
  updateSettings: 'scx:settings:update',
  openExternal: 'scx:shell:open-external',
  historyPage: 'scx:history:page',
  searchHistory: 'scx:history:search',
  latestLines: 'scx:timeline:latest',
  switchGroup: 'scx:groups:switch',
  openGroupCa: 'scx:organiser:open-ca',
  closeGroupCa: 'scx:organiser:close-ca',
  addMember: 'scx:organiser:add-member',
  removeMember: 'scx:organiser:remove-member',
} as const;

export type Method = keyof typeof CHANNELS;
export const METHODS = Object.keys(CHANNELS) as Method[];

/** The channel main pushes AppEvents on. */
export const EVENT_CHANNEL = 'scx:event';

export function methodOfChannel(channel: string): Method | undefined {
  return METHODS.find((m) => CHANNELS[m] === channel);
}

// ---------------------------------------------------------------------------------------------
// Requests (the single argument of each method; `undefined` = no argument)
// ---------------------------------------------------------------------------------------------

export type RelayListenHost = '127.0.0.1' | '0.0.0.0' | '::1' | '::';
export type Theme = 'system' | 'light' | 'dark';

export interface Requests {
  getSnapshot: undefined;
  /** Opens the native open-file dialog for a .p12; resolves to null when cancelled. */
  chooseBundle: { purpose: 'identity' | 'relay' | 'ca' };
  /** Opens the native choose-folder dialog (where a new group is written); null when cancelled. */
  chooseFolder: undefined;
  importIdentity: { token: string; password: string };
  /** Opens the kept bundle with its password (when the OS keystore is not available). */
  unlockIdentity: { password: string };
  removeIdentity: undefined;
  /** `fallbacks`: the group's other relay nodes, tried in order when the first is lost. */
  connect: { host: string; port: number; fallbacks?: { host: string; port: number }[] };
  disconnect: undefined;
  send: { text: string };
  setVerified: { name: string; fingerprint: string; verified: boolean };
  /** Asks for a fresh epoch with the current members. */
  rekey: undefined;
  /** port 0 = any free port. */
  startRelay: { token: string; password: string; port: number; host?: RelayListenHost | undefined };
  stopRelay: undefined;
  createGroup: {
    folderToken: string;
    groupName: string;
    members: string[];
    relayName: string;
    password: string;
    /** The user confirmed replacing existing files. */
    overwrite: boolean;
  };
  updateSettings: {
    theme?: Theme | undefined;
    notifications?: boolean | undefined;
    notificationPreviews?: boolean | undefined;
  };
  /** Opens an http(s) link from a message in the system browser (the window asked first). */
  openExternal: { url: string };
  /** Stored messages before the one with local id `beforeId` (default: the newest), oldest first. */
  historyPage: { beforeId?: number | undefined; limit?: number | undefined };
  /** The newest stored messages that contain `text` (case-insensitive). */
  searchHistory: { text: string; limit?: number | undefined };
  /** The newest lines of the timeline (back to the latest after reading older history). */
  latestLines: undefined;
  /** Shows another group (one of the snapshot's `groups`). */
  switchGroup: { id: string };
  /** The organiser opens the group's CA bundle (ca.p12): checked, then its key is let go. */
  openGroupCa: { token: string; password: string };
  closeGroupCa: undefined;
  /** Issues `name` a bundle (written beside ca.p12) and publishes the roster listing it. */
  addMember: { name: string; password: string; caPassword: string };
  /** Publishes the roster without `name`: the relay drops and refuses them. */
  removeMember: { name: string; reason: string; caPassword: string };
}

export type Args<M extends Method> = Requests[M];

// ---------------------------------------------------------------------------------------------
// Results
// ---------------------------------------------------------------------------------------------

export type ErrorCode =
  | 'InvalidArgument'
  | 'UntrustedSender'
  | 'UnknownChannel'
  | 'WrongPassword'
  | 'NotABundle'
  | 'WrongRole'
  | 'CertificateInvalid'
  | 'NoIdentity'
  | 'IdentityLocked'
  | 'NotConnected'
  | 'AlreadyConnected'
  | 'RelayUnreachable'
  | 'RelayAlreadyRunning'
  | 'RelayNotRunning'
  | 'RelayFailed'
  | 'ChoiceExpired'
  | 'WouldOverwrite'
  | 'FileError'
  | 'StorageFailed'
  /** The message is over MAX_MESSAGE_CHARS (src-shared/limits.ts); details = [limit, length]. */
  | 'MessageTooLong'
  /** The link is not one the app opens (http: or https:, at most 2048 characters). */
  | 'LinkRefused'
  /** The group's roster no longer lists this member: the app stops reconnecting. */
  | 'Removed'
  /** The chosen CA bundle is not this group's CA (or not a CA bundle at all). */
  | 'NotGroupCa'
  /** An organiser tool was used before the group's CA bundle was opened. */
  | 'NoGroupCa'
  /** The roster change was refused (details[0] = its RosterError code): e.g. a name already listed. */
  | 'RosterRefused'
  /** A message or handshake problem reported by the chat engine (details[0] = its code). */
  | 'ChatError'
  | 'Internal';

export interface AppError extends ErrorView {
  code: ErrorCode;
  /** Extra data for some codes (e.g. the files WouldOverwrite would replace). */
  details?: string[];
}

export type Result<T> = { ok: true; value: T } | { ok: false; error: AppError };

export interface Responses {
  getSnapshot: AppSnapshot;
  chooseBundle: FileChoice | null;
  chooseFolder: FileChoice | null;
  importIdentity: IdentityView;
  unlockIdentity: IdentityView;
  removeIdentity: null;
  connect: ConnectionView;
  disconnect: null;
  send: { localId: string };
  setVerified: MemberEntry[];
  rekey: null;
  startRelay: RelayView;
  stopRelay: RelayView;
  createGroup: CreatedGroup;
  updateSettings: SettingsView;
  openExternal: null;
  /** `more`: older messages remain. */
  historyPage: { lines: ChatLine[]; more: boolean };
  searchHistory: { lines: ChatLine[] };
  latestLines: ChatLine[];
  switchGroup: AppSnapshot;
  openGroupCa: OrganiserView;
  closeGroupCa: null;
  addMember: AddedMember;
  removeMember: RemovedMember;
}

export function ok<T>(value: T): Result<T> {
  return { ok: true, value };
}

export function fail(code: ErrorCode, message: string, details?: string[]): { ok: false; error: AppError } {
  return details ? { ok: false, error: { code, message, details } } : { ok: false, error: { code, message } };
}

// ---------------------------------------------------------------------------------------------
// Events pushed from main
// ---------------------------------------------------------------------------------------------

/** Menu items that the renderer answers by opening a dialog of its own. */
export type MenuAction =
  'import-identity' | 'create-group' | 'open-group-ca' | 'start-relay' | 'connect' | 'about' | 'settings';

export type AppEvent =
  | ({ type: 'state' } & ConnectionView)
  | { type: 'members'; members: MemberEntry[] }
  /** A verified member now presents a different certificate: shown prominently. */
  | ({ type: 'fingerprint-changed' } & FingerprintWarning)
  | { type: 'key'; key: KeyView }
  /** A new or updated chat line (incoming message, own queued→sent, system line). */
  | { type: 'line'; line: ChatLine }
  /** The timeline starts over (another identity, its stored history put in): the newest lines. */
  | { type: 'timeline'; lines: ChatLine[] }
  | { type: 'relay'; relay: RelayView }
  | { type: 'identity'; identity: IdentityState }
  | { type: 'settings'; settings: SettingsView }
  | { type: 'error'; error: AppError }
  | { type: 'menu'; action: MenuAction }
  /** The groups' summaries changed (connection, unread, added or removed). */
  | { type: 'groups'; groups: GroupSummary[]; activeGroup?: string }
  /** The organiser's view changed (roster, who is online), or the CA bundle was closed (null). */
  | { type: 'organiser'; organiser: OrganiserView | null };

export type AppEventListener = (event: AppEvent) => void;

// ---------------------------------------------------------------------------------------------
// The API the preload exposes (and the app service implements, minus onEvent)
// ---------------------------------------------------------------------------------------------

type ArgList<M extends Method> = undefined extends Args<M> ? [] : [arg: Args<M>];

export type ServiceApi = {
  [M in Method]: (...args: ArgList<M>) => Promise<Result<Responses[M]>>;
};

export type SecureChatApi = ServiceApi & {
  /** Receives event payloads only; returns an unsubscribe function. */
  onEvent(listener: AppEventListener): () => void;
};
