/**
 * The identity's durable chat state for one engine session: its MemberStateStore
 * (member-state.ts), opened at connect and closed once the engine has stopped. The engine gets
 * the same ports `securechat-x chat` gives it (cli/commands/chat.ts), all backed by the one store:
 * the highest epoch and the epoch keys, the history and log position, the highest roster.
 */
import type { LocalIdentity } from '../core/pki/local-identity.js';
import type { MemberStateStore } from '../client/state/member-store.js';
import type { ChatLine } from '../../src-shared/model.js';
import { AppFailure, toAppError } from './errors.js';
import type { EventHub } from './event-hub.js';
import type { AppMemberState } from './member-state.js';
import type { EngineSession } from './ports.js';

export class SessionState {
  readonly #store: MemberStateStore;

  private constructor(store: MemberStateStore) {
    this.#store = store;
  }

  /**
   * Opens the identity's state store for a connect. A failure is an error event and a failed
   * connect (StorageFailed, details[0] = the StateStoreError code), never an engine without it:
   * an engine with an empty store could reuse epoch numbers.
   */
  static open(memberState: AppMemberState, identity: LocalIdentity, hub: EventHub): SessionState {
    try {
      return new SessionState(memberState.open({ groupId: identity.groupId, member: identity.name }));
    } catch (err) {
      const error = toAppError(err);
      hub.emit({ type: 'error', error });
      throw new AppFailure(error.code, error.message, error.details);
    }
  }

  /** What EngineFactory passes on to the engine. */
  engineSession(): EngineSession {
    const store = this.#store;
    return { epochStore: store, history: store.history, rosterStore: store };
  }

  /**
   * The newest `limit` stored messages as timeline lines, oldest first: what the window shows at
   * once when the app starts, before anything arrives. Own messages are shown as sent (they are
   * stored once written).
   */
  recentLines(limit: number): ChatLine[] {
    return this.#store.history.page({ limit }).map((m): ChatLine =>
      m.own
        ? {
            kind: 'own',
            id: `own-h${m.id}`,
            from: m.from,
            text: m.text,
            status: 'sent',
            epoch: m.epoch,
            seq: m.seq,
            sentAt: m.sentAt,
          }
        : {
            kind: 'message',
            id: `h-${m.id}`,
            from: m.from,
            text: m.text,
            epoch: m.epoch,
            seq: m.seq,
            sentAt: m.sentAt,
            receivedAt: m.receivedAt,
          },
    );
  }

  /** After the engine has stopped (it saves nothing more). Never throws. */
  close(): void {
    try {
      this.#store.close();
    } catch {
      // Closing flushes nothing new (every save is committed when it returns); nothing to report.
    }
  }
}
