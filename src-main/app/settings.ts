/**
 * The app's persistent settings, read through a schema: the settings file is input like any
 * other (edited by hand, left by an older version), so a bad value falls back to its default.
 */
import { z } from 'zod';
import { MAX_RELAY_ADDRESSES } from '../../src-shared/limits.js';
import type { SettingsView, ThemeSetting } from '../../src-shared/model.js';
import type { SettingsStore } from './ports.js';

/** How many groups (kept identities) one app holds. */
export const MAX_GROUPS = 32;

const Fingerprint = z.string().regex(/^[0-9a-f]{64}$/);
const Address = z.strictObject({
  host: z.string().min(1).max(253),
  port: z.number().int().min(1).max(65535),
});

export const KeptIdentitySchema = z.strictObject({
  name: z.string().min(1).max(64),
  fingerprint: Fingerprint,
  /** The group CA's fingerprint: verified marks belong to one group. */
  groupId: Fingerprint,
  /** The group's name (its CA's), for the sidebar while the identity is locked. */
  groupName: z.string().min(1).max(128).optional(),
  /** File name of the password-protected .p12 inside the app's data folder. */
  file: z.string().regex(/^[A-Za-z0-9._-]{1,100}$/),
  /** The bundle password encrypted by the OS keystore (base64), when it is available. */
  encryptedPassword: z.string().max(8192).optional(),
  /** This group's verified marks: member name → the fingerprint the user verified. */
  verified: z.record(z.string().regex(/^[A-Za-z0-9._-]{1,64}$/), Fingerprint).optional(),
  /** The relay this group last connected to. */
  relayAddress: Address.optional(),
  /** The other relay nodes given with it (a cluster's), tried in order on loss. */
  relayFallbacks: z
    .array(Address)
    .max(MAX_RELAY_ADDRESSES - 1)
    .optional(),
});
export type KeptIdentity = z.output<typeof KeptIdentitySchema>;

export const WindowBoundsSchema = z.strictObject({
  x: z.number().int().optional(),
  y: z.number().int().optional(),
  width: z.number().int().min(200).max(20000),
  height: z.number().int().min(200).max(20000),
  maximized: z.boolean().optional(),
});
export type WindowBounds = z.output<typeof WindowBoundsSchema>;

const SCHEMAS = {
  theme: z.enum(['system', 'light', 'dark']),
  notifications: z.boolean(),
  notificationPreviews: z.boolean(),
  relayAddress: Address,
  /** Before several groups (one kept identity); read once at start and moved to `identities`. */
  identity: KeptIdentitySchema,
  /** Every kept identity, one per group (an identity is its group id and its name). */
  identities: z.array(KeptIdentitySchema).max(MAX_GROUPS),
  /** The identity the window shows: `<group id>/<name>`. */
  activeGroup: z.string().regex(/^[0-9a-f]{64}\/[A-Za-z0-9._-]{1,64}$/),
  /** Verified marks: member name → the fingerprint the user verified. */
  verified: z.record(z.string().regex(/^[A-Za-z0-9._-]{1,64}$/), Fingerprint),
  windowBounds: WindowBoundsSchema,
  relayLaunch: z.strictObject({ port: z.number().int().min(0).max(65535) }),
  /**
   * The member state stores' random keys, encrypted by the OS keystore (base64), one per
   * identity: `<group id>/<name>` → wrapped key (member-state.ts). Kept when another identity is
   * imported, so switching back reopens the same store.
   */
  stateKeys: z.record(z.string().regex(/^[0-9a-f]{64}\/[A-Za-z0-9._-]{1,64}$/), z.string().min(1).max(8192)),
  /** When this app last saw each member online: `<group id>/<name>` → ms (the organiser's view). */
  lastSeen: z.record(z.string().regex(/^[0-9a-f]{64}\/[A-Za-z0-9._-]{1,64}$/), z.number().int().min(0)),
} as const;

type Key = keyof typeof SCHEMAS;
type Value<K extends Key> = z.output<(typeof SCHEMAS)[K]>;

export class Settings {
  constructor(private readonly store: SettingsStore) {}

  get<K extends Key>(key: K): Value<K> | undefined {
    const parsed = SCHEMAS[key].safeParse(this.store.get(key));
    return parsed.success ? (parsed.data as Value<K>) : undefined;
  }

  set<K extends Key>(key: K, value: Value<K>): void {
    this.store.set(key, SCHEMAS[key].parse(value));
  }

  delete(key: Key): void {
    this.store.delete(key);
  }

  view(): SettingsView {
    const theme: ThemeSetting = this.get('theme') ?? 'system';
    const relayAddress = this.get('relayAddress');
    return {
      theme,
      notifications: this.get('notifications') ?? true,
      notificationPreviews: this.get('notificationPreviews') ?? false,
      ...(relayAddress ? { relayAddress } : {}),
    };
  }
}
