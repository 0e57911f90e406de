/**
 * One relay node of a cluster (DESIGN §10.7, docs/relay.md "Cluster"): its group's log is a
 * JetStream stream shared with the other nodes (log/jetstream-log.ts), and this holds the rest of
 * what the nodes share through NATS: the follower that brings every stored frame to this node's
 * members (follower.ts), the other nodes' members (peers.ts), the roster and the prekeys kept in
 * the shared meta and watched, and the node's health (health.ts). The relay wires it in (wiring.ts); the CLI opens
 * it with the log (`securechat-x relay --cluster`) and closes it after the relay.
 */
import { randomBytes } from 'node:crypto';
import type { Logger } from 'pino';
import type { LocalIdentity } from '../../core/pki/local-identity.js';
import type { JetStreamRelayLog } from '../log/jetstream-log.js';
import { JetStreamPresence } from '../log/jetstream-presence.js';
import type { LogEntry } from '../log/types.js';
import { PREKEYS_META_KEY } from '../prekey-keeper.js';
import { ROSTER_META_KEY } from '../roster-keeper.js';
import { StreamFollower } from './follower.js';
import { ClusterHealth } from './health.js';
import { ClusterPeers } from './peers.js';

export interface ClusterNodeOptions {
  log: JetStreamRelayLog;
  identity: LocalIdentity;
  logger: Logger;
  /** Presence TTL: how long a dead node's members stay listed (default 30 s). */
  presenceTtlMs?: number;
  /** This node's name in presence (default: the relay certificate's name and a random suffix). */
  node?: string;
}

/** What the relay does for the node (wiring.ts builds it). */
export interface ClusterSide {
  /** A stored frame of any node, in stream order, for this node's members. */
  deliverStored(entry: LogEntry): void;
  /** A frame another node forwarded for `member`. */
  deliverForwarded(member: string, payload: Buffer): void;
  /** The other nodes' members changed. */
  membersChanged(): void;
  /** A roster was stored in the shared meta (by any node). */
  sharedRoster(bytes: Buffer): void;
  /** Prekeys were stored in the shared meta (by any node). */
  sharedPrekeys(bytes: Buffer): void;
  /** The node lost NATS (`reason`) / has it back. */
  lost(reason: string): void;
  regained(): void;
}

export class ClusterNode {
  private follower: StreamFollower | undefined;
  private readonly watches: { stop(): void }[] = [];
  private readonly health: ClusterHealth;
  private stopped = false;

  private constructor(
    readonly log: JetStreamRelayLog,
    readonly peers: ClusterPeers,
    private readonly logger: Logger,
  ) {
    this.health = new ClusterHealth(log.connection, logger);
  }

  /** Opens the group's presence bucket on the log's connection. Throws RelayLogError. */
  static async open(options: ClusterNodeOptions): Promise<ClusterNode> {
    const node = options.node ?? `${options.identity.name}-${randomBytes(4).toString('hex')}`;
    const presence = await JetStreamPresence.open({
      nc: options.log.connection,
      groupId: options.identity.groupId,
      node,
      replicas: options.log.replicas,
      ...(options.presenceTtlMs === undefined ? {} : { ttlMs: options.presenceTtlMs }),
    });
    const peers = new ClusterPeers(presence, options.log, options.identity, options.logger);
    return new ClusterNode(options.log, peers, options.logger);
  }

  /** Starts following the shared log, presence, the shared roster and the NATS link. */
  async start(side: ClusterSide): Promise<void> {
    this.health.start({
      lost: (r) => side.lost(r),
      regained: () => {
        this.peers
          .recover()
          .catch((err: unknown) =>
            this.logger.warn(
              { event: 'cluster-presence-failed', err: err instanceof Error ? err.message : String(err) },
              'presence after NATS came back: retried on the next beat',
            ),
          );
        side.regained();
      },
    });
    this.follower = await StreamFollower.start({
      log: this.log,
      logger: this.logger,
      deliver: (e) => side.deliverStored(e),
    });
    await this.peers.start({
      changed: () => side.membersChanged(),
      forwarded: (member, payload) => side.deliverForwarded(member, payload),
    });
    await this.watchShared(ROSTER_META_KEY, (bytes) => side.sharedRoster(bytes));
    await this.watchShared(PREKEYS_META_KEY, (bytes) => side.sharedPrekeys(bytes));
    this.logger.info(
      { event: 'cluster-node', node: this.peers.node, stream: this.log.names.stream, from: this.position },
      'following the shared log',
    );
  }

  /** Reports every value stored under meta `key` from now on, and the one stored now. */
  private async watchShared(key: string, onValue: (bytes: Buffer) => void): Promise<void> {
    this.watches.push(await this.log.watchMeta(key, onValue));
    // One stored between the relay's load and the watch: the watch reports only later ones.
    const stored = await this.log.getMeta(key);
    if (stored !== undefined) onValue(stored);
  }

  /** Offsets up to this one have been sent to this node's live members. */
  get position(): number {
    return this.follower?.position ?? 0;
  }

  /** Why the node takes no members now, or undefined. */
  get unavailable(): string | undefined {
    return this.health.unavailable;
  }

  /** This node stored frames up to `offset`. */
  appended(offset: number): void {
    this.follower?.appended(offset);
  }

  /** Stops everything the node started; this node's members leave presence. Does not close the log. */
  async stop(): Promise<void> {
    if (this.stopped) return;
    this.stopped = true;
    this.health.stop();
    this.follower?.stop();
    for (const w of this.watches.splice(0)) w.stop();
    await this.peers.stop(true);
  }
}
