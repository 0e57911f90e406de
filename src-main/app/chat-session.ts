/**
 * The chat session: one ChatEngine at a time (made by EngineFactory) and what the window sees of
 * it. Engine events become views and events for the window: the connection state in plain words,
 * the members (member-list.ts), the key, and the timeline's lines (timeline.ts).
 */
import type { LocalIdentity } from '../core/pki/local-identity.js';
import type { ChatEngineApi, EngineEvent, RelayAddress, RosterOffer } from '../client/engine-types.js';
import type { ChatLine, ConnectionView, KeyView } from '../../src-shared/model.js';
import {
  charactersOverLimit,
  MAX_MESSAGE_CHARS,
  TIMELINE_START_LINES,
  tooLongReason,
} from '../../src-shared/limits.js';
import { AwaitingAcks } from './awaiting-acks.js';
import {
  connectionCause,
  connectionStateView,
  describeConnectionReason,
  keyView,
  memberViews,
  rosterChangeText,
} from './engine-views.js';
import { AppFailure, toAppError } from './errors.js';
import type { EventHub } from './event-hub.js';
import { historyLineId } from './history-lines.js';
import { ownerOf, type HistoryReader } from './history-reader.js';
import type { MemberList } from './member-list.js';
import type { AppMemberState } from './member-state.js';
import type { AppServicePorts } from './ports.js';
import { SessionState } from './session-state.js';
import type { Timeline } from './timeline.js';

/** MessageTooLong (the reason in words, details = [limit, length]) for a message over the limit. */
export function checkMessageLength(text: string): void {
  const over = charactersOverLimit(text);
  if (over > 0)
    throw new AppFailure('MessageTooLong', tooLongReason(over), [
      String(MAX_MESSAGE_CHARS),
      String(text.length),
    ]);
}

export interface ChatSessionDeps {
  ports: Pick<AppServicePorts, 'engineFactory'>;
  /** Remembers the relay this group connected to (the connect panel starts with it next time). */
  rememberAddress: (address: RelayAddress) => void;
  hub: EventHub;
  memberState: AppMemberState;
  members: MemberList;
  timeline: Timeline;
  history: HistoryReader;
  /** The name of the identity in use (own lines carry it). */
  selfName: () => string | undefined;
  /** A message from another member was shown (live, not restored from the history). */
  onIncoming?: (from: string, text: string, group: { id: string; name: string }) => void;
}

export class ChatSession {
  readonly #deps: ChatSessionDeps;
  #engine: ChatEngineApi | undefined;
  #engineOff: (() => void) | undefined;
  /** The identity's state store, open while an engine runs. */
  #state: SessionState | undefined;
  #connection: ConnectionView = { state: 'Disconnected' };
  #loggedIn = false;
  #reportedUnreachable = false;
  /** The relay said this member was removed from the group (this connect): the window says "Removed". */
  #removed = false;
  #key: KeyView | undefined;
  /** The last roster seen, per identity (group/name): a newer one says who joined or was removed. */
  #roster: { owner: string; version: number; members: string[]; removed: string[] } | undefined;
  #owner = '';
  /** The group of the identity connected, as notifications name it. */
  #group = { id: '', name: '' };
  /** Own lines written but not yet STORED, by epoch/seq (the ack names those, not the line). */
  readonly #awaitingAck = new AwaitingAcks();
  /** The timeline held messages when this link came up: what is caught up goes below "while you were away". */
  #hadHistory = false;
  #awayShown = false;

  constructor(deps: ChatSessionDeps) {
    this.#deps = deps;
  }

  get connection(): ConnectionView {
    return this.#connection;
  }

  get key(): KeyView | undefined {
    return this.#key;
  }

  /** AlreadyConnected while an engine is connected or trying to (identity changes must wait). */
  assertNotConnected(what: string): void {
    if (this.#engine && !['Disconnected', 'Failed'].includes(this.#connection.state)) {
      throw new AppFailure('AlreadyConnected', `Disconnect before ${what}.`);
    }
  }

  async connect(identity: LocalIdentity, address: RelayAddress): Promise<ConnectionView> {
    const { ports, hub, members } = this.#deps;
    this.assertNotConnected('connecting again');
    await this.stop();
    const state = SessionState.open(this.#deps.memberState, identity, hub);
    this.#owner = ownerOf(identity);
    this.#group = { id: identity.groupId, name: identity.ca.name };
    try {
      this.#restoreTimeline(this.#owner, () => state.recentLines(TIMELINE_START_LINES));
    } catch (err) {
      state.close();
      const error = toAppError(err);
      hub.emit({ type: 'error', error });
      throw new AppFailure(error.code, error.message, error.details);
    }
    this.#hadHistory = this.#deps.timeline.hasMessages();
    this.#awayShown = false;
    this.#deps.rememberAddress(address);
    this.#loggedIn = false;
    this.#reportedUnreachable = false;
    this.#removed = false;
    this.#key = undefined;
    members.reset();
    let engine: ChatEngineApi;
    try {
      engine = ports.engineFactory(identity, address, state.engineSession());
    } catch (err) {
      state.close();
      throw err;
    }
    this.#state = state;
    this.#engine = engine;
    this.#engineOff = engine.on((event) => this.#onEngineEvent(engine, event));
    this.#setConnection({ state: connectionStateView(engine.state), address });
    engine.start();
    return this.#connection;
  }

  /** A roster the organiser signed here, for the running engine (undefined: none runs). */
  offerRoster(bytes: Buffer): RosterOffer | undefined {
    return this.#engine?.offerRoster(bytes);
  }

  /** Logged in to the relay: what the engine sends reaches it now. */
  get linkUp(): boolean {
    return ['CertExchange', 'KeyEstablishment', 'Chatting'].includes(this.#connection.state);
  }

  /** The store of the running engine, if it is `owner`'s (history-reader.ts reads through it). */
  sessionFor(owner: string): SessionState | undefined {
    return this.#state !== undefined && this.#owner === owner ? this.#state : undefined;
  }

  /**
   * The identity is open (import, unlock, start): the window shows its stored history at once,
   * before any connect. A store that cannot be read is reported by the connect that needs it.
   */
  showStoredHistory(identity: LocalIdentity): void {
    try {
      this.#restoreTimeline(ownerOf(identity), () =>
        this.#deps.history.recent(identity, TIMELINE_START_LINES),
      );
    } catch {
      // Reported at connect (StorageFailed), where the engine cannot run without its store.
    }
  }

  /**
   * Another identity's timeline starts over with this one's stored history; the same identity's
   * keeps what this run has shown, and gets the stored history only if it shows no message yet.
   */
  #restoreTimeline(owner: string, read: () => ChatLine[]): void {
    const { timeline } = this.#deps;
    if (timeline.owner !== owner) return timeline.reset(owner, read());
    if (timeline.hasMessages()) return;
    const stored = read();
    if (stored.length > 0) timeline.reset(owner, [...stored, ...timeline.recent()]);
  }

  async disconnect(): Promise<void> {
    if (!this.#engine) throw new AppFailure('NotConnected', 'You are not connected.');
    await this.stop('user disconnected');
  }

  /** Stops the engine (if any), then closes its state store; the window sees "Disconnected". */
  async stop(reason?: string): Promise<void> {
    const engine = this.#engine;
    if (!engine) return;
    try {
      await engine.stop(reason);
    } finally {
      if (this.#engine === engine) {
        this.#engineOff?.();
        this.#engine = undefined;
        this.#engineOff = undefined;
        // After stop(): the engine saves no more epochs.
        this.#closeState();
        this.#key = undefined;
        this.#deps.members.clear();
        const address = this.#connection.address;
        this.#setConnection({
          state: 'Disconnected',
          ...(address ? { address } : {}),
          ...(this.#removed ? { cause: 'removed' as const } : {}),
        });
        this.#deps.timeline.addSystem('disconnected', 'You left the chat.');
      }
    }
  }

  /** App quit: the engine stopped, the store closed (also if stopping failed). */
  async dispose(): Promise<void> {
    await this.stop('app closed').catch(() => undefined);
    this.#closeState();
  }

  send(text: string): string {
    checkMessageLength(text);
    if (!this.#engine) throw new AppFailure('NotConnected', 'Connect to a relay before sending.');
    return this.#engine.send(text);
  }

  rekey(): void {
    if (!this.#engine || this.#connection.state !== 'Chatting')
      throw new AppFailure('NotConnected', 'Keys can only be renewed while you are chatting.');
    this.#engine.requestRekey();
  }

  #closeState(): void {
    const state = this.#state;
    this.#state = undefined;
    state?.close();
  }

  #setConnection(view: ConnectionView): void {
    this.#connection = view;
    this.#deps.hub.emit({ type: 'state', ...view });
  }

  #onEngineEvent(engine: ChatEngineApi, event: EngineEvent): void {
    if (engine !== this.#engine) return;
    const { hub, timeline } = this.#deps;
    switch (event.event) {
      case 'state':
        this.#onState(event);
        break;
      case 'members':
        this.#deps.members.update(memberViews(event.members));
        break;
      case 'key': {
        const key = keyView(event);
        const previous = this.#key;
        this.#key = key;
        hub.emit({ type: 'key', key });
        if (!previous || previous.epoch !== key.epoch) {
          timeline.addSystem(
            'rekey',
            previous
              ? `New group key (epoch ${key.epoch}) for ${key.members.join(', ')}. Compare the safety number again.`
              : `Group key established (epoch ${key.epoch}) for ${key.members.join(', ')}.`,
            { epoch: key.epoch },
          );
        }
        break;
      }
      case 'message': {
        const historyId = this.#state?.historyId(event.from, event.epoch, event.seq);
        if (event.backlog && this.#hadHistory && !this.#awayShown) {
          this.#awayShown = true;
          timeline.addSystem('away', 'While you were away');
        }
        const line: ChatLine = {
          kind: 'message',
          id: historyId !== undefined ? historyLineId(historyId) : timeline.nextId('m'),
          ...(historyId !== undefined ? { historyId } : {}),
          from: event.from,
          text: event.text,
          epoch: event.epoch,
          seq: event.seq,
          sentAt: event.sentAt,
          receivedAt: Date.now(),
        };
        timeline.push(line);
        this.#deps.onIncoming?.(event.from, event.text, this.#group);
        break;
      }
      case 'outgoing': {
        const id = `own-${event.localId}`;
        const existing = timeline.find(id);
        // Written is not yet safe: "sent" waits for the relay's STORED (the 'sent' event below).
        if (event.status === 'sent' && event.epoch !== undefined && event.seq !== undefined)
          this.#awaitingAck.wrote(event.epoch, event.seq, id);
        timeline.upsert({
          kind: 'own',
          id,
          from: this.#deps.selfName() ?? engine.name,
          text: event.text,
          status: event.status === 'sent' ? 'sending' : 'queued',
          ...(event.epoch !== undefined ? { epoch: event.epoch } : {}),
          ...(event.seq !== undefined ? { seq: event.seq } : {}),
          sentAt: existing?.kind === 'own' ? existing.sentAt : Date.now(),
        });
        break;
      }
      case 'system':
        timeline.addSystem(
          event.kind,
          event.kind === 'joined' ? `${event.name} joined the chat.` : `${event.name} left the chat.`,
          { name: event.name },
        );
        break;
      case 'gap':
        timeline.addSystem('warning', `Some earlier messages cannot be shown: ${event.reason}.`);
        break;
      case 'roster':
        this.#onRoster(event);
        break;
      case 'sent': {
        // Durable at the relay: now it reaches the members who are away.
        const id = this.#awaitingAck.stored(event.epoch, event.seq);
        const line = id === undefined ? undefined : timeline.find(id);
        if (line?.kind === 'own') {
          // Stored locally a moment after it was written: by now its history id is known.
          const historyId = line.historyId ?? this.#state?.historyId(engine.name, event.epoch, event.seq);
          timeline.upsert({ ...line, status: 'sent', ...(historyId !== undefined ? { historyId } : {}) });
        }
        break;
      }
      case 'error': {
        if (event.code === 'Removed') {
          // Terminal: the engine stops here and does not reconnect (the relay would refuse it).
          // The relay's words (with the organiser's reason) go in the details.
          const text = 'You were removed from this group.';
          this.#removed = true;
          // The engine may have shown its terminal state before this error: mark that view too.
          if (['Failed', 'Disconnected'].includes(this.#connection.state))
            this.#setConnection({ ...this.#connection, cause: 'removed' });
          hub.emit({ type: 'error', error: { code: 'Removed', message: text, details: [event.message] } });
          timeline.addSystem('removed', text);
          break;
        }
        hub.emit({
          type: 'error',
          error: { code: 'ChatError', message: event.message, details: [event.code] },
        });
        timeline.addSystem('warning', event.message);
        break;
      }
    }
  }

  /**
   * The first roster of an identity in this run is the baseline; a newer one is a system line that
   * names who was added and who was removed (a re-key follows, shown by its own line).
   */
  #onRoster(event: Extract<EngineEvent, { event: 'roster' }>): void {
    const previous = this.#roster?.owner === this.#owner ? this.#roster : undefined;
    if (previous && event.version <= previous.version) return;
    this.#roster = {
      owner: this.#owner,
      version: event.version,
      members: event.members,
      removed: event.removed,
    };
    if (previous) this.#deps.timeline.addSystem('roster', rosterChangeText(previous, event));
  }

  #onState(event: Extract<EngineEvent, { event: 'state' }>): void {
    if (event.state === 'Reconnecting') {
      // What is caught up after this outage gets its own "while you were away".
      this.#awayShown = false;
      this.#hadHistory = this.#deps.timeline.hasMessages();
    }
    const address = this.#connection.address;
    const reason = describeConnectionReason(event.reason, address);
    const state = connectionStateView(event.state);
    const cause = connectionCause(event.cause, this.#removed && ['Failed', 'Disconnected'].includes(state));
    this.#setConnection({
      state,
      ...(reason !== undefined ? { reason } : {}),
      ...(event.retryInMs !== undefined ? { retryInMs: event.retryInMs } : {}),
      ...(address ? { address } : {}),
      ...(cause !== undefined ? { cause } : {}),
    });
    // Logged in to the relay (certificates next): say so once per connect.
    if (['CertExchange', 'KeyEstablishment', 'Chatting'].includes(event.state) && !this.#loggedIn) {
      this.#loggedIn = true;
      this.#deps.timeline.addSystem(
        'connected',
        `Connected to ${address ? `${address.host}:${address.port}` : 'the relay'}.`,
      );
    }
    if (
      (event.state === 'Reconnecting' || event.state === 'Failed') &&
      !this.#loggedIn &&
      !this.#reportedUnreachable &&
      reason !== undefined
    ) {
      this.#reportedUnreachable = true;
      this.#deps.hub.emit({
        type: 'error',
        error: {
          code: reason.startsWith('Relay unreachable') ? 'RelayUnreachable' : 'NotConnected',
          message: reason,
        },
      });
    }
  }
}
