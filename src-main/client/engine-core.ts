/**
 * What the parts of the engine's driver share: the connection's data, the protocol helpers, and
 * the host (engine.ts) that owns the state machine. The parts (engine-receive.ts, engine-send.ts,
 * engine-held.ts) never touch a socket or a timer directly: they write through the link of the
 * current session and tell the machine what happened.
 */
import type { Certificate } from '../core/pki/certificate.js';
import type { LocalIdentity } from '../core/pki/local-identity.js';
import type { SenderRef } from '../core/protocol/envelope.js';
import type { CertificateDirectory } from './certificate-directory.js';
import type { Clock } from './clock.js';
import type { EngineEvent } from './engine-types.js';
import type { EngineEvent as MachineEvent, EngineMachine } from './engine-machine.js';
import type { EngineLink } from './engine-transport.js';
import type { EpochKeyring } from './epoch-keyring.js';
import type { KeyEstablishment } from './key-establishment.js';
import type { LogFollower } from './log-follower.js';
import type { ResolvedOptions } from './options.js';
import type { Outbox } from './outbox.js';
import type { RosterTracker } from './roster-tracker.js';
import type { PrekeyDriver } from './engine-prekeys.js';

/** One connection's data: what its HELLO said and how far its PRESENCE went. */
export interface Session {
  link: EngineLink;
  relay?: Certificate;
  /** This session's HELLO challenge: every later relay frame must be bound to it. */
  challenge?: Buffer;
  /** This session's HEARTBEAT, signed once after HELLO. */
  heartbeatFrame?: Buffer;
  presenceVersion?: number;
  /** The relay's log (HELLO), when it keeps one. */
  streamId?: string;
  /** This session sent SYNC: the relay speaks link frames to it. */
  synced: boolean;
  /** LIVE arrived: the replay is over, so every stored key distribution has been seen. */
  caughtUp: boolean;
  /** A link frame arrived: the relay has taken our SYNC, and sends logged frames as DELIVERED. */
  linkFramesSeen: boolean;
}

export interface EngineHost {
  /** The current connection, if one is open. */
  readonly session: Session | undefined;
  readonly machine: EngineMachine;
  dispatch(event: MachineEvent): void;
  emit(event: EngineEvent): void;
  emitError(code: string, message: string): void;
}

export interface EngineParts {
  o: ResolvedOptions;
  identity: LocalIdentity;
  selfRef: SenderRef;
  clock: Clock;
  directory: CertificateDirectory;
  keyring: EpochKeyring;
  handshake: KeyEstablishment;
  follower: LogFollower | undefined;
  rosters: RosterTracker;
  /** This member's prekeys and the others' (undefined without a prekey store). */
  prekeys: PrekeyDriver | undefined;
  outbox: Outbox;
  host: EngineHost;
}

/** Without a roster (transitional) a key needs someone else online to be worth sending under. */
export function enoughOnline(handshake: KeyEstablishment): boolean {
  return handshake.currentRosterVersion > 0 || handshake.onlineMembers.length >= 2;
}
