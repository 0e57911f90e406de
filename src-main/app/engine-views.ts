/**
 * The engine's domain types (src-main/client/types.ts) as the renderer's view models
 * (src-shared/model.ts). The one place that knows both: either side may change its shape and only
 * this file follows.
 */
import type { ConnectionCause as EngineConnectionCause } from '../client/engine-machine.js';
import type { EngineState, GroupKeyInfo, Member } from '../client/types.js';
import type { ConnectionCause, ConnectionState, KeyView, MemberView } from '../../src-shared/model.js';

const CONNECTION_STATE: Record<EngineState, ConnectionState> = {
  Initialization: 'Initialization',
  Connecting: 'Connecting',
  CertExchange: 'CertExchange',
  KeyEstablishment: 'KeyEstablishment',
  Chatting: 'Chatting',
  Disconnecting: 'Disconnecting',
  Disconnected: 'Disconnected',
  Reconnecting: 'Reconnecting',
  Failed: 'Failed',
};

export function connectionStateView(state: EngineState): ConnectionState {
  return CONNECTION_STATE[state];
}

/**
 * The window's typed cause: a removal outranks whatever the engine's state event says; of the
 * engine's causes the window shows only a silent relay (the others are in the reason's words).
 */
export function connectionCause(
  engineCause: EngineConnectionCause | undefined,
  removed: boolean,
): ConnectionCause | undefined {
  if (removed) return 'removed';
  return engineCause === 'relay-silent' ? engineCause : undefined;
}

/** The engine's causes that mean the relay could not be reached at all (RelayUnreachable). */
export function isUnreachable(cause: EngineConnectionCause | undefined): boolean {
  return cause === 'nothing-listening' || cause === 'no-answer' || cause === 'host-unknown';
}

export function memberViews(members: readonly Member[]): MemberView[] {
  return members.map((m) => ({ name: m.name, fingerprint: m.fingerprint }));
}

export function keyView(key: GroupKeyInfo): KeyView {
  return {
    epoch: key.epoch,
    safetyNumber: key.safetyNumber,
    members: [...key.members],
    contributors: [...key.contributors],
  };
}

/**
 * The engine's reason for a state in plain words, by its typed cause (the transport's reading of
 * the socket's error code); without one the engine's own words stand.
 */
export function describeConnectionReason(
  reason: string | undefined,
  address?: { host: string; port: number },
  cause?: EngineConnectionCause,
): string | undefined {
  if (reason === undefined) return undefined;
  const where = address ? `${address.host}:${address.port}` : 'the relay';
  switch (cause) {
    case 'nothing-listening':
      return `Relay unreachable: nothing is listening at ${where}.`;
    case 'no-answer':
      return `Relay unreachable: ${where} does not answer.`;
    case 'host-unknown':
      return `Relay unreachable: the host name of ${where} is unknown.`;
    case 'relay-reset':
      return `The relay at ${where} closed the connection.`;
    default:
      return reason;
  }
}

/** The system line for a newer roster: who was added, who was removed (or only renewed). */
export function rosterChangeText(
  previous: { members: readonly string[]; removed: readonly string[] },
  next: { version: number; members: readonly string[]; removed: readonly string[] },
): string {
  const added = next.members.filter((m) => !previous.members.includes(m));
  const gone = next.removed.filter((m) => !previous.removed.includes(m));
  const parts = [
    ...(added.length > 0 ? [`${added.join(', ')} added`] : []),
    ...(gone.length > 0 ? [`${gone.join(', ')} removed`] : []),
  ];
  return `The group changed (roster v${next.version}): ${parts.length > 0 ? parts.join('; ') : 'certificates renewed'}.`;
}
