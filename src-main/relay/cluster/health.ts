/**
 * A cluster node's health is its NATS connection: without it the node can neither store nor read
 * the group's log, so it must not hold members who would believe their frames are relayed. On a
 * disconnect it says why (log event `cluster-lost`) and the relay closes every connection with a
 * fatal `Unavailable` and refuses logins with it, so members move on to another node; once the
 * client reconnects (it retries forever) the node takes members again (`cluster-regained`).
 */
import type { NatsConnection } from '@nats-io/transport-node';
import type { Logger } from 'pino';

export interface HealthHooks {
  lost(reason: string): void;
  regained(): void;
}

export class ClusterHealth {
  /** Why the node refuses members now, or undefined while it is healthy. */
  #down: string | undefined;
  private stopped = false;

  constructor(
    private readonly nc: NatsConnection,
    private readonly logger: Logger,
  ) {}

  get unavailable(): string | undefined {
    return this.#down;
  }

  start(hooks: HealthHooks): void {
    void (async () => {
      for await (const s of this.nc.status()) {
        if (this.stopped) return;
        if (s.type === 'disconnect') this.down(`the relay node lost its NATS server ${s.server}`, hooks);
        else if (s.type === 'close') this.down('the relay node’s NATS connection is closed', hooks);
        else if (s.type === 'reconnect' && this.#down !== undefined) {
          this.#down = undefined;
          this.logger.info(
            { event: 'cluster-regained', server: s.server },
            'NATS is back: accepting members',
          );
          hooks.regained();
        }
      }
    })();
  }

  stop(): void {
    this.stopped = true;
  }

  private down(reason: string, hooks: HealthHooks): void {
    if (this.#down !== undefined) return;
    this.#down = reason;
    this.logger.error(
      { event: 'cluster-lost', reason },
      `${reason}: members are closed (Unavailable) and refused until it is back`,
    );
    hooks.lost(reason);
  }
}
