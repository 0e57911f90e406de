/**
 * The groups the app holds (one GroupSession per kept identity) and which one the window shows.
 * Routes events: the shown group's go to the window's hub, the others' only change the sidebar's
 * summaries. Owns what spans groups: unread counts (summed for the title and badge), the
 * notifications, and whether the window is in front.
 */
import type { GroupSummary } from '../../src-shared/model.js';
import { AppFailure } from './errors.js';
import type { EventHub } from './event-hub.js';
import { GroupSession, type GroupSessionDeps } from './group-session.js';
import type { Settings } from './settings.js';
import type { UnreadCounts } from './unread.js';
import type { WindowAttention } from './window-attention.js';

export interface GroupSessionsDeps {
  /** What every group session shares (its own callbacks are added here). */
  session: Omit<GroupSessionDeps, 'onIncoming' | 'onSummaryChanged'>;
  settings: Settings;
  /** The window's events. */
  hub: EventHub;
  unread: UnreadCounts;
  attention: WindowAttention;
}

export class GroupSessions {
  readonly #deps: GroupSessionsDeps;
  /** In the order they were added. */
  readonly #groups = new Map<string, GroupSession>();
  #active: GroupSession | undefined;
  /** The window is in front (the shell says; true until it says otherwise). */
  #focused = true;

  constructor(deps: GroupSessionsDeps) {
    this.#deps = deps;
  }

  /** The group the window shows, if the app holds any. */
  get active(): GroupSession | undefined {
    return this.#active;
  }

  /** The group the window shows; NoIdentity when the app holds none. */
  require(): GroupSession {
    if (this.#active) return this.#active;
    throw new AppFailure('NoIdentity', 'Import your certificate bundle first.');
  }

  get(id: string): GroupSession | undefined {
    return this.#groups.get(id);
  }

  all(): IterableIterator<GroupSession> {
    return this.#groups.values();
  }

  /** At start: the group shown last time, else the first. */
  restoreActive(): void {
    const saved = this.#deps.settings.get('activeGroup');
    this.#active = (saved !== undefined ? this.#groups.get(saved) : undefined) ?? this.#first();
  }

  add(id: string): GroupSession {
    const group = new GroupSession(id, {
      ...this.#deps.session,
      onIncoming: (session, from, text) => this.incoming(session, from, text),
      onSummaryChanged: () => this.emitGroups(),
    });
    group.hub.on((event) => {
      if (group === this.#active) this.#deps.hub.emit(event);
    });
    this.#groups.set(id, group);
    return group;
  }

  /** Forgets the group (its identity is gone); the next one is shown, if any. */
  drop(group: GroupSession): void {
    this.#groups.delete(group.id);
    group.hub.clear();
    this.#markRead(group);
    if (this.#active !== group) return;
    this.#active = this.#first();
  }

  /** The window shows `group` now (its unread count resets while the window is in front). */
  activate(group: GroupSession): void {
    this.#active = group;
    this.#deps.settings.set('activeGroup', group.id);
    if (this.#focused) this.#markRead(group);
    this.emitGroups();
  }

  /** After a removal: the group now shown, or none left. */
  settle(): void {
    if (this.#active) return this.activate(this.#active);
    this.#deps.settings.delete('activeGroup');
    this.emitGroups();
  }

  /** The window gained or lost focus: the shown group's unread count resets on focus. */
  focus(focused: boolean): void {
    this.#focused = focused;
    this.#deps.attention.focus(focused);
    if (focused && this.#active) this.#markRead(this.#active);
  }

  summaries(): GroupSummary[] {
    return [...this.#groups.values()].map((g) => g.summary(this.#deps.unread.of(g.id)));
  }

  emitGroups(): void {
    this.#deps.hub.emit({
      type: 'groups',
      groups: this.summaries(),
      ...(this.#active ? { activeGroup: this.#active.id } : {}),
    });
  }

  /** A live message from another member in `group` (its chat session says): unread, notification. */
  incoming(group: GroupSession, from: string, text: string): void {
    if (this.#deps.unread.arrived(group.id, this.#focused && group === this.#active)) this.emitGroups();
    this.#deps.attention.incoming(from, text, { id: group.id, name: group.groupName });
  }

  #first(): GroupSession | undefined {
    return this.#groups.values().next().value;
  }

  #markRead(group: GroupSession): void {
    if (this.#deps.unread.read(group.id)) this.emitGroups();
  }
}
