/**
 * Liveness sweep: every tick, a HEARTBEAT to members the relay has sent nothing to for a while,
 * and members whose host went silent (heartbeatTimeoutMs) are dropped without a word.
 */
import type { Logger } from 'pino';
import { livenessTickMs } from '../core/link/liveness.js';
import type { ConnectionControl } from './control.js';
import type { RelayLimits } from './limits.js';
import type { Membership } from './membership.js';

export class LivenessSweep {
  private timer: NodeJS.Timeout | undefined;

  constructor(
    private readonly limits: RelayLimits,
    private readonly log: Logger,
    private readonly membership: Membership,
    private readonly control: ConnectionControl,
  ) {}

  start(): void {
    const tick = livenessTickMs({
      intervalMs: this.limits.heartbeatIntervalMs,
      timeoutMs: this.limits.heartbeatTimeoutMs,
    });
    this.timer = setInterval(() => this.control.guard(undefined, () => this.check()), tick);
    this.timer.unref();
  }

  stop(): void {
    if (this.timer) clearInterval(this.timer);
  }

  /** Heartbeats to quiet members; members whose host went silent are dropped. */
  private check(): void {
    const now = performance.now();
    for (const c of this.membership.all) {
      const verdict = c.liveness?.tick(now);
      if (!verdict || verdict.kind === 'ok' || !c.open) continue;
      if (verdict.kind === 'send-heartbeat') {
        if (c.heartbeatFrame) this.control.send(c, c.heartbeatFrame);
        continue;
      }
      this.log.warn(
        { event: 'heartbeat-timeout', conn: c.id, name: c.name, silentMs: Math.round(verdict.silentMs) },
        'member went silent',
      );
      // Nobody is reading at the other end: no last ERROR, just free the slot.
      this.control.guard(c, () => this.control.drop(c, 'heartbeat-timeout', undefined, true));
    }
  }
}
