/**
 * The chat client engine: one member's session with the relay, its view of the group, the group
 * key and the chat. Plain Node (no Electron), used by the terminal client and the desktop app.
 *
 *   Initialization → Connecting → CertExchange → KeyEstablishment → Chatting → Disconnecting
 *   plus Reconnecting (waiting to retry), Disconnected (stopped) and Failed (retrying is pointless).
 *
 * What it checks on receive (see docs/client.md): the relay certificate against the group CA
 * (role relay) and every relay frame's signature with it; every member frame's signature with a
 * certificate this member validated itself; then the body schema; then epoch, sequence window and
 * AES-GCM. Every reject is an `error` event; the connection goes on.
 */
import { randomUUID } from 'node:crypto';
import { Certificate } from '../core/pki/certificate.js';
import type { LocalIdentity } from '../core/pki/local-identity.js';
import {
  attachSignature,
  buildUnsigned,
  decodeBody,
  readHeader,
  sealMessageAsync,
  SIGNATURE_LABEL,
  verifyHeader,
  type EnvelopeHeader,
  type SenderRef,
} from '../core/protocol/envelope.js';
import { ProtocolError } from '../core/protocol/errors.js';
import { decodeLinkFrame, isLinkFrame } from '../core/protocol/link-frames.js';
import { RELAY_TYPES, TARGETED_TYPES, type MessageType } from '../core/protocol/message-types.js';
import type { BodyOf } from '../core/protocol/schemas.js';
import type { Roster } from '../core/roster/index.js';
import type { ConnectionState, KeyView, MemberView } from '../../src-shared/model.js';
import { Backoff } from './backoff.js';
import { CertificateDirectory } from './certificate-directory.js';
import { checkOutgoingText, decodeChatPlaintext, encodeChatPlaintext } from './chat-codec.js';
import type { ChatEngineApi, EngineEvent } from './engine-types.js';
import { MESSAGE_COUNT_SAVE_EVERY, persistKey, restoreKeys, SENT_SEQ_RESERVE } from './engine-keys.js';
import { EpochKeyring } from './epoch-keyring.js';
import { ClientError, type ClientErrorCode } from './errors.js';
import { KeyEstablishment, type EstablishedKey } from './key-establishment.js';
import { LogFollower, type LoggedFrame } from './log-follower.js';
import { resolveOptions, type ChatEngineOptions, type ResolvedOptions } from './options.js';
import { OrderedWriter } from './ordered-writer.js';
import { Outbox, type OutgoingMessage } from './outbox.js';
import { checkSession, checkSessionListed, classifyRelayError, LinkHeartbeat } from './relay-link.js';
import { RosterTracker } from './roster-tracker.js';
import { FramedConnection } from './transport.js';

export type { ChatEngineOptions, UnsafeTestHooks } from './options.js';

/** What the ordered writer carries besides the frame. */
type WriteMeta =
  | { kind: 'chat'; message: OutgoingMessage; epoch: number; seq: number }
  | { kind: 'control'; type: MessageType; onWritten?: () => void }
  /** A logged frame of an earlier session the relay never acknowledged, written again as it was. */
  | { kind: 'resend'; logged: LoggedFrame };

interface Session {
  conn: FramedConnection;
  relay?: Certificate;
  /** This session's HELLO challenge: every later relay frame must be bound to it. */
  challenge?: Buffer;
  /** This session's HEARTBEAT, signed once after HELLO. */
  heartbeatFrame?: Buffer;
  heartbeat?: LinkHeartbeat;
  authenticated: boolean;
  presenceVersion?: number;
  /** Set when retrying is pointless; the close that follows moves to Failed. */
  failReason?: string;
  /** The relay said when to come back (RateLimited): the next attempt waits at least this long. */
  retryAfterMs?: number;
  /** The relay's log (HELLO), when it keeps one. */
  streamId?: string;
  /** This session sent SYNC: the relay speaks link frames to it. */
  synced: boolean;
  /** LIVE arrived: the replay is over, so every stored key distribution has been seen. */
  caughtUp: boolean;
}

interface HeldChat {
  sender: string;
  body: BodyOf<'ENCRYPTED_TEXT'>;
  heldAt: number;
  /** Its log offset, when it came in DELIVERED: the saved position stays before it while held. */
  offset: number | undefined;
}

export class ChatEngine implements ChatEngineApi {
  private readonly o: ResolvedOptions;
  private readonly identity: LocalIdentity;
  private readonly selfRef: SenderRef;
  private readonly listeners = new Set<(event: EngineEvent) => void>();
  private readonly directory: CertificateDirectory;
  private readonly keyring: EpochKeyring;
  private readonly handshake: KeyEstablishment;
  private readonly outbox: Outbox;
  private readonly writer: OrderedWriter<WriteMeta>;
  private readonly backoff: Backoff;
  private readonly rosters: RosterTracker;

  private currentState: ConnectionState = 'Initialization';
  private stateReason: string | undefined;
  private session: Session | undefined;
  private memberList: MemberView[] = [];
  private everHadMembers = false;
  private everAuthenticated = false;
  /** Who else was online in the last PRESENCE, remembered across a reconnect for the settle wait. */
  private lastOnline: string[] = [];
  private stopping = false;
  private stopped = false;

  /** Frames from members whose certificate is being fetched (raw, verified once it arrives). */
  private heldForCertificate: { fingerprint: string; frame: Buffer; offset: number | undefined }[] = [];
  /** The relay's log and the history (with a state store), else undefined: v1, nothing kept. */
  private readonly follower: LogFollower | undefined;
  /** Verified chat messages for the epoch that is being established right now. */
  private heldForKey: HeldChat[] = [];

  /**
   * After a reconnect: who should be back before the queue goes out, and until when we wait. Not
   * about keys (a reconnect never re-keys): a v1 relay does not store, see reconnectSettleMs.
   */
  private settle: { members: Set<string>; until: number; timer: NodeJS.Timeout } | undefined;
  private reconnectTimer: NodeJS.Timeout | undefined;
  private certRetryTimer: NodeJS.Timeout | undefined;
  private authTimer: NodeJS.Timeout | undefined;
  private keyTimer: NodeJS.Timeout | undefined;
  private rekeyFallbackTimer: NodeJS.Timeout | undefined;
  private heldSweepTimer: NodeJS.Timeout | undefined;
  private rotationTimer: NodeJS.Timeout | undefined;
  /** A key restored from the store, shown once the engine starts (listeners are attached by then). */
  private restoredKeyUnannounced = false;
  /** Our own sequence numbers of the current epoch are reserved in the store up to this. */
  private reservedSeq = { epoch: 0, seq: 0 };

  constructor(options: ChatEngineOptions) {
    this.o = resolveOptions(options);
    this.identity = options.identity;
    this.selfRef = { kind: 'fingerprint', fingerprint: this.identity.certificate.fingerprint };
    this.directory = new CertificateDirectory(this.identity.validator, this.identity.certificate);
    this.keyring = new EpochKeyring(
      this.identity.groupId,
      this.o.retiredEpochGraceMs,
      Date.now,
      this.o.sequenceWindow,
    );
    this.outbox = new Outbox(this.o.outboxCapacity);
    this.backoff = new Backoff(this.o.backoff);
    this.rosters = new RosterTracker(this.identity.ca, this.o.rosterStore);
    this.writer = new OrderedWriter<WriteMeta>(
      (frame, meta) => this.writeFrame(frame, meta),
      (err, meta) => this.onSignFailure(err, meta),
    );
    const history = options.history;
    this.follower = history
      ? new LogFollower({
          history,
          self: this.identity.name,
          shown: (m) => {
            if (m.own) return;
            this.emit({
              event: 'message',
              from: m.from,
              text: m.text,
              epoch: m.epoch,
              seq: m.seq,
              ...(m.offset !== undefined ? { offset: m.offset } : {}),
              sentAt: m.sentAt,
            });
          },
          sent: (epoch, seq, offset) => this.emit({ event: 'sent', epoch, seq, offset }),
          gap: (reason) => this.emit({ event: 'gap', reason }),
          unreadable: (count) =>
            this.emitError(
              'UnknownEpoch',
              `${count} message(s) sent while you were away were sealed for a group key this member never held`,
            ),
          problem: (err) =>
            this.emitError('StateStoreFailed', `the history could not be written: ${String(err)}`),
        })
      : undefined;
    this.handshake = new KeyEstablishment({
      identity: this.identity,
      certificateOf: (name) => this.directory.certificateOf(name),
      send: (type, target, body) => this.sendControl(type, target, body),
      heldEpoch: () => this.keyring.highestEpoch,
      currentKey: () => this.keyring.currentInfo,
      heldKey: (epoch) => this.keyring.lookup(epoch),
      onKey: (key) => this.installKey(key),
      wantsToSend: () => this.pending > 0,
      replayingBacklog: () => this.session?.synced === true && !this.session.caughtUp,
      followsLog: () => this.session?.synced === true,
      onProblem: (message, code) => this.emitError(code, message),
      initialHighestEpoch: this.o.epochStore.load(),
      persistEpoch: (epoch) => this.o.epochStore.save(epoch),
      now: this.o.now,
      rotation: { periodMs: this.o.rotationPeriodMs, maxMessages: this.o.rotationMaxMessages },
      roundTimeoutMs: this.o.keyEstablishmentTimeoutMs,
    });
    // A restarted member chats on under the key it held: no re-key because it was away.
    restoreKeys(this.keyring, this.o.epochStore);
    this.restoredKeyUnannounced = this.keyring.current !== undefined;
    // The highest roster held: the store's (roster-tracker.ts) or one given by the caller.
    const held = this.rosters.held;
    if (held) this.useRoster(held);
    if (this.o.roster && (!held || this.o.roster.version > held.version)) this.useRoster(this.o.roster);
  }

  // ---- ChatEngineApi ----------------------------------------------------------------------------

  get name(): string {
    return this.identity.name;
  }

  get state(): ConnectionState {
    return this.currentState;
  }

  get members(): readonly MemberView[] {
    return this.memberList;
  }

  get key(): KeyView | undefined {
    return this.keyring.current;
  }

  /** Messages typed but not yet sent: queued, being signed, or (logging relay) not yet STORED. */
  get pending(): number {
    // With a logging relay a message counts as sent once STORED, not once written.
    const unacknowledged = this.follower?.unacknowledgedChats ?? 0;
    return this.outbox.size + this.writer.count((m) => m.kind === 'chat') + unacknowledged;
  }

  start(): void {
    if (this.session || this.reconnectTimer || this.stopping) return;
    if (this.currentState === 'Failed') return;
    this.stopped = false;
    if (this.rosters.loadProblem !== undefined) this.emitError('RosterRefused', this.rosters.loadProblem);
    const restored = this.keyring.current;
    if (this.restoredKeyUnannounced && restored) this.emit({ event: 'key', ...restored });
    this.restoredKeyUnannounced = false;
    this.connect();
  }

  send(text: string): string {
    checkOutgoingText(text);
    const message: OutgoingMessage = { localId: randomUUID(), text, sentAt: Date.now() };
    this.outbox.push(message);
    this.emit({ event: 'outgoing', localId: message.localId, status: 'queued', text });
    // Alone online the key waits for the first message (KeyEstablishment.idleAlone): this is it.
    if (this.handshake.needsKey && this.session?.authenticated) {
      this.handshake.ensureKey();
      this.afterKeyChange(this.session);
    }
    this.pump();
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
    for (const m of roster.members) this.directory.trust(m.certificate);
    this.handshake.setRoster(roster);
    if (this.session?.authenticated) this.afterKeyChange(this.session);
  }

  requestRekey(): void {
    const session = this.session;
    if (!session?.authenticated || !this.enoughOnline()) return;
    const before = this.keyring.currentEpoch;
    const minEpoch = this.handshake.highestEpochSeen + 1;
    // The current key's initiator if it is online (a roster member may well be offline), else the
    // online member whose turn it is.
    const current = this.keyring.currentInitiator;
    const initiator =
      current !== undefined && this.handshake.onlineMembers.includes(current)
        ? current
        : this.handshake.expectedInitiator;
    if (initiator === undefined || initiator === this.name || !this.handshake.members.includes(initiator)) {
      this.handshake.startRound(minEpoch);
    } else {
      this.sendControl('REKEY_REQUEST', initiator, { minEpoch, reason: 'requested' });
    }
    // If the initiator does not act in time, run the round ourselves: any member may initiate.
    clearTimeout(this.rekeyFallbackTimer);
    this.rekeyFallbackTimer = setTimeout(() => {
      if (this.session === session && this.keyring.currentEpoch === before) {
        this.handshake.startRound(this.handshake.highestEpochSeen + 1);
      }
    }, this.o.keyEstablishmentTimeoutMs);
  }

  async stop(reason = 'leaving'): Promise<void> {
    if (this.stopped || this.stopping) return;
    this.stopping = true;
    this.clearTimers();
    const session = this.session;
    if (session?.conn.isOpen && session.authenticated) {
      this.setState('Disconnecting', reason);
      // Everything already being signed goes out first: the writer keeps order.
      const written = new Promise<void>((resolve) => {
        this.sendControl('DISCONNECT', '', { reason }, resolve);
        setTimeout(resolve, 2_000).unref();
      });
      await written;
      await session.conn.end();
    } else {
      session?.conn.destroy('stopped');
    }
    this.session = undefined;
    this.follower?.endSession();
    this.requeueUnwritten(() => true);
    this.saveMessageCount();
    this.keyring.clear();
    this.handshake.reset();
    this.stopping = false;
    this.stopped = true;
    // Failed stays the last word: stopping after a refusal is not a clean disconnect.
    if (this.currentState !== 'Failed') this.setState('Disconnected', reason);
  }

  on(listener: (event: EngineEvent) => void): () => void {
    this.listeners.add(listener);
    return () => this.listeners.delete(listener);
  }

  // ---- connection -------------------------------------------------------------------------------

  private connect(): void {
    this.reconnectTimer = undefined;
    this.setState('Connecting');
    const session: Session = {
      authenticated: false,
      synced: false,
      caughtUp: false,
      conn: new FramedConnection(
        this.o.relay.host,
        this.o.relay.port,
        this.identity,
        {
          onConnect: () => undefined,
          onFrame: (frame) => {
            if (this.session !== session) return;
            session.heartbeat?.received();
            this.onFrame(session, frame);
          },
          onClose: (why, relayRefused) => {
            if (relayRefused && this.session === session) {
              session.failReason = why;
              this.emitError('RelayCertificateRejected', why);
            }
            this.onClose(session, why);
          },
          onDrain: () => this.pump(),
        },
        { maxFrameBytes: this.o.maxFrameBytes, connectTimeoutMs: this.o.connectTimeoutMs },
      ),
    };
    this.session = session;
    this.authTimer = setTimeout(
      () => session.conn.destroy(`the relay did not complete the login within ${this.o.authTimeoutMs} ms`),
      this.o.authTimeoutMs,
    );
  }

  private onClose(session: Session, why: string): void {
    session.heartbeat?.stop();
    if (this.session !== session) return;
    this.session = undefined;
    this.follower?.endSession();
    this.clearTimers();
    this.handshake.reset();
    this.directory.resetSession();
    this.heldForCertificate = [];
    this.releaseHeldForKey(true);
    this.requeueUnwritten(() => true);
    if (this.stopping) return; // stop() finishes the story
    if (session.failReason !== undefined) {
      this.setState('Failed', session.failReason);
      return;
    }
    const delay = Math.max(this.backoff.next(), session.retryAfterMs ?? 0);
    this.setState('Reconnecting', why, delay);
    this.reconnectTimer = setTimeout(() => this.connect(), delay);
  }

  /** Heartbeats for the logged-in session; a relay silent past the timeout is dropped and retried. */
  private startHeartbeat(session: Session): void {
    session.heartbeat = new LinkHeartbeat(
      { intervalMs: this.o.heartbeatIntervalMs, timeoutMs: this.o.heartbeatTimeoutMs },
      {
        now: () => performance.now(),
        setInterval: (fn, ms) => {
          const timer = setInterval(fn, ms);
          return () => clearInterval(timer);
        },
        sendHeartbeat: () => {
          if (session.heartbeatFrame && session.conn.isOpen) {
            session.conn.write(session.heartbeatFrame);
            session.heartbeat?.sent();
          }
        },
        relaySilent: (reason) => {
          if (this.session === session) session.conn.destroy(reason);
        },
      },
    );
  }

  private fail(session: Session, code: ClientErrorCode, reason: string): void {
    session.failReason = reason;
    this.emitError(code, reason);
    session.conn.destroy(reason);
  }

  // ---- incoming frames --------------------------------------------------------------------------

  private onFrame(session: Session, frame: Buffer): void {
    if (isLinkFrame(frame)) {
      this.onLinkFrame(session, frame);
      return;
    }
    this.onEnvelope(session, frame);
  }

  /** DELIVERED / STORED / LIVE: only on a session that sent SYNC (protocol v2, link frames). */
  private onLinkFrame(session: Session, frame: Buffer): void {
    const follower = this.follower;
    try {
      if (!follower || !session.synced) throw new ProtocolError('BadFrame', 'a link frame before SYNC');
      const link = decodeLinkFrame(frame);
      switch (link.kind) {
        case 'DELIVERED':
          follower.delivered(link.offset, () => {
            if (RELAY_TYPES.has(readHeader(link.envelope).type)) {
              throw new ProtocolError('BadFrame', 'a relay frame inside DELIVERED');
            }
            this.onEnvelope(session, link.envelope);
          });
          return;
        case 'STORED':
          follower.stored(link.acks);
          return;
        case 'LIVE':
          follower.live(link.head);
          session.caughtUp = true;
          if (!this.handshake.isLive && this.presenceSettled(session)) {
            this.goLive(session);
            this.afterKeyChange(session);
          }
          return;
      }
    } catch (err) {
      if (err instanceof ProtocolError) this.emitError(err.code, `link frame refused: ${err.message}`);
      else this.emitError('BadFrame', `link frame refused: ${(err as Error).message}`);
    }
  }

  private onEnvelope(session: Session, frame: Buffer): void {
    let header: EnvelopeHeader;
    try {
      header = readHeader(frame);
    } catch (err) {
      this.emitError('BadFrame', `frame from the relay refused: ${(err as Error).message}`);
      return;
    }
    try {
      // HEARTBEAT travels member ↔ relay only (never forwarded), so one that arrives is the relay's.
      if (header.type === 'ROSTER') this.onRosterFrame(session, frame);
      else if (RELAY_TYPES.has(header.type) || header.type === 'HEARTBEAT')
        this.onRelayFrame(session, header);
      else this.onMemberFrame(header, frame);
    } catch (err) {
      // Verify-then-parse failures and anything a handler throws: one frame refused, session goes on.
      if (err instanceof ProtocolError) this.emitError(err.code, err.message);
      else this.emitError('BadFrame', `frame ${header.type} refused: ${(err as Error).message}`);
    }
  }

  private onRelayFrame(session: Session, header: EnvelopeHeader): void {
    if (header.type === 'HELLO') {
      this.onHello(session, header);
      return;
    }
    const relay = session.relay;
    if (!relay) throw new ProtocolError('UnknownSender', `${header.type} arrived before HELLO`);
    const fromRelay =
      header.sender.kind === 'fingerprint'
        ? header.sender.fingerprint.equals(relay.fingerprint)
        : header.sender.der.equals(relay.der);
    if (!fromRelay) throw new ProtocolError('UnknownSender', `${header.type} not sent by the relay`);
    verifyHeader(header, relay.publicKey);
    switch (header.type) {
      case 'PRESENCE': {
        const body = decodeBody('PRESENCE', header.body);
        checkSessionListed(body.sessions, session.challenge);
        this.onPresence(session, body);
        return;
      }
      case 'CERT_RESPONSE': {
        const body = decodeBody('CERT_RESPONSE', header.body);
        checkSession('CERT_RESPONSE', body.session, session.challenge);
        this.onCertResponse(session, body);
        return;
      }
      case 'ERROR': {
        const body = decodeBody('ERROR', header.body);
        checkSession('ERROR', body.session, session.challenge);
        this.onRelayError(session, body);
        return;
      }
      case 'HEARTBEAT':
        checkSession('HEARTBEAT', decodeBody('HEARTBEAT', header.body).session, session.challenge);
        return;
      case 'GAP': {
        const body = decodeBody('GAP', header.body);
        checkSession('GAP', body.session, session.challenge);
        if (!session.synced) throw new ProtocolError('BadFrame', 'GAP before SYNC');
        this.follower?.gap(body);
        return;
      }
    }
  }

  private onHello(session: Session, header: EnvelopeHeader): void {
    if (session.relay) throw new ProtocolError('BadFrame', 'a second HELLO');
    if (header.sender.kind !== 'certificate') {
      this.fail(session, 'RelayCertificateRejected', 'HELLO did not carry the relay certificate');
      return;
    }
    let relay: Certificate;
    try {
      relay = this.identity.validator.validate(Certificate.fromDer(header.sender.der), { role: 'relay' });
    } catch (err) {
      // A relay from another group (or not a relay at all): talking to it again will not help.
      this.fail(session, 'RelayCertificateRejected', `relay certificate refused: ${(err as Error).message}`);
      return;
    }
    try {
      verifyHeader(header, relay.publicKey);
    } catch {
      this.fail(
        session,
        'RelayCertificateRejected',
        'HELLO signature does not verify with the relay certificate',
      );
      return;
    }
    const body = decodeBody('HELLO', header.body);
    if (body.relay !== relay.name) {
      this.fail(
        session,
        'RelayCertificateRejected',
        `HELLO names "${body.relay}" but is signed by "${relay.name}"`,
      );
      return;
    }
    session.relay = relay;
    session.challenge = body.challenge;
    if (body.streamId !== undefined) session.streamId = body.streamId;
    session.conn.peerMaxFrameBytes = body.maxFrameBytes;
    void sealMessageAsync('HEARTBEAT', this.selfRef, '', { session: body.challenge }, (d) =>
      this.identity.signAsync(d),
    ).then(
      (frame) => (session.heartbeatFrame = frame),
      (err: unknown) => this.emitError('SignFailed', `signing HEARTBEAT failed: ${String(err)}`),
    );
    // CONNECTION carries the full certificate: the relay does not know us yet.
    this.writer.enqueue(
      sealMessageAsync(
        'CONNECTION',
        { kind: 'certificate', der: this.identity.certificate.der },
        '',
        { challenge: body.challenge, relayFingerprint: relay.fingerprintHex },
        (d) => this.identity.signAsync(d),
      ),
      { kind: 'control', type: 'CONNECTION' },
    );
  }

  private onRelayError(session: Session, body: BodyOf<'ERROR'>): void {
    const message = `relay: ${body.message}`;
    // A spent budget (RateLimited) is never terminal: come back when the relay said, not sooner.
    if (body.retryAfterMs !== undefined) {
      session.retryAfterMs = Math.max(session.retryAfterMs ?? 0, body.retryAfterMs);
    }
    this.emitError(body.code, message);
    if (body.code === 'NoRoster' && !body.fatal) this.onNoRoster(session);
    const verdict = classifyRelayError(body, session.authenticated);
    if (verdict.kind === 'terminal') {
      session.failReason = `${body.code}: ${body.message}`;
      session.conn.destroy(session.failReason);
    } else if (verdict.kind === 'reconnect') {
      // The relay closes after a fatal ERROR anyway; closing first saves waiting for it.
      session.conn.destroy(`${body.code}: ${body.message}`);
    }
  }

  /**
   * A ROSTER (the CA-signed envelope; the relay sends its own before PRESENCE and each newer one):
   * kept if newer, answered with ours if older (roster-tracker.ts).
   */
  private onRosterFrame(session: Session, frame: Buffer): void {
    const receipt = this.rosters.receive(frame);
    // A newer roster changes M and starts a new epoch (setRoster ignores one it already has).
    if (receipt.kind === 'newer' || receipt.kind === 'same') this.useRoster(receipt.roster);
    if (receipt.kind === 'refused') {
      this.emitError('RosterRefused', `roster from the relay refused (${receipt.code}): ${receipt.message}`);
    } else if (receipt.kind === 'older') {
      this.uploadRoster(session);
    }
    const view = this.rosters.toReport();
    if (view) this.emit({ event: 'roster', ...view });
  }

  /** Sends the held roster to the relay, as it is (its validity is the CA's signature). */
  private uploadRoster(session: Session): void {
    const held = this.rosters.held;
    if (!held || this.session !== session || !session.conn.isOpen) return;
    this.writer.enqueue(Promise.resolve(held.bytes), { kind: 'control', type: 'ROSTER' });
  }

  /**
   * The relay holds no roster and waits (a bounded window) for one: ours if we hold one. Our login
   * deadline makes room for the relay's window, which ends in a fatal NoRoster.
   */
  private onNoRoster(session: Session): void {
    this.uploadRoster(session);
    clearTimeout(this.authTimer);
    this.authTimer = setTimeout(
      () =>
        session.conn.destroy(`the relay did not complete the login within ${2 * this.o.authTimeoutMs} ms`),
      2 * this.o.authTimeoutMs,
    );
  }

  private onPresence(session: Session, body: BodyOf<'PRESENCE'>): void {
    if (session.presenceVersion !== undefined && body.version <= session.presenceVersion) return;
    session.presenceVersion = body.version;
    if (!session.authenticated) {
      session.authenticated = true;
      clearTimeout(this.authTimer);
      this.startHeartbeat(session);
      this.beginSettle();
      this.backoff.reset();
      this.startSync(session);
    }
    const me = body.members.find((m) => m.name === this.name);
    if (me && me.fingerprint !== this.identity.certificate.fingerprintHex) {
      this.emitError('CertificateRejected', 'the relay lists this member with a different certificate');
    }
    // Who is online changed; the key did not (DESIGN.md §10.2: presence never re-keys).
    const missing = this.directory.applyPresence(body.members);
    if (missing.length > 0) this.requestCertificates(session, missing);
    if (!this.directory.resolved) this.setState('CertExchange', `fetching ${missing.length} certificate(s)`);
    this.afterCertificates(session);
  }

  /** Right after login: ask the relay's log for what we missed, and write again what it never took. */
  private startSync(session: Session): void {
    const sync = this.follower?.begin(session.streamId);
    if (!this.follower || !sync) return;
    session.synced = true;
    this.sendControl('SYNC', '', sync);
    for (const logged of this.follower.takeUnacknowledged()) {
      this.writer.enqueue(Promise.resolve(logged.frame), { kind: 'resend', logged });
    }
  }

  private onCertResponse(session: Session, body: BodyOf<'CERT_RESPONSE'>): void {
    for (const entry of body.certificates) {
      let cert: Certificate;
      try {
        cert = Certificate.fromDer(entry.certificate);
      } catch (err) {
        this.emitError('CertificateRejected', `certificate of ${entry.name}: ${(err as Error).message}`);
        this.directory.markUnknown(entry.name);
        continue;
      }
      const result = this.directory.accept(entry.name, cert);
      if (!result.ok) this.emitError('CertificateRejected', result.reason);
    }
    for (const name of body.unknown) this.directory.markUnknown(name);
    this.afterCertificates(session);
  }

  /** Asks for certificates; asks again if the answer has not come by the key-establishment timeout. */
  private requestCertificates(session: Session, names: string[]): void {
    this.sendControl('CERT_REQUEST', '', { names });
    clearTimeout(this.certRetryTimer);
    this.certRetryTimer = setTimeout(() => {
      if (this.session !== session || this.directory.resolved) return;
      const pending = this.directory.takePending();
      if (pending.length > 0) this.requestCertificates(session, pending);
    }, this.o.keyEstablishmentTimeoutMs);
  }

  private presenceSettled(session: Session): session is Session & { presenceVersion: number } {
    return this.directory.resolved && session.presenceVersion !== undefined;
  }

  /** Once every member of the latest PRESENCE is settled: publish who is online, check the key. */
  private afterCertificates(session: Session): void {
    if (!this.presenceSettled(session)) return;
    const valid = this.directory.validMembers();
    this.publishMembers(valid);
    const names = valid.map((m) => m.name);
    this.lastOnline = names.filter((n) => n !== this.name);
    this.releaseHeldForCertificate(session);
    this.handshake.setPresence(names, session.presenceVersion);
    // A member that replays the log goes live at LIVE, once it has taken every stored key
    // distribution: starting a round before that would fork the epoch it is about to receive.
    if (!this.handshake.isLive) {
      if (!session.synced || session.caughtUp) this.goLive(session);
    } else this.handshake.ensureKey();
    this.afterKeyChange(session);
  }

  /**
   * The member is live: a missing key is worth a round from now on, and the online initiator
   * checks rotation. The lead's SYNC/LIVE handling calls this when LIVE arrives.
   */
  private goLive(session: Session): void {
    this.handshake.goLive();
    clearInterval(this.rotationTimer);
    this.rotationTimer = setInterval(() => {
      if (this.session === session) this.handshake.maybeRotate();
    }, this.o.rotationCheckMs);
    this.rotationTimer.unref?.();
  }

  /** Without a roster (transitional) a key needs someone else online to be worth sending under. */
  private enoughOnline(): boolean {
    return this.handshake.currentRosterVersion > 0 || this.handshake.onlineMembers.length >= 2;
  }

  /** After presence, a roster or a key: Chatting if the key is usable, else waiting for one. */
  private afterKeyChange(session: Session): void {
    if (this.session !== session || !session.authenticated) return;
    if (!this.enoughOnline()) {
      this.setState('KeyEstablishment', 'waiting for other members');
      return;
    }
    if (this.handshake.needsKey && this.handshake.idleAlone) {
      clearTimeout(this.keyTimer);
      this.keyTimer = undefined;
      this.setState('Chatting', 'alone online: a key is made when you write');
      return;
    }
    if (this.handshake.needsKey) {
      this.setState(
        'KeyEstablishment',
        `establishing a key with ${this.handshake.onlineMembers.length} of ${this.handshake.members.length} members online`,
      );
      if (this.keyTimer === undefined) this.armKeyTimer(session);
      return;
    }
    clearTimeout(this.keyTimer);
    this.keyTimer = undefined;
    this.setState('Chatting');
    this.pump();
  }

  private armKeyTimer(session: Session): void {
    clearTimeout(this.keyTimer);
    // Each full turn through the members waits longer: on a loaded machine rounds may simply be slow.
    const turns = Math.floor(this.handshake.attempt / Math.max(1, this.handshake.onlineMembers.length));
    const timeout = this.o.keyEstablishmentTimeoutMs * Math.min(4, 1 + turns);
    this.keyTimer = setTimeout(() => {
      this.keyTimer = undefined;
      if (this.session !== session || !this.handshake.needsKey) return;
      this.handshake.nextAttempt();
      this.setState(
        'KeyEstablishment',
        `attempt ${this.handshake.attempt + 1}: initiator ${this.handshake.expectedInitiator ?? '?'}`,
      );
      this.armKeyTimer(session);
    }, timeout);
  }

  private onMemberFrame(header: EnvelopeHeader, frame: Buffer): void {
    if (header.sender.kind !== 'fingerprint') {
      throw new ProtocolError('BadFrame', `${header.type} from a member must name its sender by fingerprint`);
    }
    const fingerprint = header.sender.fingerprint.toString('hex');
    const cert = this.directory.byFingerprintHex(fingerprint);
    if (!cert) {
      if (this.directory.isPending(fingerprint)) {
        this.holdForCertificate(fingerprint, frame, this.follower?.hold());
        return;
      }
      throw new ProtocolError(
        'UnknownSender',
        `${header.type} from a certificate this member has not validated`,
      );
    }
    if (TARGETED_TYPES.has(header.type) ? header.target !== this.name : header.target !== '') {
      throw new ProtocolError('BadFrame', `${header.type} addressed to "${header.target}"`);
    }
    verifyHeader(header, cert.publicKey);
    const sender = cert.name;
    switch (header.type) {
      case 'ENCRYPTED_TEXT':
        this.onChat(sender, decodeBody('ENCRYPTED_TEXT', header.body));
        return;
      case 'NONCE_REQUEST':
        this.handshake.onNonceRequest(sender, decodeBody('NONCE_REQUEST', header.body));
        return;
      case 'NONCE_RESPONSE':
        this.handshake.onNonceResponse(sender, decodeBody('NONCE_RESPONSE', header.body));
        return;
      case 'KEY_DISTRIBUTION':
        this.handshake.onKeyDistribution(sender, decodeBody('KEY_DISTRIBUTION', header.body));
        return;
      case 'REKEY_REQUEST':
        this.handshake.onRekeyRequest(sender, decodeBody('REKEY_REQUEST', header.body));
        return;
      case 'DISCONNECT':
        decodeBody('DISCONNECT', header.body); // the PRESENCE that follows tells who is left
        return;
      case 'CONNECTION':
      case 'CERT_REQUEST':
        throw new ProtocolError('UnknownType', `${header.type} is not for members`);
    }
  }

  private onChat(sender: string, body: BodyOf<'ENCRYPTED_TEXT'>): void {
    // From the log, under an epoch this member never held: not for it (v1 keys are agreed by the
    // members online; epochs over the roster will seal every key for every member).
    if (
      this.follower?.inReplay &&
      !this.keyring.knows(body.epoch) &&
      !this.follower.isDuplicate(sender, body.epoch, body.seq)
    ) {
      this.follower.skipUnreadable();
      return;
    }
    const current = this.keyring.currentEpoch ?? 0;
    if (
      !this.keyring.knows(body.epoch) &&
      body.epoch > current &&
      body.epoch <= this.handshake.highestEpochSeen + 1
    ) {
      // Another member got the new key a moment before us; keep it until ours arrives.
      this.holdForKey({ sender, body, heldAt: Date.now(), offset: this.follower?.hold() });
      return;
    }
    // Delivered twice (a replay after a crash, a resend after a lost acknowledgement): shown once.
    if (this.follower?.isDuplicate(sender, body.epoch, body.seq)) return;
    const opened = this.keyring.open(body.epoch, sender, body.seq, body.iv, body.ciphertext);
    if (!opened.ok) {
      this.emitError(opened.code, `message from ${sender} refused: ${opened.message}`);
      if (opened.code === 'UnknownEpoch') this.handshake.onUnknownEpoch(body.epoch);
      return;
    }
    this.countMessage(body.epoch);
    const plain = decodeChatPlaintext(opened.plaintext);
    const message = {
      from: sender,
      text: plain.text,
      epoch: body.epoch,
      seq: body.seq,
      sentAt: plain.sentAt,
    };
    // With a history, shown once stored (LogFollower.shown); without, at once.
    if (this.follower) this.follower.received(message);
    else this.emit({ event: 'message', ...message });
  }

  // ---- keys -------------------------------------------------------------------------------------

  private installKey(k: EstablishedKey): void {
    if (this.keyring.lookup(k.epoch)) return; // held already (the handshake compared them)
    const hook = this.o.unsafeTestHooks?.onGroupKey;
    if (hook) hook(k.epoch, Buffer.from(k.derived.key));
    const establishedAt = this.o.now();
    const facts = { contributors: k.contributors, rosterVersion: k.rosterVersion, establishedAt };
    // Historic (older roster) or below the current epoch: it may decrypt, it never sends.
    const readOnly = k.readOnly || k.epoch <= this.keyring.highestEpoch;
    try {
      persistKey(this.o.epochStore, k, readOnly, establishedAt);
    } catch (err) {
      // The key is still good for this session; a restart would have to re-key.
      this.emitError('StateStoreFailed', `epoch ${k.epoch}'s key not stored: ${(err as Error).message}`);
    }
    if (readOnly) {
      this.keyring.installReadOnly(k.epoch, k.derived, k.members, k.initiator, facts);
      this.releaseHeldForKey(false);
      return;
    }
    this.saveMessageCount();
    const view = this.keyring.install(k.epoch, k.derived, k.members, k.initiator, facts);
    // Anything signed under an older epoch but not yet written goes out again under this one.
    this.requeueUnwritten((m) => m.kind === 'chat' && m.epoch < k.epoch);
    this.emit({ event: 'key', ...view });
    this.releaseHeldForKey(false);
    clearTimeout(this.rekeyFallbackTimer);
    if (this.session) this.afterKeyChange(this.session);
  }

  /** One message sent or received under the current epoch; rotation by count is checked here. */
  private countMessage(epoch: number): void {
    const n = this.keyring.countMessage(epoch);
    if (n > 0 && n % MESSAGE_COUNT_SAVE_EVERY === 0) this.saveMessageCount();
    if (n >= this.o.rotationMaxMessages) this.handshake.maybeRotate();
  }

  /**
   * Makes sure the next sequence number is reserved in the store before it is used (a restarted
   * member continues above the reservation). False (reported) if the store refused: not sent.
   */
  private reserveSeq(): boolean {
    const k = this.keyring.currentInfo;
    if (!k || !this.o.epochStore.saveSentSeq) return true;
    const next = k.lastSentSeq + 1;
    if (this.reservedSeq.epoch === k.epoch && next <= this.reservedSeq.seq) return true;
    const upTo = next + SENT_SEQ_RESERVE;
    try {
      this.o.epochStore.saveSentSeq(k.epoch, upTo);
    } catch (err) {
      this.emitError(
        'StateStoreFailed',
        `message not sent: storing its sequence number failed (${(err as Error).message})`,
      );
      return false;
    }
    this.reservedSeq = { epoch: k.epoch, seq: upTo };
    return true;
  }

  private saveMessageCount(): void {
    const k = this.keyring.currentInfo;
    if (!k) return;
    try {
      this.o.epochStore.saveMessages?.(k.epoch, k.messages);
    } catch (err) {
      this.emitError(
        'StateStoreFailed',
        `epoch ${k.epoch}'s message count not stored: ${(err as Error).message}`,
      );
    }
  }

  // ---- outgoing ---------------------------------------------------------------------------------

  /** A reconnect (not the first login): hold the queue until who was online before is back. */
  private beginSettle(): void {
    this.endSettle();
    const last = this.lastOnline;
    if (!this.everAuthenticated || last.length < 1 || this.o.reconnectSettleMs <= 0) {
      this.everAuthenticated = true;
      return;
    }
    const timer = setTimeout(() => {
      this.endSettle();
      this.pump();
    }, this.o.reconnectSettleMs);
    this.settle = { members: new Set(last), until: Date.now() + this.o.reconnectSettleMs, timer };
  }

  private endSettle(): void {
    if (this.settle) clearTimeout(this.settle.timer);
    this.settle = undefined;
  }

  /** Still waiting for members of the pre-outage key to return (bounded by reconnectSettleMs)? */
  private settling(): boolean {
    const s = this.settle;
    if (!s) return false;
    const present = new Set(this.handshake.onlineMembers);
    for (const m of s.members) if (!present.has(m)) return Date.now() < s.until;
    this.endSettle();
    return false;
  }

  private canSend(): boolean {
    const s = this.session;
    if (this.settling()) return false;
    return (
      s !== undefined &&
      s.authenticated &&
      s.conn.isOpen &&
      !this.handshake.needsKey &&
      this.enoughOnline() &&
      !this.stopping &&
      this.keyring.currentEpoch !== undefined
    );
  }

  /** Signs queued messages ahead, in parallel, bounded by the pipeline depth and the socket's buffer. */
  private pump(): void {
    if (!this.canSend()) return;
    const conn = (this.session as Session).conn;
    let inFlight = this.writer.count((m) => m.kind === 'chat');
    while (inFlight < this.o.signPipelineDepth && conn.writableLength < this.o.writeHighWaterBytes) {
      const message = this.outbox.shift();
      if (!message) return;
      if (!this.reserveSeq()) {
        this.outbox.unshiftAll([message]);
        return;
      }
      const sealed = this.keyring.seal(
        this.name,
        encodeChatPlaintext({ text: message.text, sentAt: message.sentAt }),
      );
      const unsigned = buildUnsigned('ENCRYPTED_TEXT', this.selfRef, '', sealed);
      const frame = this.identity
        .signAsync(Buffer.concat([SIGNATURE_LABEL, unsigned]))
        .then((sig) => attachSignature(unsigned, sig));
      this.writer.enqueue(frame, { kind: 'chat', message, epoch: sealed.epoch, seq: sealed.seq });
      this.countMessage(sealed.epoch);
      inFlight++;
    }
  }

  private sendControl<T extends MessageType>(
    type: T,
    target: string,
    body: BodyOf<T>,
    onWritten?: () => void,
  ): void {
    if (!this.session?.conn.isOpen) {
      onWritten?.();
      return;
    }
    this.writer.enqueue(
      sealMessageAsync(type, this.selfRef, target, body, (d) => this.identity.signAsync(d)),
      { kind: 'control', type, onWritten },
    );
  }

  private writeFrame(frame: Buffer, meta: WriteMeta): void {
    const conn = this.session?.conn;
    if (!conn?.isOpen) {
      // Cannot happen (a close cancels every entry), but never report unwritten messages as sent.
      this.putBack(meta);
      return;
    }
    conn.write(frame);
    this.session?.heartbeat?.sent();
    this.noteLogged(frame, meta);
    if (meta.kind === 'chat') {
      this.emit({
        event: 'outgoing',
        localId: meta.message.localId,
        status: 'sent',
        text: meta.message.text,
        epoch: meta.epoch,
        seq: meta.seq,
      });
      this.pump();
    } else if (meta.kind === 'control') {
      meta.onWritten?.();
    }
  }

  /** The relay numbers the logged frames (chat, key distribution) it reads from us: so do we. */
  private noteLogged(frame: Buffer, meta: WriteMeta): void {
    const follower = this.follower;
    if (!follower) return;
    if (meta.kind === 'resend') {
      follower.logged(meta.logged);
    } else if (meta.kind === 'chat') {
      follower.logged({ kind: 'chat', epoch: meta.epoch, seq: meta.seq, frame });
      follower.ownWritten({
        from: this.name,
        text: meta.message.text,
        epoch: meta.epoch,
        seq: meta.seq,
        sentAt: meta.message.sentAt,
      });
    } else if (meta.type === 'KEY_DISTRIBUTION') {
      follower.logged({ kind: 'key', frame });
    }
  }

  private onSignFailure(err: unknown, meta: WriteMeta): void {
    this.emitError(
      'SignFailed',
      `signing ${meta.kind === 'control' ? meta.type : 'a message'} failed: ${String(err)}`,
    );
    this.putBack(meta);
  }

  /** An entry that was not written: a message back to the outbox, a resend to the next session. */
  private putBack(meta: WriteMeta): void {
    if (meta.kind === 'chat') this.outbox.unshiftAll([meta.message]);
    else if (meta.kind === 'resend') this.follower?.carry(meta.logged);
    else meta.onWritten?.();
  }

  /** Takes unwritten entries back from the writer; chat messages return to the front of the outbox. */
  private requeueUnwritten(predicate: (meta: WriteMeta) => boolean): void {
    const cancelled = this.writer.cancel(predicate);
    const messages: OutgoingMessage[] = [];
    for (const m of cancelled) {
      if (m.kind === 'chat') messages.push(m.message);
      else this.putBack(m);
    }
    this.outbox.unshiftAll(messages);
  }

  // ---- held frames ------------------------------------------------------------------------------

  private holdForCertificate(fingerprint: string, frame: Buffer, offset: number | undefined): void {
    this.heldForCertificate.push({ fingerprint, frame: Buffer.from(frame), offset });
    if (this.heldForCertificate.length > this.o.maxHeldFrames) {
      this.follower?.release(this.heldForCertificate.shift()?.offset);
      this.emitError(
        'HeldFramesDropped',
        'too many frames waiting for a certificate; the oldest was dropped',
      );
    }
  }

  private releaseHeldForCertificate(session: Session): void {
    const held = this.heldForCertificate;
    if (held.length === 0) return;
    this.heldForCertificate = [];
    for (const h of held) {
      if (this.directory.isPending(h.fingerprint)) this.heldForCertificate.push(h);
      else if (this.follower) this.follower.release(h.offset, () => this.onEnvelope(session, h.frame));
      else this.onEnvelope(session, h.frame);
    }
  }

  private holdForKey(held: HeldChat): void {
    this.heldForKey.push(held);
    if (this.heldForKey.length > this.o.maxHeldFrames) {
      const dropped = this.heldForKey.shift() as HeldChat;
      this.follower?.release(dropped.offset);
      this.emitError(
        'UnknownEpoch',
        `message from ${dropped.sender} for epoch ${dropped.body.epoch} dropped: too many waiting`,
      );
    }
    if (!this.heldSweepTimer) {
      this.heldSweepTimer = setInterval(
        () => this.sweepHeldForKey(),
        Math.max(50, this.o.keyEstablishmentTimeoutMs / 4),
      );
    }
  }

  /** Messages whose key did not come within the key-establishment timeout: UnknownEpoch after all. */
  private sweepHeldForKey(): void {
    const limit = Date.now() - this.o.keyEstablishmentTimeoutMs;
    const expired = this.heldForKey.filter((h) => h.heldAt <= limit);
    this.heldForKey = this.heldForKey.filter((h) => h.heldAt > limit);
    for (const h of expired) {
      this.follower?.release(h.offset);
      this.emitError(
        'UnknownEpoch',
        `message from ${h.sender} refused: epoch ${h.body.epoch} was never established with this member`,
      );
      this.handshake.onUnknownEpoch(h.body.epoch);
    }
    if (this.heldForKey.length === 0) {
      clearInterval(this.heldSweepTimer);
      this.heldSweepTimer = undefined;
    }
  }

  /** After a key arrived (or the session ended): process held messages again, in arrival order. */
  private releaseHeldForKey(sessionEnded: boolean): void {
    const held = this.heldForKey;
    this.heldForKey = [];
    clearInterval(this.heldSweepTimer);
    this.heldSweepTimer = undefined;
    for (const h of held) {
      if (sessionEnded) {
        this.follower?.release(h.offset);
        this.emitError(
          'UnknownEpoch',
          `message from ${h.sender} for epoch ${h.body.epoch} lost with the connection`,
        );
        continue;
      }
      try {
        if (this.follower) this.follower.release(h.offset, () => this.onChat(h.sender, h.body));
        else this.onChat(h.sender, h.body);
      } catch (err) {
        // The code of what failed (a plaintext schema, a ClientError …), not a guess.
        const code = err instanceof ProtocolError || err instanceof ClientError ? err.code : 'BadFrame';
        this.emitError(code, `held message from ${h.sender} refused: ${(err as Error).message}`);
      }
    }
  }

  // ---- events -----------------------------------------------------------------------------------

  private publishMembers(valid: MemberView[]): void {
    const before = new Set(this.memberList.map((m) => m.name));
    const after = new Set(valid.map((m) => m.name));
    const same =
      valid.length === this.memberList.length &&
      valid.every(
        (m, i) => m.name === this.memberList[i]?.name && m.fingerprint === this.memberList[i]?.fingerprint,
      );
    this.memberList = valid;
    if (!same) this.emit({ event: 'members', members: valid.map((m) => ({ ...m })) });
    if (this.everHadMembers) {
      for (const n of after) if (!before.has(n)) this.emit({ event: 'system', kind: 'joined', name: n });
      for (const n of before) if (!after.has(n)) this.emit({ event: 'system', kind: 'left', name: n });
    }
    this.everHadMembers = true;
  }

  private setState(state: ConnectionState, reason?: string, retryInMs?: number): void {
    // While leaving, late PRESENCE frames must not make the state look like a fresh session.
    if (this.stopping && state !== 'Disconnecting' && state !== 'Disconnected') return;
    if (state === this.currentState && reason === this.stateReason && retryInMs === undefined) return;
    this.currentState = state;
    this.stateReason = reason;
    this.emit({
      event: 'state',
      state,
      ...(reason !== undefined ? { reason } : {}),
      ...(retryInMs !== undefined ? { retryInMs } : {}),
    });
  }

  private emitError(code: string, message: string): void {
    this.emit({ event: 'error', code, message });
  }

  private emit(event: EngineEvent): void {
    for (const l of this.listeners) {
      try {
        l(event);
      } catch {
        // A listener's bug must not break the protocol state machine.
      }
    }
  }

  private clearTimers(): void {
    clearTimeout(this.reconnectTimer);
    clearTimeout(this.authTimer);
    clearTimeout(this.keyTimer);
    clearTimeout(this.rekeyFallbackTimer);
    clearTimeout(this.certRetryTimer);
    clearInterval(this.heldSweepTimer);
    clearInterval(this.rotationTimer);
    this.endSettle();
    this.reconnectTimer = undefined;
    this.keyTimer = undefined;
    this.heldSweepTimer = undefined;
  }
}

export { ClientError };
