/** The relay's log and the history, wired to the engine's events (log-follower.ts does the work). */
import type { EngineHost } from './engine-core.js';
import { LogFollower, type LogHistory } from './log-follower.js';

export function createFollower(
  history: LogHistory,
  host: Pick<EngineHost, 'emit' | 'emitError'> & { name: string },
): LogFollower {
  const follower: LogFollower = new LogFollower({
    history,
    self: host.name,
    shown: (m) => {
      if (m.own) return;
      host.emit({
        event: 'message',
        from: m.from,
        text: m.text,
        epoch: m.epoch,
        seq: m.seq,
        ...(m.offset !== undefined ? { offset: m.offset } : {}),
        sentAt: m.sentAt,
        ...(m.offset !== undefined && follower.replayed(m.offset) ? { backlog: true as const } : {}),
      });
    },
    sent: (epoch, seq, offset) => host.emit({ event: 'sent', epoch, seq, offset }),
    gap: (reason) => host.emit({ event: 'gap', reason }),
    unreadable: (count) =>
      host.emitError(
        'UnknownEpoch',
        `${count} message(s) sent while you were away were sealed for a group key this member never held`,
      ),
    problem: (err) => host.emitError('StateStoreFailed', `the history could not be written: ${String(err)}`),
  });
  return follower;
}
