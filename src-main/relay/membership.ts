/**
 * Membership: the authenticated members by name (one connection per identity), the same as an
 * array for the per-frame broadcast, and the signed member list (PRESENCE), coalesced so a burst
 * of joins and leaves costs one PRESENCE per presenceIntervalMs.
 */
import type { Logger } from 'pino';
import { sessionTag } from '../core/link/session-tag.js';
import type { RelayConnection } from './connection.js';
import type { ConnectionControl } from './control.js';
import type { RelayLimits } from './limits.js';
import type { Refusals } from './refusals.js';
import type { PresenceMember, RelayFrames } from './relay-frames.js';

export interface MembershipHooks {
  /** True once the relay is shutting down: no more PRESENCE. */
  closing(): boolean;
  /** A PRESENCE went out with this list and version. */
  changed(members: PresenceMember[], version: number): void;
}

/** A cluster node's view of the members on the other nodes (cluster/peers.ts). */
export interface RemoteMembers {
  /** Members online on other nodes (a name also connected here is listed once, as this node's). */
  list(): PresenceMember[];
  /** `conn` became this node's member of its name. */
  joined(conn: RelayConnection): void;
  /** This node's member `name` left. */
  left(name: string): void;
}

export class Membership {
  private readonly members = new Map<string, RelayConnection>();
  /** The members as an array, rebuilt on membership changes (broadcast iterates it per frame). */
  private memberArray: RelayConnection[] = [];
  private currentVersion = 0;
  private presenceTimer: NodeJS.Timeout | undefined;
  private lastPresenceAt = Number.NEGATIVE_INFINITY;
  /** Set on a cluster node: PRESENCE lists every node's members. */
  remote: RemoteMembers | undefined;

  constructor(
    private readonly limits: RelayLimits,
    private readonly log: Logger,
    private readonly frames: RelayFrames,
    private readonly refusals: Refusals,
    private readonly control: ConnectionControl,
    private readonly hooks: MembershipHooks,
  ) {}

  get size(): number {
    return this.members.size;
  }

  /** Current PRESENCE version. */
  get version(): number {
    return this.currentVersion;
  }

  /** The members by name (for routing and CERT_REQUEST). */
  get byName(): ReadonlyMap<string, RelayConnection> {
    return this.members;
  }

  /** The members as an array; replaced, never mutated, on a change (safe to iterate while dropping). */
  get all(): readonly RelayConnection[] {
    return this.memberArray;
  }

  /** Current members (on a cluster node: of every node), sorted by name. */
  list(): PresenceMember[] {
    const list: PresenceMember[] = [];
    for (const c of this.members.values()) {
      if (c.certificate) list.push({ name: c.certificate.name, fingerprint: c.certificate.fingerprintHex });
    }
    for (const m of this.remote?.list() ?? []) if (!this.members.has(m.name)) list.push(m);
    return list.sort((a, b) => (a.name < b.name ? -1 : a.name > b.name ? 1 : 0));
  }

  /** True if a login by `name` would need a member slot and none is free. */
  full(name: string): boolean {
    return !this.members.has(name) && this.members.size >= this.limits.maxConnections;
  }

  fullMessage(): string {
    return `the relay is full (${this.limits.maxConnections} members)`;
  }

  /** `conn` (logged in) is the member of its name now; returns the connection it replaces, if any. */
  join(conn: RelayConnection, name: string): RelayConnection | undefined {
    const previous = this.members.get(name);
    this.members.set(name, conn);
    this.memberArray = [...this.members.values()];
    this.remote?.joined(conn);
    return previous;
  }

  /** `conn` is closing or closed: if it was a member, it is one no more. */
  leave(conn: RelayConnection): void {
    const name = conn.name;
    if (name !== undefined && this.members.get(name) === conn) {
      this.members.delete(name);
      this.memberArray = [...this.members.values()];
      this.remote?.left(name);
      this.log.info(
        { event: 'left', conn: conn.id, name, reason: conn.closeReason ?? 'closed' },
        'member left',
      );
      this.schedulePresence();
    }
  }

  /** Sends PRESENCE soon: at once, or presenceIntervalMs after the last one. */
  schedulePresence(): void {
    if (this.presenceTimer || this.hooks.closing()) return;
    const wait = Math.max(0, this.lastPresenceAt + this.limits.presenceIntervalMs - performance.now());
    this.presenceTimer = setTimeout(
      () => this.control.guard(undefined, () => this.broadcastPresence()),
      wait,
    );
  }

  stop(): void {
    if (this.presenceTimer) clearTimeout(this.presenceTimer);
  }

  clear(): void {
    this.members.clear();
    this.memberArray = [];
  }

  private broadcastPresence(): void {
    this.presenceTimer = undefined;
    if (this.hooks.closing()) return;
    this.lastPresenceAt = performance.now();
    this.currentVersion++;
    const version = this.currentVersion;
    const members = this.list();
    // One frame for all, listing every receiver's session: O(members) bytes held, one signature.
    const receivers = [...this.members.values()];
    const frame = this.frames.presence(
      receivers.map((c) => sessionTag(this.refusals.sessionOf(c))),
      version,
      members,
    );
    for (const c of receivers) this.control.send(c, frame);
    this.log.info({ event: 'presence', version, members: members.length }, 'membership changed');
    this.hooks.changed(members, version);
  }
}
