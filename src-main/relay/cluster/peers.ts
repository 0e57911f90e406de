/**
 * The members on the group's other relay nodes (DESIGN §10.7), from the presence bucket
 * (log/jetstream-presence.ts): this node puts its own members there with their certificate, and
 * keeps a map of every other node's, so that its PRESENCE lists them, its CERT_REQUEST answers
 * carry their certificates and a targeted frame that is not logged (NONCE_REQUEST, NONCE_RESPONSE)
 * can be sent to the node that holds its target, over a core NATS subject per member.
 *
 * The map follows the bucket's watch (puts, deletes) and is rebuilt from list() on every heartbeat:
 * nats-server 2.9 expires a dead node's entries silently, so only list() shows them gone.
 * What another node wrote is checked like any input: a certificate the group CA did not issue for
 * a member of that name, or whose fingerprint is not the one announced, is ignored.
 */
import type { Subscription } from '@nats-io/transport-node';
import type { Logger } from 'pino';
import type { LocalIdentity } from '../../core/pki/local-identity.js';
import type { RelayConnection } from '../connection.js';
import { memberFromToken, memberToken, type GroupNames } from '../log/jetstream-names.js';
import type { JetStreamRelayLog } from '../log/jetstream-log.js';
import type { JetStreamPresence, PresenceChange, PresenceEntry } from '../log/jetstream-presence.js';
import type { RemoteMembers } from '../membership.js';
import type { PresenceMember } from '../relay-frames.js';

/** Checked certificates remembered (a bound on what a flood of entries can make this hold). */
const MAX_CHECKED = 4096;

interface Remote {
  fingerprint: string;
  der: Buffer;
}

export interface PeersHooks {
  /** The other nodes' members changed: PRESENCE is due. */
  changed(): void;
  /** A frame another node sent for `member` (maybe not connected here any more). */
  forwarded(member: string, payload: Buffer): void;
}

export class ClusterPeers implements RemoteMembers {
  /** member → node → what that node says. */
  private readonly remote = new Map<string, Map<string, Remote>>();
  /** Certificates already checked (fingerprint → name): the heartbeat relists every entry. */
  private readonly checked = new Map<string, string>();
  private sub: Subscription | undefined;
  private watcher: { stop(): void } | undefined;
  private timer: NodeJS.Timeout | undefined;
  private stopped = false;
  /** The last beat failed: the next one recovers (reopen, watch again) instead of refreshing. */
  private failed = false;
  private hooks: PeersHooks | undefined;

  constructor(
    private readonly presence: JetStreamPresence,
    private readonly log: JetStreamRelayLog,
    private readonly identity: LocalIdentity,
    private readonly logger: Logger,
  ) {}

  /** This node's name in presence. */
  get node(): string {
    return this.presence.node;
  }

  private get names(): GroupNames {
    return this.log.names;
  }

  async start(hooks: PeersHooks): Promise<void> {
    const prefix = this.names.forwardPrefix;
    this.sub = this.log.connection.subscribe(`${prefix}*`, {
      callback: (err, m) => {
        if (err !== null) return;
        let member: string;
        try {
          member = memberFromToken(m.subject.slice(prefix.length));
        } catch {
          return; // Not a subject this code publishes to.
        }
        hooks.forwarded(member, Buffer.from(m.data));
      },
    });
    this.hooks = hooks;
    await this.follow();
    const beat = Math.floor(this.presence.ttlMs / 3);
    this.timer = setInterval(() => {
      const next = this.failed ? this.recover() : this.presence.refresh().then(() => this.resync());
      next.catch((err: unknown) => {
        this.failed = true;
        this.warn('cluster-presence-failed', err);
      });
    }, beat);
    this.timer.unref();
  }

  /**
   * After a NATS outage (or a failed beat): the bucket is opened again (made again if the servers
   * lost it, it lives in memory), this node's members put again and the watch started again.
   */
  async recover(): Promise<void> {
    if (this.stopped) return;
    this.failed = true;
    await this.presence.reopen();
    await this.follow();
    this.failed = false;
  }

  private async follow(): Promise<void> {
    this.watcher?.stop();
    this.watcher = await this.presence.watch((change) => {
      if (this.apply(change)) this.hooks?.changed();
    });
    await this.resync();
  }

  list(): PresenceMember[] {
    const out: PresenceMember[] = [];
    for (const [name, nodes] of this.remote) {
      const first = nodes.values().next();
      if (first.done !== true) out.push({ name, fingerprint: first.value.fingerprint });
    }
    return out;
  }

  has(name: string): boolean {
    return (this.remote.get(name)?.size ?? 0) > 0;
  }

  certificate(name: string): Buffer | undefined {
    const first = this.remote.get(name)?.values().next();
    return first === undefined || first.done === true ? undefined : first.value.der;
  }

  joined(conn: RelayConnection): void {
    const cert = conn.certificate;
    if (cert === undefined || this.stopped) return;
    this.presence
      .join(cert.name, { fingerprint: cert.fingerprintHex, certificate: cert.der })
      .catch((err: unknown) => this.warn('cluster-presence-failed', err));
  }

  left(name: string): void {
    if (this.stopped) return;
    this.presence.leave(name).catch((err: unknown) => this.warn('cluster-presence-failed', err));
  }

  /** Sends a frame, bytes as received, to the node(s) where `name` is online. */
  forward(name: string, payload: Buffer): void {
    try {
      this.log.connection.publish(`${this.names.forwardPrefix}${memberToken(name)}`, payload);
    } catch (err) {
      this.warn('cluster-forward-failed', err);
    }
  }

  /** Stops following; with `leave`, this node's members are taken out of presence (a clean stop). */
  async stop(leave: boolean): Promise<void> {
    if (this.stopped) return;
    this.stopped = true;
    if (this.timer) clearInterval(this.timer);
    this.watcher?.stop();
    this.sub?.unsubscribe();
    await this.presence.close({ leave }).catch((err: unknown) => this.warn('cluster-presence-failed', err));
  }

  /** Applies one change from the watch; true if the map changed. */
  private apply(change: PresenceChange): boolean {
    if (change.node === this.presence.node) return false;
    if (change.kind === 'gone') {
      const nodes = this.remote.get(change.member);
      if (nodes?.delete(change.node) !== true) return false;
      if (nodes.size === 0) this.remote.delete(change.member);
      return true;
    }
    return this.put(change);
  }

  private put(entry: PresenceEntry): boolean {
    const detail = entry.detail;
    if (detail === undefined || !this.valid(entry.member, detail.fingerprint, detail.certificate))
      return false;
    let nodes = this.remote.get(entry.member);
    if (nodes === undefined) {
      nodes = new Map();
      this.remote.set(entry.member, nodes);
    }
    const had = nodes.get(entry.node);
    nodes.set(entry.node, { fingerprint: detail.fingerprint, der: detail.certificate });
    return had?.fingerprint !== detail.fingerprint;
  }

  /** Rebuilds the map from the bucket (drops what the TTL expired); tells if it changed. */
  private async resync(): Promise<void> {
    const entries = await this.presence.list();
    if (this.stopped) return;
    const before = signature(this.remote);
    this.remote.clear();
    for (const e of entries) if (e.node !== this.presence.node) this.put(e);
    if (signature(this.remote) !== before) this.hooks?.changed();
  }

  private valid(member: string, fingerprint: string, der: Buffer): boolean {
    if (this.checked.get(fingerprint) === member) return true;
    if (this.checked.size >= MAX_CHECKED) this.checked.clear();
    try {
      const cert = this.identity.validator.validateDer(der, { role: 'member' });
      if (cert.name !== member || cert.fingerprintHex !== fingerprint) return false;
    } catch {
      return false;
    }
    this.checked.set(fingerprint, member);
    return true;
  }

  private warn(event: string, err: unknown): void {
    if (this.stopped) return;
    this.logger.warn(
      {
        event,
        code: (err as { code?: unknown } | undefined)?.code,
        err: err instanceof Error ? err.message : String(err),
      },
      'cluster presence: a NATS request failed',
    );
  }
}

function signature(remote: ReadonlyMap<string, ReadonlyMap<string, Remote>>): string {
  return [...remote]
    .map(([name, nodes]) => `${name}:${[...nodes].map(([n, r]) => `${n}=${r.fingerprint}`).join(',')}`)
    .sort()
    .join(';');
}
