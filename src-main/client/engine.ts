/**
 * The chat client engine: one member's session with the relay, its view of the group, the group
 * key and the chat. Plain Node (no Electron), used by the terminal client and the desktop app.
 *
 * This is the driver of the state machine in engine-state.ts: it owns the link (through the
 * injected transport), the timers (through the injected clock) and the protocol helpers, turns
 * what happens into machine events and carries out the effects the machine returns, in order.
 * Events that arise while effects run are queued, so the machine sees one event at a time.
 *
 *   Initialization → Connecting → CertExchange → KeyEstablishment → Chatting → Disconnecting
 *   plus Reconnecting (waiting to retry), Disconnected (stopped) and Failed (retrying is pointless).
 *
 * What it checks on receive: engine-receive.ts and docs/client.md.
 */
import { randomUUID } from 'node:crypto';
import type { LocalIdentity } from '../core/pki/local-identity.js';
import type { Roster } from '../core/roster/index.js';
import { Backoff } from './backoff.js';
import { CertificateDirectory } from './certificate-directory.js';
import { checkOutgoingText } from './chat-codec.js';
import type { Clock, TimerHandle } from './clock.js';
import type { EngineHost, EngineParts, Session } from './engine-core.js';
import { HeldFrames } from './engine-held.js';
import { eraseDueKeys, installKey, restoreKeys } from './engine-keys.js';
import { GroupView } from './engine-presence.js';
import { FrameReceiver, relayNotListed } from './engine-receive.js';
import { SendPipeline } from './engine-send.js';
import {
  INITIAL_ENGINE,
  type EngineConfig,
  type EngineEffect,
  type EngineEvent as MachineEvent,
  type EngineMachine,
  type TimerName,
} from './engine-machine.js';
import { stepEngine } from './engine-state.js';
import {
  relayAddressText,
  type ChatEngineApi,
  type EngineEvent,
  type RelayAddress,
  type RosterOffer,
} from './engine-types.js';
import { EpochKeyring } from './epoch-keyring.js';
import { ClientError } from './errors.js';
import { KeyEstablishment } from './key-establishment.js';
import { createFollower } from './engine-follower.js';
import { resolveOptions, type ChatEngineOptions, type ResolvedOptions } from './options.js';
import { Outbox, type OutgoingMessage } from './outbox.js';
import { RosterTracker } from './roster-tracker.js';
import { createPrekeyDriver } from './engine-prekeys.js';
import type { EngineState, GroupKeyInfo, Member } from './types.js';

export type { ChatEngineOptions, UnsafeTestHooks } from './options.js';

/** The most a DISCONNECT may take to be signed and written when leaving. */
const GOODBYE_MS = 2_000;

export class ChatEngine implements ChatEngineApi, EngineHost {
  private readonly o: ResolvedOptions;
  private readonly identity: LocalIdentity;
  private readonly clock: Clock;
  private readonly config: EngineConfig;
  private readonly listeners = new Set<(event: EngineEvent) => void>();
  private readonly parts: EngineParts;
  private readonly sender: SendPipeline;
  private readonly held: HeldFrames;
  private readonly group: GroupView;
  private readonly receiver: FrameReceiver;

  private m: EngineMachine = INITIAL_ENGINE;
  private current: Session | undefined;
  private readonly timers = new Map<TimerName, TimerHandle>();
  private readonly queue: MachineEvent[] = [];
  private running = false;
  /** stop() waits for these once the goodbye is under way. */
  private whenStopped: (() => void)[] = [];
  /** A key restored from the store, shown once the engine starts (listeners are attached by then). */
  private restoredKeyUnannounced = false;

  constructor(options: ChatEngineOptions) {
    const o = resolveOptions(options);
    this.o = o;
    this.identity = options.identity;
    this.clock = o.clock;
    new Backoff(o.backoff); // validates the options: a bad one is the caller's error, at once
    this.config = {
      backoff: o.backoff,
      authTimeoutMs: o.authTimeoutMs,
      relays: o.relays.length,
      liveness: { intervalMs: o.heartbeatIntervalMs, timeoutMs: o.heartbeatTimeoutMs },
      keyEstablishmentTimeoutMs: o.keyEstablishmentTimeoutMs,
      reconnectSettleMs: o.reconnectSettleMs,
      rotationCheckMs: o.rotationCheckMs,
      goodbyeMs: GOODBYE_MS,
    };
    const directory = new CertificateDirectory(this.identity.validator, this.identity.certificate);
    const keyring = new EpochKeyring(this.identity.groupId, o.retiredEpochGraceMs, o.now, o.sequenceWindow);
    const handshake = new KeyEstablishment({
      identity: this.identity,
      // Through the driver once it exists (it needs the handshake's certificates); none: RSA-OAEP.
      prekeys: {
        sealTarget: (cert) => this.parts.prekeys?.peers.usable(cert, o.now()),
        privateKey: (serial) => this.parts.prekeys?.own.privateKey(serial),
      },
      certificateOf: (name) => directory.certificateOf(name),
      send: (type, target, body) => this.sender.control(type, target, body),
      heldEpoch: () => keyring.highestEpoch,
      currentKey: () => keyring.currentInfo,
      heldKey: (epoch) => keyring.lookup(epoch),
      onKey: (key) =>
        installKey(key, this.parts, { sender: this.sender, held: this.held, group: this.group }),
      wantsToSend: () => this.pending > 0,
      replayingBacklog: () => this.current?.synced === true && !this.current.caughtUp,
      followsLog: () => this.current?.synced === true,
      onProblem: (message, code) => this.emitError(code, message),
      initialHighestEpoch: o.epochStore.load(),
      persistEpoch: (epoch) => o.epochStore.save(epoch),
      now: o.now,
      rotation: { periodMs: o.rotationPeriodMs, maxMessages: o.rotationMaxMessages },
      roundTimeoutMs: o.keyEstablishmentTimeoutMs,
    });
    this.parts = {
      o,
      identity: this.identity,
      selfRef: { kind: 'fingerprint', fingerprint: this.identity.certificate.fingerprint },
      clock: this.clock,
      directory,
      keyring,
      handshake,
      follower: options.history ? createFollower(options.history, this) : undefined,
      rosters: new RosterTracker(this.identity.ca, o.rosterStore),
      prekeys: createPrekeyDriver(options, o, handshake, {
        send: (body) => this.sender.control('PREKEY', '', body),
        online: () => this.m.link.phase === 'online',
        report: (code, message) => this.emitError(code, message),
      }),
      outbox: new Outbox(o.outboxCapacity),
      host: this,
    };
    this.sender = new SendPipeline(this.parts);
    this.held = new HeldFrames(this.parts, {
      envelope: (session, frame) => this.receiver.onEnvelope(session, frame),
      chat: (sender, body) => this.receiver.onChat(sender, body),
    });
    this.group = new GroupView(this.parts, this.sender, this.held, {
      useRoster: (roster) => this.useRoster(roster),
      goLive: () => {
        // Ours first: a round started at once can already be answered under it.
        this.parts.prekeys?.publish();
        handshake.goLive();
        this.dispatch({ type: 'live' });
      },
    });
    this.receiver = new FrameReceiver(this.parts, this.sender, this.held, this.group);
    // A restarted member chats on under the key it held: no re-key because it was away.
    restoreKeys(keyring, o.epochStore);
    this.restoredKeyUnannounced = keyring.current !== undefined;
    // The highest roster held: the store's (roster-tracker.ts) or one given by the caller.
    const held = this.parts.rosters.held;
    if (held) this.useRoster(held);
    if (o.roster && (!held || o.roster.version > held.version)) this.useRoster(o.roster);
  }

  // ---- ChatEngineApi ----------------------------------------------------------------------------

  get name(): string {
    return this.identity.name;
  }

  get state(): EngineState {
    return this.m.shown.state;
  }

  get members(): readonly Member[] {
    return this.group.members;
  }

  get key(): GroupKeyInfo | undefined {
    return this.parts.keyring.current;
  }

  /** Messages typed but not yet sent: queued, being signed, or (logging relay) not yet STORED. */
  get pending(): number {
    const unacknowledged = this.parts.follower?.unacknowledgedChats ?? 0;
    return this.parts.outbox.size + this.sender.signing + unacknowledged;
  }

  /** The state machine's state (tests, diagnostics). */
  get machine(): EngineMachine {
    return this.m;
  }

  get session(): Session | undefined {
    return this.current;
  }

  start(): void {
    const phase = this.m.link.phase;
    if (phase !== 'idle' && phase !== 'stopped') return;
    const { rosters, keyring } = this.parts;
    if (rosters.loadProblem !== undefined) this.emitError('RosterRefused', rosters.loadProblem);
    const restored = keyring.current;
    if (this.restoredKeyUnannounced && restored) this.emit({ event: 'key', ...restored });
    this.restoredKeyUnannounced = false;
    this.dispatch({ type: 'start' });
  }

  send(text: string): string {
    checkOutgoingText(text);
    const message: OutgoingMessage = { localId: randomUUID(), text, sentAt: this.clock.now() };
    this.parts.outbox.push(message);
    this.emit({ event: 'outgoing', localId: message.localId, status: 'queued', text });
    // Alone online the key waits for the first message (KeyEstablishment.idleAlone): this is it.
    const { handshake } = this.parts;
    if (handshake.needsKey && this.m.link.phase === 'online') {
      handshake.ensureKey();
      this.group.changed();
    }
    this.sender.pump();
    return message.localId;
  }

  /**
   * A verified roster of this group (from the relay, a file or the store; never an older one than
   * held). Its members are M; a new version starts a new epoch. Until the first one arrives the
   * engine keys over the members of PRESENCE (transitional fallback).
   */
  useRoster(roster: Roster): void {
    if (roster.groupId !== this.identity.groupId) {
      this.emitError('KeyEstablishment', `a roster of another group (${roster.groupId}) ignored`);
      return;
    }
    // Frames of members who are offline now (stored KEY_DISTRIBUTIONs) verify with the roster's
    // certificates, each validated against our own CA first.
    for (const m of roster.members) this.parts.directory.trust(m.certificate);
    this.parts.handshake.setRoster(roster);
    if (this.m.link.phase === 'online') this.group.changed();
    this.checkRelayListed();
  }

  /** A newer roster that no longer lists the relay we are on ends the session with it. */
  private checkRelayListed(): void {
    const session = this.current;
    const roster = this.parts.handshake.heldRoster;
    if (!session?.relay || !roster || roster.isRelay(session.relay.fingerprintHex)) return;
    const reason = relayNotListed(session.relay.name, roster.version);
    this.dispatch({ type: 'refused', reason, terminal: true, scope: 'relay' });
    this.emitError('RelayNotInRoster', reason);
    session.link.destroy(reason);
  }

  offerRoster(bytes: Buffer): RosterOffer {
    return this.group.offerRoster(this.session, bytes);
  }

  requestRekey(): void {
    const { handshake, keyring } = this.parts;
    const facts = this.group.facts();
    if (this.m.link.phase !== 'online' || !facts.enoughOnline) return;
    // "Renew keys" after a suspected compromise: a new prekey too, published before the round.
    this.parts.prekeys?.publish(true);
    const minEpoch = handshake.highestEpochSeen + 1;
    // The current key's initiator if it is online (a roster member may well be offline), else the
    // online member whose turn it is.
    const current = keyring.currentInitiator;
    const initiator =
      current !== undefined && handshake.onlineMembers.includes(current)
        ? current
        : handshake.expectedInitiator;
    if (initiator === undefined || initiator === this.name || !handshake.members.includes(initiator)) {
      handshake.startRound(minEpoch);
    } else {
      this.sender.control('REKEY_REQUEST', initiator, { minEpoch, reason: 'requested' });
    }
    // If the initiator does not act in time, run the round ourselves: any member may initiate.
    this.dispatch({ type: 'rekey-requested', epoch: keyring.currentEpoch });
  }

  async stop(reason = 'leaving'): Promise<void> {
    this.dispatch({ type: 'stop', reason });
    if (this.m.link.phase !== 'leaving') return;
    await new Promise<void>((resolve) => this.whenStopped.push(resolve));
  }

  on(listener: (event: EngineEvent) => void): () => void {
    this.listeners.add(listener);
    return () => this.listeners.delete(listener);
  }

  // ---- the machine ------------------------------------------------------------------------------

  dispatch(event: MachineEvent): void {
    this.queue.push(event);
    if (this.running) return;
    this.running = true;
    try {
      for (let next = this.queue.shift(); next; next = this.queue.shift()) {
        const step = stepEngine(this.config, this.m, next);
        this.m = step.state;
        for (const effect of step.effects) this.run(effect);
      }
    } finally {
      this.running = false;
    }
    if (this.m.link.phase !== 'leaving' && this.whenStopped.length > 0) {
      for (const resolve of this.whenStopped.splice(0)) resolve();
    }
  }

  private run(effect: EngineEffect): void {
    const { handshake } = this.parts;
    switch (effect.kind) {
      case 'open':
        this.open(effect.relay);
        return;
      case 'close':
        this.current?.link.destroy(effect.reason);
        return;
      case 'arm': {
        this.clock.clear(this.timers.get(effect.timer));
        const fire = () => this.dispatch({ type: 'timer', timer: effect.timer, at: this.clock.monotonic() });
        const handle = effect.repeat
          ? this.clock.setInterval(fire, effect.ms)
          : this.clock.setTimeout(fire, effect.ms);
        this.timers.set(effect.timer, handle);
        return;
      }
      case 'cancel':
        this.clock.clear(this.timers.get(effect.timer));
        this.timers.delete(effect.timer);
        return;
      case 'show':
        this.emit({
          event: 'state',
          state: effect.state,
          ...(effect.reason !== undefined ? { reason: effect.reason } : {}),
          ...(effect.retryInMs !== undefined ? { retryInMs: effect.retryInMs } : {}),
          ...(effect.cause !== undefined ? { cause: effect.cause } : {}),
          // One address keeps the event as it always was.
          ...(effect.relay !== undefined && this.o.relays.length > 1
            ? { relay: relayAddressText(this.relayAt(effect.relay)) }
            : {}),
        });
        return;
      case 'sync':
        this.startSync();
        return;
      case 'session-down':
        this.parts.prekeys?.sessionDown();
        this.sessionDown();
        return;
      case 'wipe':
        this.sender.requeueUnwritten();
        this.sender.saveMessageCount();
        this.parts.keyring.clear();
        handshake.reset();
        return;
      case 'send-heartbeat': {
        const s = this.current;
        if (s?.heartbeatFrame && s.link.isOpen) s.link.write(s.heartbeatFrame);
        return;
      }
      case 'pump':
        this.sender.pump();
        return;
      case 'next-attempt':
        if (!handshake.needsKey) {
          this.group.changed();
          return;
        }
        handshake.nextAttempt();
        this.dispatch({ type: 'attempt', facts: this.group.facts() });
        return;
      case 'retry-certificates':
        this.group.retryCertificates();
        return;
      case 'start-round':
        handshake.startRound(handshake.highestEpochSeen + 1);
        return;
      case 'sweep-held':
        this.held.sweep();
        return;
      case 'maybe-rotate':
        this.parts.prekeys?.tick();
        if (this.parts.prekeys) eraseDueKeys(this.parts, this.parts.prekeys.retentionMs);
        handshake.maybeRotate();
        return;
      case 'say-goodbye':
        // Everything already being signed goes out first: the writer keeps order.
        this.sender.control('DISCONNECT', '', { reason: effect.reason }, () =>
          this.dispatch({ type: 'goodbye-written' }),
        );
        return;
      case 'end-link': {
        const link = this.current?.link;
        if (!link) this.dispatch({ type: 'left' });
        else void link.end().then(() => this.dispatch({ type: 'left' }));
        return;
      }
    }
  }

  private relayAt(index: number): RelayAddress {
    return this.o.relays[index % this.o.relays.length] as RelayAddress;
  }

  private open(relay: number): void {
    const session: Session = {
      synced: false,
      caughtUp: false,
      linkFramesSeen: false,
      link: this.o.connect(
        {
          relay: this.relayAt(relay),
          identity: this.identity,
          maxFrameBytes: this.o.maxFrameBytes,
          connectTimeoutMs: this.o.connectTimeoutMs,
        },
        {
          onConnect: () => undefined,
          onFrame: (frame) => {
            if (this.current !== session) return;
            this.dispatch({ type: 'received', at: this.clock.monotonic() });
            this.receiver.onFrame(session, frame);
          },
          onClose: (why, relayRefused, cause) => {
            if (this.current !== session) return;
            if (relayRefused) {
              this.dispatch({ type: 'refused', reason: why, terminal: true, scope: 'relay' });
              this.emitError('RelayCertificateRejected', why);
            }
            this.dispatch({
              type: 'closed',
              reason: why,
              random: this.o.random(),
              ...(cause ? { cause } : {}),
            });
          },
          onDrain: () => this.sender.pump(),
        },
      ),
    };
    this.current = session;
  }

  /** Right after login: ask the relay's log for what we missed, and write again what it never took. */
  private startSync(): void {
    const session = this.current;
    const follower = this.parts.follower;
    const sync = session && follower?.begin(session.streamId);
    if (!session || !follower || !sync) return;
    session.synced = true;
    this.sender.control('SYNC', '', sync);
    for (const logged of follower.takeUnacknowledged())
      this.sender.raw(logged.frame, { kind: 'resend', logged });
  }

  /** The connection is gone: forget everything that belonged to it. */
  private sessionDown(): void {
    const session = this.current;
    this.current = undefined;
    session?.link.destroy('stopped');
    this.parts.follower?.endSession();
    this.parts.handshake.reset();
    this.group.resetSession();
    this.held.dropSession();
    this.sender.requeueUnwritten();
  }

  // ---- events -----------------------------------------------------------------------------------

  emitError(code: string, message: string): void {
    this.emit({ event: 'error', code, message });
  }

  emit(event: EngineEvent): void {
    for (const l of this.listeners) {
      try {
        l(event);
      } catch {
        // A listener's bug must not break the protocol state machine.
      }
    }
  }
}

export { ClientError };
