/**
 * The verified roster: who belongs to the group, by certificate, at one version. Only
 * verifyRoster (verify.ts) makes one, so holding a Roster means its CA signature, schema and
 * certificates were checked. Immutable: arrays are frozen, bytes are handed out as copies.
 */
import type { Certificate } from '../pki/certificate.js';
import type { BodyOf } from '../protocol/schemas.js';

/** The body as signed: what buildRoster / nextRoster produce and signRoster signs. */
export type RosterBody = BodyOf<'ROSTER'>;

export interface RosterEntry {
  readonly name: string;
  readonly certificate: Certificate;
  /** Lowercase hex SHA-256 of the certificate's DER. */
  readonly fingerprintHex: string;
}

export interface RemovedEntry {
  readonly name: string;
  /** Lowercase hex SHA-256 of the removed certificate's DER. */
  readonly fingerprint: string;
  /** When it was removed, ms since the epoch (the removing roster's issuedAt). */
  readonly removedAt: number;
  readonly reason: string;
}

/** Held by verify.ts only, so no other module can construct an unverified Roster. */
export const VERIFIED: unique symbol = Symbol('verified roster');

const byName = (a: { name: string }, b: { name: string }): number =>
  a.name < b.name ? -1 : a.name > b.name ? 1 : 0;

export class Roster {
  readonly #bytes: Buffer;
  readonly ca: Certificate;
  /** The group id: the CA certificate's fingerprint, lowercase hex. */
  readonly groupId: string;
  /** The group's display name. */
  readonly name: string;
  readonly version: number;
  /** ms since the epoch. */
  readonly issuedAt: number;
  /** In the order the roster lists them. */
  readonly members: readonly RosterEntry[];
  readonly relays: readonly RosterEntry[];
  readonly removed: readonly RemovedEntry[];
  readonly #byFingerprint: ReadonlyMap<string, RosterEntry>;
  readonly #byName: ReadonlyMap<string, RosterEntry>;
  readonly #relayFingerprints: ReadonlySet<string>;
  readonly #removedByFingerprint: ReadonlyMap<string, RemovedEntry>;

  constructor(
    token: typeof VERIFIED,
    fields: {
      bytes: Uint8Array;
      ca: Certificate;
      body: RosterBody;
      members: RosterEntry[];
      relays: RosterEntry[];
    },
  ) {
    if (token !== VERIFIED) throw new TypeError('a Roster comes from verifyRoster only');
    this.#bytes = Buffer.from(fields.bytes);
    this.ca = fields.ca;
    this.groupId = fields.body.groupId;
    this.name = fields.body.name;
    this.version = fields.body.version;
    this.issuedAt = fields.body.issuedAt;
    this.members = Object.freeze(fields.members.map((m) => Object.freeze({ ...m })));
    this.relays = Object.freeze(fields.relays.map((r) => Object.freeze({ ...r })));
    this.removed = Object.freeze(fields.body.removed.map((r) => Object.freeze({ ...r })));
    this.#byFingerprint = new Map(this.members.map((m) => [m.fingerprintHex, m]));
    this.#byName = new Map(this.members.map((m) => [m.name, m]));
    this.#relayFingerprints = new Set(this.relays.map((r) => r.fingerprintHex));
    this.#removedByFingerprint = new Map(this.removed.map((r) => [r.fingerprint, r]));
    Object.freeze(this);
  }

  /** The signed envelope exactly as verified (a copy): what roster.scx holds and the wire carries. */
  get bytes(): Buffer {
    return Buffer.from(this.#bytes);
  }

  /** Byte-for-byte the same signed roster. */
  sameBytes(other: Roster): boolean {
    return this.#bytes.equals(other.#bytes);
  }

  /** Whether this certificate (lowercase hex fingerprint) is a member at this version. */
  isMember(fingerprintHex: string): boolean {
    return this.#byFingerprint.has(fingerprintHex);
  }

  /** Whether this certificate is one of the group's relays at this version. */
  isRelay(fingerprintHex: string): boolean {
    return this.#relayFingerprints.has(fingerprintHex);
  }

  member(name: string): RosterEntry | undefined {
    return this.#byName.get(name);
  }

  relay(name: string): RosterEntry | undefined {
    return this.relays.find((r) => r.name === name);
  }

  /** The removal of this certificate, if it was removed at or before this version. */
  removedEntry(fingerprintHex: string): RemovedEntry | undefined {
    return this.#removedByFingerprint.get(fingerprintHex);
  }

  /** Member names sorted by code point (the order the key schedule uses). */
  get memberNames(): readonly string[] {
    return this.members.map((m) => m.name).sort();
  }

  get relayNames(): readonly string[] {
    return this.relays.map((r) => r.name).sort();
  }

  /** A fresh, mutable copy of the body, for nextRoster. */
  body(): RosterBody {
    const entry = (e: RosterEntry): { name: string; certificate: Buffer } => ({
      name: e.name,
      certificate: Buffer.from(e.certificate.der),
    });
    return {
      groupId: this.groupId,
      name: this.name,
      version: this.version,
      issuedAt: this.issuedAt,
      members: [...this.members].sort(byName).map(entry),
      relays: [...this.relays].sort(byName).map(entry),
      removed: this.removed.map((r) => ({ ...r })),
    };
  }

  /** Keeps a log line or JSON dump small: who and which version, no certificates. */
  toJSON(): { groupId: string; version: number; members: readonly string[]; relays: readonly string[] } {
    return {
      groupId: this.groupId,
      version: this.version,
      members: this.memberNames,
      relays: this.relayNames,
    };
  }
}
