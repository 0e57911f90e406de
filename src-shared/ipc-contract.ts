/**
 * The one IPC contract between the renderer (untrusted) and the main process: the validating half.
 *
 * - `CONTRACT` lists every request: its channel (from ipc-channels.ts) and a zod schema for its
 *   single argument. The preload exposes exactly these methods on `window.securechat` (plus
 *   `onEvent`), the main process binds exactly these channels and validates every argument with
 *   the schema.
 * - Channel names, request / response / event types and the Result helpers live in the zod-free
 *   ipc-channels.ts (re-exported here), so the sandboxed preload does not bundle zod. Below, the
 *   compiler checks that each schema's output is exactly the request type declared there.
 *
 * Shared code: no Node built-ins, no DOM, no electron. zod is the protocol's schema library too.
 */
import { z } from 'zod';
import { CHANNELS, type AppError, type Args, type Method, type Requests } from './ipc-channels.js';
import {
  HISTORY_PAGE_LINES,
  isOpenableUrl,
  MAX_EXTERNAL_URL_CHARS,
  MAX_MESSAGE_CHARS,
  MAX_RELAY_ADDRESSES,
  MAX_REMOVAL_REASON_CHARS,
  MAX_SEARCH_CHARS,
  MIN_BUNDLE_PASSWORD_CHARS,
  SEARCH_RESULTS_MAX,
} from './limits.js';

export * from './ipc-channels.js';
export { MAX_MESSAGE_CHARS } from './limits.js';

// ---------------------------------------------------------------------------------------------
// Argument schemas
// ---------------------------------------------------------------------------------------------

/** Certificate CNs and routing names (same rule as src-main/core/pki/identity-name.ts). */
export const IdentityNameSchema = z.string().regex(/^[A-Za-z0-9._-]{1,64}$/, 'not a valid identity name');
export const FingerprintSchema = z.string().regex(/^[0-9a-f]{64}$/, 'not a SHA-256 fingerprint (64 hex)');
/** A group in this app: `<group id>/<identity name>`. */
export const GroupKeySchema = z
  .string()
  .regex(/^[0-9a-f]{64}\/[A-Za-z0-9._-]{1,64}$/, 'not a group of this app');
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
/**
 * The most text a send request may carry across IPC. The message limit itself (MAX_MESSAGE_CHARS,
 * src-shared/limits.ts) is enforced by the service, which refuses a longer message with the typed
 * code MessageTooLong and the reason in words; this bound only keeps absurd payloads out.
 */
export const MAX_SEND_REQUEST_CHARS = 4 * MAX_MESSAGE_CHARS;
/** An http: or https: URL of at most 2048 characters (src-shared/limits.ts isOpenableUrl). */
export const ExternalUrlSchema = z
  .string()
  .max(MAX_EXTERNAL_URL_CHARS, `a link holds at most ${MAX_EXTERNAL_URL_CHARS} characters`)
  .refine(isOpenableUrl, 'only http: and https: links can be opened');

const NoArgs = z.undefined();

export const CONTRACT = {
  /** Everything the window needs to draw itself (on load or reload). */
  getSnapshot: { channel: CHANNELS.getSnapshot, args: NoArgs },
  /** Opens the native open-file dialog for a .p12; resolves to null when cancelled. */
  chooseBundle: {
    channel: CHANNELS.chooseBundle,
    args: z.strictObject({ purpose: z.enum(['identity', 'relay', 'ca']) }),
  },
  /** Opens the native choose-folder dialog (where a new group is written); null when cancelled. */
  chooseFolder: { channel: CHANNELS.chooseFolder, args: NoArgs },
  importIdentity: {
    channel: CHANNELS.importIdentity,
    args: z.strictObject({ token: TokenSchema, password: PasswordSchema }),
  },
  /** Opens the kept bundle with its password (when the OS keystore is not available). */
  unlockIdentity: { channel: CHANNELS.unlockIdentity, args: z.strictObject({ password: PasswordSchema }) },
  removeIdentity: { channel: CHANNELS.removeIdentity, args: NoArgs },
  connect: {
    channel: CHANNELS.connect,
    args: z.strictObject({
      host: HostSchema,
      port: PortSchema,
      /** The group's other relay nodes, tried in order when the link to the first is lost. */
      fallbacks: z
        .array(z.strictObject({ host: HostSchema, port: PortSchema }))
        .max(MAX_RELAY_ADDRESSES - 1, `at most ${MAX_RELAY_ADDRESSES} relay addresses`)
        .optional(),
    }),
  },
  disconnect: { channel: CHANNELS.disconnect, args: NoArgs },
  send: {
    channel: CHANNELS.send,
    args: z.strictObject({
      text: z
        .string()
        .max(MAX_SEND_REQUEST_CHARS, `a request holds at most ${MAX_SEND_REQUEST_CHARS} characters`)
        .refine((t) => t.trim().length > 0, 'the message is empty'),
    }),
  },
  setVerified: {
    channel: CHANNELS.setVerified,
    args: z.strictObject({ name: IdentityNameSchema, fingerprint: FingerprintSchema, verified: z.boolean() }),
  },
  /** Asks for a fresh epoch with the current members. */
  rekey: { channel: CHANNELS.rekey, args: NoArgs },
  startRelay: {
    channel: CHANNELS.startRelay,
    args: z.strictObject({
      token: TokenSchema,
      password: PasswordSchema,
      /** 0 = any free port. */
      port: z.number().int().min(0).max(65535),
      host: z.enum(['127.0.0.1', '0.0.0.0', '::1', '::']).optional(),
    }),
  },
  stopRelay: { channel: CHANNELS.stopRelay, args: NoArgs },
  createGroup: {
    channel: CHANNELS.createGroup,
    args: z
      .strictObject({
        folderToken: TokenSchema,
        groupName: z
          .string()
          .trim()
          .min(1, 'the group needs a name')
          .max(64)
          // The roster refuses them too: say so here, in words, rather than fail in the worker.
          .regex(/^[^\p{Cc}]*$/u, 'the group name must not contain control characters'),
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
    channel: CHANNELS.updateSettings,
    args: z.strictObject({
      theme: z.enum(['system', 'light', 'dark']).optional(),
      notifications: z.boolean().optional(),
      notificationPreviews: z.boolean().optional(),
    }),
  },
  /** Opens a message's link in the system browser, after the window asked for confirmation. */
  openExternal: { channel: CHANNELS.openExternal, args: z.strictObject({ url: ExternalUrlSchema }) },
  historyPage: {
    channel: CHANNELS.historyPage,
    args: z.strictObject({
      beforeId: z.number().int().min(1).max(Number.MAX_SAFE_INTEGER).optional(),
      limit: z
        .number()
        .int()
        .min(1)
        .max(2 * HISTORY_PAGE_LINES)
        .optional(),
    }),
  },
  searchHistory: {
    channel: CHANNELS.searchHistory,
    args: z.strictObject({
      text: z
        .string()
        .max(MAX_SEARCH_CHARS, `a search holds at most ${MAX_SEARCH_CHARS} characters`)
        .refine((t) => t.trim().length > 0, 'the search is empty'),
      limit: z.number().int().min(1).max(SEARCH_RESULTS_MAX).optional(),
    }),
  },
  latestLines: { channel: CHANNELS.latestLines, args: NoArgs },
  switchGroup: {
    channel: CHANNELS.switchGroup,
    args: z.strictObject({ id: GroupKeySchema }),
  },
  openGroupCa: {
    channel: CHANNELS.openGroupCa,
    args: z.strictObject({ token: TokenSchema, password: PasswordSchema }),
  },
  closeGroupCa: { channel: CHANNELS.closeGroupCa, args: NoArgs },
  addMember: {
    channel: CHANNELS.addMember,
    args: z.strictObject({
      name: IdentityNameSchema,
      password: PasswordSchema.refine(
        (p) => [...p].length >= MIN_BUNDLE_PASSWORD_CHARS,
        `the new bundle's password needs at least ${MIN_BUNDLE_PASSWORD_CHARS} characters`,
      ),
      caPassword: PasswordSchema,
    }),
  },
  removeMember: {
    channel: CHANNELS.removeMember,
    args: z.strictObject({
      name: IdentityNameSchema,
      reason: z
        .string()
        .max(MAX_REMOVAL_REASON_CHARS, `a reason holds at most ${MAX_REMOVAL_REASON_CHARS} characters`)
        .refine((r) => !/\p{Cc}/u.test(r), 'a reason is one line'),
      caPassword: PasswordSchema,
    }),
  },
} as const satisfies Record<Method, { channel: string; args: z.ZodType }>;

/** Each schema's output must be exactly the request type of ipc-channels.ts (no missing, extra or looser fields). */
type SameType<A, B> = (<T>() => T extends A ? 1 : 2) extends <T>() => T extends B ? 1 : 2 ? true : false;
type SchemaMatchesRequest = {
  [M in Method]: SameType<z.output<(typeof CONTRACT)[M]['args']>, Requests[M]>;
};
// A type error here ("'true' is not assignable to 'never'") means a schema and its request type differ.
const schemasMatchRequests: SchemaMatchesRequest[Method] extends true ? true : never = true;
void schemasMatchRequests;

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
