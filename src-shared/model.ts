/**
 * Plain view-model types shared by the main process and the renderer.
 * No Node, no DOM, no crypto: these are what the UI is allowed to know.
 */

/** The client engine's states, in the order a successful session passes through them. */
export const CONNECTION_STATES = [
  'Initialization',
  'Connecting',
  'CertExchange',
  'KeyEstablishment',
  'Chatting',
  'Disconnecting',
] as const;

/** Plus the terminal and waiting states outside the happy path. */
export type ConnectionState = (typeof CONNECTION_STATES)[number] | 'Disconnected' | 'Reconnecting' | 'Failed';

export interface MemberView {
  name: string;
  /** SHA-256 of the member's certificate, lowercase hex (64 characters). */
  fingerprint: string;
}

export interface KeyView {
  epoch: number;
  /** Digits in groups, equal for every member holding the same key over the same member list. */
  safetyNumber: string;
  /** M: every roster member the key was sealed for, online or not. */
  members: string[];
  /** C ⊆ M: who gave a nonce (the initiator and the members online then). */
  contributors: string[];
}

export interface ChatMessageView {
  from: string;
  text: string;
  epoch: number;
  seq: number;
  /** Sender's clock, ms since the Unix epoch. */
  sentAt: number;
}

export interface ErrorView {
  code: string;
  message: string;
}

// ---------------------------------------------------------------------------------------------
// Desktop app view models (src-main/app service → renderer). Plain data, safe to structured-clone.
// ---------------------------------------------------------------------------------------------

/** The participant's own identity as the UI shows it. Never holds key material. */
export interface IdentityView {
  name: string;
  /** Lowercase hex SHA-256 of the certificate. */
  fingerprint: string;
  /** The group CA's name (certificate issuer). */
  issuer: string;
  /** Lowercase hex SHA-256 of the group CA certificate. */
  groupId: string;
  /**
   * Lowercase hex SHA-256 of the group CA certificate, for the user to compare with the one the
   * organiser hands out (ca.pem). Today equal to groupId; kept apart because what identifies a
   * group may change, what the user compares may not.
   */
  caFingerprint: string;
  /** ms since the Unix epoch. */
  notBefore: number;
  notAfter: number;
  /** Where the bundle password lives: encrypted by the OS keystore, or only in the user's head. */
  storage: 'safeStorage' | 'password';
}

export type IdentityState =
  | { status: 'none' }
  /** A bundle is kept in the app's data folder but its password is needed to open it. */
  | { status: 'locked'; name: string; fingerprint: string; reason?: string }
  | { status: 'ready'; identity: IdentityView };

/** A member as the desktop app shows it: with the user's own verification mark. */
export interface MemberEntry extends MemberView {
  self: boolean;
  /** The user compared this fingerprint out of band and marked it as verified. */
  verified: boolean;
  /** The member was verified with a different certificate than the one presented now. */
  fingerprintChanged: boolean;
  /** The fingerprint that was verified before, when it changed. */
  previousFingerprint?: string;
}

export interface FingerprintWarning {
  name: string;
  previousFingerprint: string;
  currentFingerprint: string;
  /** ms since the Unix epoch. */
  at: number;
}

/**
 * Why the connection is where it is, when the app knows it as a fact (not only as words):
 * 'relay-silent' = the relay sent nothing for too long and the client gave up on the link;
 * 'removed' = this member was removed from the group (terminal: no reconnect).
 */
export type ConnectionCause = 'relay-silent' | 'removed';

export interface ConnectionView {
  state: ConnectionState;
  reason?: string;
  retryInMs?: number;
  address?: { host: string; port: number };
  cause?: ConnectionCause;
}

export type ChatLine =
  | {
      kind: 'message';
      id: string;
      from: string;
      text: string;
      epoch: number;
      seq: number;
      sentAt: number;
      receivedAt: number;
      /** Its place in the local history (older pages are asked for before the oldest one shown). */
      historyId?: number;
    }
  | {
      kind: 'own';
      id: string;
      from: string;
      text: string;
      /**
       * queued: waiting for a group key (or the link); sending: signed under epoch/seq and written,
       * not yet acknowledged; sent: the relay stored it (STORED), so members who are away get it too.
       */
      status: 'queued' | 'sending' | 'sent';
      epoch?: number;
      seq?: number;
      sentAt: number;
      /** Its place in the local history, once written (stored as it is written). */
      historyId?: number;
    }
  | {
      kind: 'system';
      id: string;
      /** away: the divider above the messages caught up from the relay after being offline. */
      event:
        | 'joined'
        | 'left'
        | 'rekey'
        | 'connected'
        | 'disconnected'
        | 'warning'
        | 'roster'
        | 'removed'
        | 'away';
      text: string;
      name?: string;
      epoch?: number;
      at: number;
    };

export type RelayStatus = 'stopped' | 'starting' | 'running' | 'stopping' | 'crashed';

export interface RelayView {
  status: RelayStatus;
  host?: string;
  port?: number;
  memberCount: number;
  members: string[];
  /** Plain-words reason when it failed or crashed. */
  error?: string;
}

export type ThemeSetting = 'system' | 'light' | 'dark';

export interface SettingsView {
  theme: ThemeSetting;
  notifications: boolean;
  /** Show the message text in desktop notifications (off by default). */
  notificationPreviews: boolean;
  /** Last relay address used to connect. */
  relayAddress?: { host: string; port: number };
  /** The other relay nodes given with it, tried in order when the link to the first is lost. */
  relayFallbacks?: { host: string; port: number }[];
}

export interface AppInfo {
  name: string;
  version: string;
  /** The OS keystore can encrypt the bundle password at rest. */
  secretStorageAvailable: boolean;
  platform: string;
}

/** Everything the renderer needs to draw itself after a (re)load. */
/** One roster entry as the organiser sees it: online now, or when this app last saw it online. */
export interface RosterMemberView {
  name: string;
  fingerprint: string;
  online: boolean;
  /** ms since the Unix epoch; absent: never seen online by this app. */
  lastSeen?: number;
}

export interface RemovedMemberView {
  name: string;
  /** ms since the Unix epoch. */
  removedAt: number;
  reason: string;
}

/**
 * The organiser's view of the group (issue 12, item 3), shown once the group's CA bundle is open:
 * the roster beside who is online. The CA's key is not kept: each change asks for its password.
 */
export interface OrganiserView {
  groupName: string;
  /** The CA bundle's file name (the path stays in the main process). */
  caFile: string;
  rosterVersion: number;
  members: RosterMemberView[];
  relays: string[];
  removed: RemovedMemberView[];
}

export interface AddedMember {
  name: string;
  fingerprint: string;
  /** Where the new bundle was written (beside the CA bundle). */
  bundlePath: string;
  rosterVersion: number;
  /** The roster reached the relay now (false: it goes at the next connect). */
  published: boolean;
}

export interface RemovedMember {
  name: string;
  rosterVersion: number;
  published: boolean;
}

/** One group in the sidebar: its identity, connection and unread count. */
export interface GroupSummary {
  /** `<group id>/<name>`: the identity (one per group). */
  id: string;
  groupName: string;
  member: string;
  status: 'ready' | 'locked';
  connection: ConnectionState;
  cause?: ConnectionCause;
  unread: number;
}

export interface AppSnapshot {
  app: AppInfo;
  /** Every group this app holds, in the order they were added. */
  groups: GroupSummary[];
  /** The group the window shows (absent: none yet). The fields below are this group's. */
  activeGroup?: string;
  identity: IdentityState;
  connection: ConnectionView;
  members: MemberEntry[];
  key?: KeyView;
  timeline: ChatLine[];
  warnings: FingerprintWarning[];
  relay: RelayView;
  settings: SettingsView;
  /** Present while the group's CA bundle is open in this app (the organiser's tools). */
  organiser?: OrganiserView;
}

export interface FileChoice {
  /** Opaque handle for a path picked in a native dialog; the renderer never names paths itself. */
  token: string;
  /** The file or folder's base name, for display. */
  displayName: string;
}

export interface CreatedGroup {
  folder: string;
  caFingerprint: string;
  files: string[];
}
