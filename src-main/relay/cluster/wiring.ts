/**
 * Plugs a ClusterNode into the relay's parts (server.ts calls this once, with a node): logged
 * frames are only stored and acknowledged by the fan-out and reach members through the node's
 * follower; replays go live no earlier than the follower's position; PRESENCE and CERT_RESPONSE
 * include the other nodes' members; targeted frames for them go over NATS; a roster or a prekey
 * stored by any node is in force here (and a prekey reaches the members here); logins are refused while NATS is lost.
 */
import {
  lengthPrefix,
  readHeader,
  type EnvelopeHeader,
  type MessageType,
} from '../../core/protocol/index.js';
import type { RelayConnection } from '../connection.js';
import type { ConnectionControl } from '../control.js';
import type { RelayCounters } from '../forwarding.js';
import type { LogFanout } from '../log-fanout.js';
import type { Login } from '../login.js';
import type { MemberFrames } from '../member-frames.js';
import type { Membership } from '../membership.js';
import type { Output } from '../output.js';
import type { PrekeyGate } from '../prekey-gate.js';
import type { RosterGate } from '../roster-gate.js';
import type { SyncSessions } from '../sync-session.js';
import type { ClusterNode, ClusterSide } from './node.js';

/** What another node may forward: the targeted frames that are not logged. */
const FORWARDED: ReadonlySet<MessageType> = new Set(['NONCE_REQUEST', 'NONCE_RESPONSE', 'REKEY_REQUEST']);

export interface ClusterParts {
  fanout: LogFanout;
  syncs: SyncSessions;
  membership: Membership;
  memberFrames: MemberFrames;
  login: Login;
  rosterGate: RosterGate;
  prekeyGate: PrekeyGate;
  output: Output;
  counters: RelayCounters;
  control: ConnectionControl;
  /** Closes every connection with a fatal Unavailable (the node lost NATS). */
  dropAll(reason: string): void;
  /** Closes these connections with a fatal Unavailable. */
  drop(conns: readonly RelayConnection[], reason: string): void;
}

export function wireCluster(node: ClusterNode, parts: ClusterParts): ClusterSide {
  const peers = node.peers;
  parts.fanout.shared = { appended: (offset) => node.appended(offset) };
  // They reconnect (to the next node of their list), SYNC and resend what was not acknowledged.
  parts.fanout.onAppendFailed = (senders, reason) => parts.drop(senders, reason);
  parts.syncs.liveFloor = () => node.position;
  parts.membership.remote = peers;
  parts.memberFrames.remote = {
    has: (name) => peers.has(name),
    forward: (name, payload) => peers.forward(name, payload),
    certificate: (name) => peers.certificate(name),
  };
  parts.login.unavailable = () => node.unavailable;
  return {
    deliverStored: (entry) => parts.control.guard(undefined, () => parts.fanout.deliverStored(entry)),
    deliverForwarded: (member, payload) =>
      parts.control.guard(undefined, () => deliverForwarded(parts, member, payload)),
    membersChanged: () => parts.membership.schedulePresence(),
    sharedRoster: (bytes) => parts.rosterGate.shared(bytes),
    sharedPrekeys: (bytes) => parts.prekeyGate.shared(bytes, parts.membership.all),
    lost: (reason) => parts.dropAll(reason),
    // Nothing to undo: logins are admitted again as soon as `unavailable` is undefined.
    regained: () => undefined,
  };
}

/** A frame another node forwarded: to `member` if connected here and the frame is one for it. */
function deliverForwarded(parts: ClusterParts, member: string, payload: Buffer): void {
  const to = parts.membership.byName.get(member);
  if (to === undefined || to.state !== 'member') return;
  let header: EnvelopeHeader;
  try {
    header = readHeader(payload);
  } catch {
    return; // Not a frame: a node forwards frames as received, so nothing of ours sends this.
  }
  if (!FORWARDED.has(header.type) || header.target !== member) return;
  parts.output.send(to, lengthPrefix(payload.length));
  parts.output.send(to, payload);
  parts.counters.framesForwarded++;
  parts.counters.deliveries++;
  parts.counters.bytesForwarded += payload.length + 4;
}
