/**
 * The window's reads of an identity's stored history: the page it starts with, older pages as the
 * user scrolls up, and search. While an engine runs, its open store serves them; otherwise the
 * store is opened for the read and closed again (a locked identity cannot be read: it has no key).
 */
import type { LocalIdentity } from '../core/pki/local-identity.js';
import type { ChatLine } from '../../src-shared/model.js';
import { HISTORY_PAGE_LINES, SEARCH_RESULTS_MAX } from '../../src-shared/limits.js';
import type { AppMemberState } from './member-state.js';
import { SessionState } from './session-state.js';

export interface HistoryReaderDeps {
  memberState: AppMemberState;
  /** The store the running engine holds for this owner (`<group id>/<name>`), if any. */
  openSession: (owner: string) => SessionState | undefined;
}

export const ownerOf = (identity: Pick<LocalIdentity, 'groupId' | 'name'>): string =>
  `${identity.groupId}/${identity.name}`;

export class HistoryReader {
  readonly #deps: HistoryReaderDeps;

  constructor(deps: HistoryReaderDeps) {
    this.#deps = deps;
  }

  /** The newest `limit` stored messages, oldest first. */
  recent(identity: LocalIdentity, limit: number): ChatLine[] {
    return this.#read(identity, (state) => state.recentLines(limit));
  }

  older(
    identity: LocalIdentity,
    beforeId: number | undefined,
    limit = HISTORY_PAGE_LINES,
  ): { lines: ChatLine[]; more: boolean } {
    return this.#read(identity, (state) => state.olderLines(beforeId, limit));
  }

  search(identity: LocalIdentity, text: string, limit = SEARCH_RESULTS_MAX): ChatLine[] {
    return this.#read(identity, (state) => state.search(text, limit));
  }

  /**
   * `read` over the identity's store: the running engine's, or one opened for it and closed again
   * (the organiser's tools read and keep the roster the same way).
   */
  withState<T>(identity: LocalIdentity, read: (state: SessionState) => T): T {
    return this.#read(identity, read);
  }

  #read<T>(identity: LocalIdentity, read: (state: SessionState) => T): T {
    const open = this.#deps.openSession(ownerOf(identity));
    if (open) return read(open);
    const state = SessionState.open(this.#deps.memberState, identity);
    try {
      return read(state);
    } finally {
      state.close();
    }
  }
}
