/**
 * Routing by header only: where an authenticated member's frame goes, decided from its type,
 * sender fingerprint and target, never from its body. The frame bytes are forwarded untouched.
 */
import { isValidIdentityName } from '../core/pki/identity-name.js';
import { RELAY_TYPES, TARGETED_TYPES, type EnvelopeHeader } from '../core/protocol/index.js';
import type { RelayConnection } from './connection.js';
import { RelayRefusal } from './errors.js';

export type Route =
  /** Forward the frame, as received, to this member. */
  | { kind: 'forward'; to: RelayConnection }
  /** Forward the frame, as received, to every other member. */
  | { kind: 'broadcast' }
  /** The relay answers it itself (after checking its signature). */
  | { kind: 'cert-request' }
  /** Forward to every other member, then close the sender's connection. */
  | { kind: 'disconnect' }
  /** For the relay alone: the member is still there. */
  | { kind: 'heartbeat' }
  /** For the relay alone (protocol v2): replay the log, then go live. */
  | { kind: 'sync' }
  /** Verified and stored by the relay, then forwarded to every other member. */
  | { kind: 'prekey' }
  /**
   * Store in the log for this member (a relay with a store, KEY_DISTRIBUTION), and forward once
   * stored if it is connected (`to`).
   */
  | { kind: 'store-for'; name: string; to: RelayConnection | undefined }
  /** Forward the frame, as received, to this member on another relay node (a cluster). */
  | { kind: 'remote'; name: string };

export interface RouteOptions {
  /**
   * The relay keeps a log: a KEY_DISTRIBUTION is stored for its target whether or not it is
   * connected. Which names count as known: any valid identity name but the sender's own. The
   * relay does not remember who has logged in (a restart forgets it) and an epoch's envelopes are
   * sealed for members who may never have connected to this relay yet; the roster (issue 9's
   * roster work) narrows this to its members.
   */
  storeTargeted?: boolean;
  /** On a cluster node: whether `name` is online on another node (a targeted frame goes there). */
  remote?: (name: string) => boolean;
}

export function route(
  header: EnvelopeHeader,
  from: RelayConnection,
  members: ReadonlyMap<string, RelayConnection>,
  options: RouteOptions = {},
): Route {
  const type = header.type;
  if (RELAY_TYPES.has(type)) throw new RelayRefusal('NotAllowed', `only the relay may send ${type}`);
  if (type === 'CONNECTION') throw new RelayRefusal('NotAllowed', 'this connection is already authenticated');
  const own = from.certificate;
  if (!own) throw new RelayRefusal('NotAuthenticated', 'send CONNECTION first');
  if (header.sender.kind !== 'fingerprint' || !header.sender.fingerprint.equals(own.fingerprint)) {
    throw new RelayRefusal(
      'SenderMismatch',
      `${type} must name this connection's identity (${own.name}) by certificate fingerprint`,
    );
  }
  if (TARGETED_TYPES.has(type)) {
    const target = header.target;
    if (target.length === 0)
      throw new RelayRefusal('UnknownTarget', `${type} must name the member it is for`);
    if (options.storeTargeted && type === 'KEY_DISTRIBUTION') {
      if (!isValidIdentityName(target) || target === own.name) {
        throw new RelayRefusal('UnknownTarget', `${type} for ${target}: not another member's name`);
      }
      const to = members.get(target);
      return { kind: 'store-for', name: target, to: to && to.state === 'member' ? to : undefined };
    }
    const to = members.get(target);
    if (!to && target !== own.name && options.remote?.(target) === true)
      return { kind: 'remote', name: target };
    if (!to || to === from || to.state !== 'member') {
      throw new RelayRefusal(
        'UnknownTarget',
        `${type} for ${target}: no other member of that name is connected`,
      );
    }
    return { kind: 'forward', to };
  }
  if (header.target.length > 0) {
    throw new RelayRefusal('NotAllowed', `${type} must not name a target`);
  }
  switch (type) {
    case 'ENCRYPTED_TEXT':
      return { kind: 'broadcast' };
    case 'CERT_REQUEST':
      return { kind: 'cert-request' };
    case 'DISCONNECT':
      return { kind: 'disconnect' };
    case 'HEARTBEAT':
      return { kind: 'heartbeat' };
    case 'SYNC':
      return { kind: 'sync' };
    case 'PREKEY':
      return { kind: 'prekey' };
    default:
      throw new RelayRefusal('NotAllowed', `${type} is not routed by the relay`);
  }
}
