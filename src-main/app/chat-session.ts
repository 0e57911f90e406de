/**
 * The chat session: one ChatEngine at a time (made by EngineFactory), its state store, and the
 * connection as the window sees it, in plain words. The members go to member-list.ts; the key
 * and the chat lines to timeline-projection.ts.
 */
import type { LocalIdentity } from '../core/pki/local-identity.js';
import {
  relayAddressText,
  type ChatEngineApi,
  type EngineEvent,
  type RelayAddress,
  type RosterOffer,
} from '../client/engine-types.js';
import type { ChatLine, ConnectionView, KeyView } from '../../src-shared/model.js';
import { TIMELINE_START_LINES } from '../../src-shared/limits.js';
import {
  connectionCause,
  connectionStateView,
  describeConnectionReason,
  isUnreachable,
  memberViews,
} from './engine-views.js';
import { AppFailure, toAppError } from './errors.js';
import type { EventHub } from './event-hub.js';
import { ownerOf, type HistoryReader } from './history-reader.js';
import type { MemberList } from './member-list.js';
import type { AppMemberState } from './member-state.js';
import type { AppServicePorts } from './ports.js';
import { SessionState } from './session-state.js';
import type { Timeline } from './timeline.js';
import { TimelineProjection } from './timeline-projection.js';

export interface ChatSessionDeps {
  ports: Pick<AppServicePorts, 'engineFactory'>;
  /** Remembers the relays this group connected to (the connect panel starts with them next time). */
  rememberAddress: (relays: readonly RelayAddress[]) => void;
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
  /** The addresses of this connect, and the one the engine is on (or trying). */
  #relays: readonly RelayAddress[] = [];
  /** The relay last logged in to: logging in to another one (a failover) is said again. */
  #loggedInTo: RelayAddress | undefined;
  #reportedUnreachable = false;
  /** The relay said this member was removed from the group (this connect): the window says "Removed". */
  #removed = false;
  #owner = '';
  /** The key and the chat lines of the running engine. */
  readonly #lines: TimelineProjection;

  constructor(deps: ChatSessionDeps) {
    this.#deps = deps;
    this.#lines = new TimelineProjection({
      hub: deps.hub,
      timeline: deps.timeline,
      selfName: deps.selfName,
      historyId: (from, epoch, seq) => this.#state?.historyId(from, epoch, seq),
      ...(deps.onIncoming ? { onIncoming: deps.onIncoming } : {}),
    });
  }

  get connection(): ConnectionView {
    return this.#connection;
  }

  get key(): KeyView | undefined {
    return this.#lines.key;
  }

  /** AlreadyConnected while an engine is connected or trying to (identity changes must wait). */
  assertNotConnected(what: string): void {
    if (this.#engine && !['Disconnected', 'Failed'].includes(this.#connection.state)) {
      throw new AppFailure('AlreadyConnected', `Disconnect before ${what}.`);
    }
  }

  /** `relays`: the first, then the group's other relay nodes (the engine fails over in order). */
  async connect(
    identity: LocalIdentity,
    relays: readonly [RelayAddress, ...RelayAddress[]],
  ): Promise<ConnectionView> {
    const [address] = relays;
    const { ports, hub, members } = this.#deps;
    this.assertNotConnected('connecting again');
    await this.stop();
    const state = SessionState.open(this.#deps.memberState, identity, hub);
    this.#owner = ownerOf(identity);
    try {
      this.#restoreTimeline(this.#owner, () => state.recentLines(TIMELINE_START_LINES));
    } catch (err) {
      state.close();
      const error = toAppError(err);
      hub.emit({ type: 'error', error });
      throw new AppFailure(error.code, error.message, error.details);
    }
    this.#lines.begin({
      owner: this.#owner,
      group: { id: identity.groupId, name: identity.ca.name },
      self: identity.name,
    });
    this.#deps.rememberAddress(relays);
    this.#relays = relays;
    this.#loggedInTo = undefined;
    this.#loggedIn = false;
    this.#reportedUnreachable = false;
    this.#removed = false;
    members.reset();
    let engine: ChatEngineApi;
    try {
      engine = ports.engineFactory(identity, relays, state.engineSession());
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
        this.#lines.end();
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

  /** The text's length is checked at the service's boundary (the engine's codec checks again). */
  send(text: string): string {
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
    switch (event.event) {
      case 'state':
        return this.#onState(event);
      case 'members':
        return this.#deps.members.update(memberViews(event.members));
      case 'error':
        return this.#onError(event);
      default:
        return this.#lines.apply(event);
    }
  }

  #onError(event: Extract<EngineEvent, { event: 'error' }>): void {
    const { hub, timeline } = this.#deps;
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
      return;
    }
    hub.emit({ type: 'error', error: { code: 'ChatError', message: event.message, details: [event.code] } });
    timeline.addSystem('warning', event.message);
  }

  #onState(event: Extract<EngineEvent, { event: 'state' }>): void {
    if (event.state === 'Reconnecting') {
      this.#lines.linkLost();
    }
    // With several addresses the engine names the one it tries (as HOST:PORT, [v6]:PORT).
    const tried =
      event.relay === undefined ? undefined : this.#relays.find((r) => relayAddressText(r) === event.relay);
    const address = tried ?? this.#connection.address;
    const reason = describeConnectionReason(event.reason, address, event.cause);
    const state = connectionStateView(event.state);
    const cause = connectionCause(event.cause, this.#removed && ['Failed', 'Disconnected'].includes(state));
    this.#setConnection({
      state,
      ...(reason !== undefined ? { reason } : {}),
      ...(event.retryInMs !== undefined ? { retryInMs: event.retryInMs } : {}),
      ...(address ? { address } : {}),
      ...(cause !== undefined ? { cause } : {}),
    });
    // Logged in to the relay (certificates next): say so once per connect, and at each failover.
    const up = ['CertExchange', 'KeyEstablishment', 'Chatting'].includes(event.state);
    if (up && (!this.#loggedIn || (address !== undefined && address !== this.#loggedInTo))) {
      this.#loggedIn = true;
      this.#loggedInTo = address;
      this.#deps.timeline.addSystem(
        'connected',
        `Connected to ${address ? relayAddressText(address) : 'the relay'}.`,
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
          code: isUnreachable(event.cause) ? 'RelayUnreachable' : 'NotConnected',
          message: reason,
        },
      });
    }
  }
}
