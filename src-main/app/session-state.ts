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
import { historyLine } from './history-lines.js';
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
   * an engine with an empty store could reuse epoch numbers. Without `hub` (a read the window
   * asked for, which shows its own failure) no event.
   */
  static open(memberState: AppMemberState, identity: LocalIdentity, hub?: EventHub): SessionState {
    try {
      return new SessionState(memberState.open({ groupId: identity.groupId, member: identity.name }));
    } catch (err) {
      const error = toAppError(err);
      hub?.emit({ type: 'error', error });
      throw new AppFailure(error.code, error.message, error.details);
    }
  }

  /** What EngineFactory passes on to the engine. */
  engineSession(): EngineSession {
    const store = this.#store;
    return { epochStore: store, history: store.history, rosterStore: store, prekeyStore: store };
  }

  /** The newest `limit` stored messages as timeline lines, oldest first (what the window starts with). */
  recentLines(limit: number): ChatLine[] {
    return this.#store.history.page({ limit }).map(historyLine);
  }

  /**
   * Up to `limit` stored messages before the one with local id `beforeId` (default: the newest),
   * oldest first, and whether older ones remain.
   */
  olderLines(beforeId: number | undefined, limit: number): { lines: ChatLine[]; more: boolean } {
    // One more than asked: whether it comes back says if the user can scroll further.
    const page = this.#store.history.page({
      ...(beforeId !== undefined ? { beforeId } : {}),
      limit: limit + 1,
    });
    const more = page.length > limit;
    return { lines: (more ? page.slice(1) : page).map(historyLine), more };
  }

  /** The newest `limit` stored messages that contain `text` (case-insensitive), oldest first. */
  search(text: string, limit: number): ChatLine[] {
    return this.#store.history.search(text, limit).map(historyLine);
  }

  /** The local id of a stored message, if it is stored yet (own messages are stored a moment after writing). */
  historyId(from: string, epoch: number, seq: number): number | undefined {
    try {
      return this.#store.history.idOf(from, epoch, seq);
    } catch {
      // Only paging needs it; a line without it is still shown (and deduplicated by epoch/seq).
      return undefined;
    }
  }

  /** The highest roster this identity holds (the CA-signed envelope), if any. */
  loadRoster(): Buffer | undefined {
    return this.#store.loadRoster();
  }

  /** Keeps a newer roster (never lowers the one held): the next connect hands it to the relay. */
  saveRoster(bytes: Buffer, version: number): void {
    this.#store.saveRoster(bytes, version);
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
