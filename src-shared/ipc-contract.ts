/**
 * The one IPC contract between the renderer (untrusted) and the main process.
 *
 * - `CONTRACT` lists every request: its channel and a zod schema for its single argument. The
 *   preload exposes exactly these methods on `window.securechat` (plus `onEvent`), the main
 *   process binds exactly these channels and validates every argument with the schema.
 * - `Responses` gives each request's result value; every call resolves to `Result<T>` and never
 *   throws across the bridge.
 * - `AppEvent` is everything the main process pushes on `EVENT_CHANNEL`.
 *
 * Shared code: no Node built-ins, no DOM, no electron. zod is the protocol's schema library too.
 */
import { z } from 'zod';
import type {
  AppSnapshot,
  ChatLine,
  ConnectionView,
  CreatedGroup,
  ErrorView,
  FileChoice,
  FingerprintWarning,
  IdentityState,
  IdentityView,
  KeyView,
  MemberEntry,
  RelayView,
  SettingsView,
} from './model.js';

// ---------------------------------------------------------------------------------------------
// Argument schemas
// ---------------------------------------------------------------------------------------------

/** Certificate CNs and routing names (same rule as src-main/core/pki/identity-name.ts). */
export const IdentityNameSchema = z.string().regex(/^[A-Za-z0-9._-]{1,64}$/, 'not a valid identity name');
export const FingerprintSchema = z.string().regex(/^[0-9a-f]{64}$/, 'not a SHA-256 fingerprint (64 hex)');
export const PasswordSchema = z.string().min(1, 'the password is empty').max(1024);
export const TokenSchema = z.string().regex(/^[A-Za-z0-9_-]{16,64}$/, 'not a file choice token');
/** A host name, IPv4 or IPv6 literal; no scheme, no path. */
export const HostSchema = z
  .string()
  .min(1)
  .max(253)
  .regex(
    /^(?:[A-Za-z0-9](?:[A-Za-z0-9-]{0,62})?(?:\.[A-Za-z0-9-]{1,63})*|[0-9A-Fa-f:.]{2,45})$/,
    'not a host name',
  );
export const PortSchema = z.number().int().min(1).max(65535);
/** The protocol allows 16 KiB characters of text per message. */
export const MAX_MESSAGE_CHARS = 16 * 1024;

const NoArgs = z.undefined();

export const CONTRACT = {
  /** Everything the window needs to draw itself (on load or reload). */
  getSnapshot: { channel: 'scx:app:get-snapshot', args: NoArgs },
  /** Opens the native open-file dialog for a .p12; resolves to null when cancelled. */
  chooseBundle: {
    channel: 'scx:dialog:choose-bundle',
    args: z.strictObject({ purpose: z.enum(['identity', 'relay']) }),
  },
  /** Opens the native choose-folder dialog (where a new group is written); null when cancelled. */
  chooseFolder: { channel: 'scx:dialog:choose-folder', args: NoArgs },
  importIdentity: {
    channel: 'scx:identity:import',
    args: z.strictObject({ token: TokenSchema, password: PasswordSchema }),
  },
  /** Opens the kept bundle with its password (when the OS keystore is not available). */
  unlockIdentity: { channel: 'scx:identity:unlock', args: z.strictObject({ password: PasswordSchema }) },
  removeIdentity: { channel: 'scx:identity:remove', args: NoArgs },
  connect: {
    channel: 'scx:connection:connect',
    args: z.strictObject({ host: HostSchema, port: PortSchema }),
  },
  disconnect: { channel: 'scx:connection:disconnect', args: NoArgs },
  send: {
    channel: 'scx:chat:send',
    args: z.strictObject({
      text: z
        .string()
        .max(MAX_MESSAGE_CHARS, `a message holds at most ${MAX_MESSAGE_CHARS} characters`)
        .refine((t) => t.trim().length > 0, 'the message is empty'),
    }),
  },
  setVerified: {
    channel: 'scx:members:set-verified',
    args: z.strictObject({ name: IdentityNameSchema, fingerprint: FingerprintSchema, verified: z.boolean() }),
  },
  /** Asks for a fresh epoch with the current members. */
  rekey: { channel: 'scx:key:rekey', args: NoArgs },
  startRelay: {
    channel: 'scx:relay:start',
    args: z.strictObject({
      token: TokenSchema,
      password: PasswordSchema,
      /** 0 = any free port. */
      port: z.number().int().min(0).max(65535),
      host: z.enum(['127.0.0.1', '0.0.0.0', '::1', '::']).optional(),
    }),
  },
  stopRelay: { channel: 'scx:relay:stop', args: NoArgs },
  createGroup: {
    channel: 'scx:group:create',
    args: z
      .strictObject({
        folderToken: TokenSchema,
        groupName: z.string().trim().min(1, 'the group needs a name').max(64),
        members: z.array(IdentityNameSchema).min(1, 'add at least one member').max(64),
        relayName: IdentityNameSchema,
        password: z.string().min(8, 'use a password of at least 8 characters').max(1024),
        /** The user confirmed replacing existing files. */
        overwrite: z.boolean(),
      })
      .refine((g) => new Set([...g.members, g.relayName]).size === g.members.length + 1, {
        message: 'member and relay names must all be different',
      }),
  },
  updateSettings: {
    channel: 'scx:settings:update',
    args: z.strictObject({
      theme: z.enum(['system', 'light', 'dark']).optional(),
      notifications: z.boolean().optional(),
      notificationPreviews: z.boolean().optional(),
    }),
  },
} as const;

export type Method = keyof typeof CONTRACT;
export const METHODS = Object.keys(CONTRACT) as Method[];
export type Args<M extends Method> = z.output<(typeof CONTRACT)[M]['args']>;

/** The channel main pushes AppEvents on. */
export const EVENT_CHANNEL = 'scx:event';

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
}

// ---------------------------------------------------------------------------------------------
// Events pushed from main
// ---------------------------------------------------------------------------------------------

/** Menu items that the renderer answers by opening a dialog of its own. */
export type MenuAction =
  'import-identity' | 'create-group' | 'start-relay' | 'connect' | 'about' | 'settings';

export type AppEvent =
  | ({ type: 'state' } & ConnectionView)
  | { type: 'members'; members: MemberEntry[] }
  /** A verified member now presents a different certificate: shown prominently. */
  | ({ type: 'fingerprint-changed' } & FingerprintWarning)
  | { type: 'key'; key: KeyView }
  /** A new or updated chat line (incoming message, own queued→sent, system line). */
  | { type: 'line'; line: ChatLine }
  | { type: 'relay'; relay: RelayView }
  | { type: 'identity'; identity: IdentityState }
  | { type: 'settings'; settings: SettingsView }
  | { type: 'error'; error: AppError }
  | { type: 'menu'; action: MenuAction };

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

/** Validates a raw argument from the renderer against the method's schema. */
export function parseArgs<M extends Method>(
  method: M,
  raw: unknown,
): { ok: true; value: Args<M> } | { ok: false; error: AppError } {
  const parsed = CONTRACT[method].args.safeParse(raw);
  if (parsed.success) return { ok: true, value: parsed.data as Args<M> };
  const first = parsed.error.issues[0];
  const where = first && first.path.length > 0 ? `${first.path.join('.')}: ` : '';
  return {
    ok: false,
    error: {
      code: 'InvalidArgument',
      message: `invalid request: ${where}${first?.message ?? 'bad argument'}`,
    },
  };
}

export function methodOfChannel(channel: string): Method | undefined {
  return METHODS.find((m) => CONTRACT[m].channel === channel);
}

export function ok<T>(value: T): Result<T> {
  return { ok: true, value };
}

export function fail(code: ErrorCode, message: string, details?: string[]): { ok: false; error: AppError } {
  return details ? { ok: false, error: { code, message, details } } : { ok: false, error: { code, message } };
}
