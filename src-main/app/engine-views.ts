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

/** The window's typed cause: a removal outranks whatever the engine's state event says. */
export function connectionCause(
  engineCause: EngineConnectionCause | undefined,
  removed: boolean,
): ConnectionCause | undefined {
  if (removed) return 'removed';
  return engineCause;
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
