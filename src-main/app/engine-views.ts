/**
 * The engine's domain types (src-main/client/types.ts) as the renderer's view models
 * (src-shared/model.ts). The one place that knows both: either side may change its shape and only
 * this file follows.
 */
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
 * The engine's own words for a relay that went silent (engine-state.ts, the heartbeat timer):
 * "Relay not responding: nothing received for N s". The engine carries no code for it, so this
 * is the one place that reads the text; the window gets the typed cause.
 */
const RELAY_SILENT = 'Relay not responding';

export function connectionCause(reason: string | undefined, removed: boolean): ConnectionCause | undefined {
  if (removed) return 'removed';
  if (reason?.startsWith(RELAY_SILENT)) return 'relay-silent';
  return undefined;
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
