/**
 * What the window's timeline shows of one engine's chat events: the key and its re-keys, other
 * members' messages (below one "While you were away" divider when caught up from the relay's log),
 * own lines from queued to sent (acknowledged by the relay's STORED), joins and leaves, gaps and
 * roster changes. chat-session.ts owns the engine and the connection; this owns the lines.
 */
import type { EngineEvent } from '../client/engine-types.js';
import type { ChatLine, KeyView } from '../../src-shared/model.js';
import { AwaitingAcks } from './awaiting-acks.js';
import { keyView, rosterChangeText } from './engine-views.js';
import type { EventHub } from './event-hub.js';
import { historyLineId } from './history-lines.js';
import type { Timeline } from './timeline.js';

/** The engine events that become lines (the rest are the connection's: chat-session.ts). */
export type ProjectedEvent = Extract<
  EngineEvent,
  { event: 'key' | 'message' | 'outgoing' | 'sent' | 'system' | 'gap' | 'roster' }
>;

export interface TimelineProjectionDeps {
  hub: EventHub;
  timeline: Timeline;
  /** The name of the identity in use (own lines carry it). */
  selfName: () => string | undefined;
  /** The stored history's id of a message, once the engine's store holds it. */
  historyId: (from: string, epoch: number, seq: number) => number | undefined;
  /** A message from another member was shown (live, not restored from the history). */
  onIncoming?: (from: string, text: string, group: { id: string; name: string }) => void;
}

/** Who this run's lines are for. */
export interface ProjectionScope {
  /** `<group id>/<name>`: a roster is compared with the last one of the same identity only. */
  owner: string;
  /** As notifications name the group. */
  group: { id: string; name: string };
  /** The engine's member name (own lines fall back to it). */
  self: string;
}

export class TimelineProjection {
  readonly #deps: TimelineProjectionDeps;
  #scope: ProjectionScope = { owner: '', group: { id: '', name: '' }, self: '' };
  #key: KeyView | undefined;
  /** The last roster seen, per identity: a newer one says who joined or was removed. */
  #roster: { owner: string; version: number; members: string[]; removed: string[] } | undefined;
  /** Own lines written but not yet STORED, by epoch/seq (the ack names those, not the line). */
  readonly #awaitingAck = new AwaitingAcks();
  /** The timeline held messages when this link came up: what is caught up goes below the divider. */
  #hadHistory = false;
  #awayShown = false;

  constructor(deps: TimelineProjectionDeps) {
    this.#deps = deps;
  }

  get key(): KeyView | undefined {
    return this.#key;
  }

  /** A new engine starts (connect): no key yet, and the next catch-up gets its divider. */
  begin(scope: ProjectionScope): void {
    this.#scope = scope;
    this.#key = undefined;
    this.linkLost();
  }

  /** The link went down: what is caught up after this outage gets its own divider. */
  linkLost(): void {
    this.#awayShown = false;
    this.#hadHistory = this.#deps.timeline.hasMessages();
  }

  /** The engine stopped: its key is gone. */
  end(): void {
    this.#key = undefined;
  }

  apply(event: ProjectedEvent): void {
    const { timeline } = this.#deps;
    switch (event.event) {
      case 'key':
        return this.#onKey(event);
      case 'message':
        return this.#onMessage(event);
      case 'outgoing':
        return this.#onOutgoing(event);
      case 'sent':
        return this.#onSent(event);
      case 'system':
        timeline.addSystem(
          event.kind,
          event.kind === 'joined' ? `${event.name} joined the chat.` : `${event.name} left the chat.`,
          { name: event.name },
        );
        return;
      case 'gap':
        timeline.addSystem('warning', `Some earlier messages cannot be shown: ${event.reason}.`);
        return;
      case 'roster':
        return this.#onRoster(event);
    }
  }

  #onKey(event: Extract<EngineEvent, { event: 'key' }>): void {
    const key = keyView(event);
    const previous = this.#key;
    this.#key = key;
    this.#deps.hub.emit({ type: 'key', key });
    if (previous && previous.epoch === key.epoch) return;
    this.#deps.timeline.addSystem(
      'rekey',
      previous
        ? `New group key (epoch ${key.epoch}) for ${key.members.join(', ')}. Compare the safety number again.`
        : `Group key established (epoch ${key.epoch}) for ${key.members.join(', ')}.`,
      { epoch: key.epoch },
    );
  }

  #onMessage(event: Extract<EngineEvent, { event: 'message' }>): void {
    const { timeline } = this.#deps;
    const historyId = this.#deps.historyId(event.from, event.epoch, event.seq);
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
    this.#deps.onIncoming?.(event.from, event.text, this.#scope.group);
  }

  #onOutgoing(event: Extract<EngineEvent, { event: 'outgoing' }>): void {
    const { timeline } = this.#deps;
    const id = `own-${event.localId}`;
    const existing = timeline.find(id);
    // Written is not yet safe: "sent" waits for the relay's STORED (#onSent).
    if (event.status === 'sent' && event.epoch !== undefined && event.seq !== undefined)
      this.#awaitingAck.wrote(event.epoch, event.seq, id);
    timeline.upsert({
      kind: 'own',
      id,
      from: this.#deps.selfName() ?? this.#scope.self,
      text: event.text,
      status: event.status === 'sent' ? 'sending' : 'queued',
      ...(event.epoch !== undefined ? { epoch: event.epoch } : {}),
      ...(event.seq !== undefined ? { seq: event.seq } : {}),
      sentAt: existing?.kind === 'own' ? existing.sentAt : Date.now(),
    });
  }

  /** Durable at the relay: now it reaches the members who are away. */
  #onSent(event: Extract<EngineEvent, { event: 'sent' }>): void {
    const { timeline } = this.#deps;
    const id = this.#awaitingAck.stored(event.epoch, event.seq);
    const line = id === undefined ? undefined : timeline.find(id);
    if (line?.kind !== 'own') return;
    // Stored locally a moment after it was written: by now its history id is known.
    const historyId = line.historyId ?? this.#deps.historyId(this.#scope.self, event.epoch, event.seq);
    timeline.upsert({ ...line, status: 'sent', ...(historyId !== undefined ? { historyId } : {}) });
  }

  /**
   * The first roster of an identity in this run is the baseline; a newer one is a system line that
   * names who was added and who was removed (a re-key follows, shown by its own line).
   */
  #onRoster(event: Extract<EngineEvent, { event: 'roster' }>): void {
    const owner = this.#scope.owner;
    const previous = this.#roster?.owner === owner ? this.#roster : undefined;
    if (previous && event.version <= previous.version) return;
    this.#roster = { owner, version: event.version, members: event.members, removed: event.removed };
    if (previous) this.#deps.timeline.addSystem('roster', rosterChangeText(previous, event));
  }
}
