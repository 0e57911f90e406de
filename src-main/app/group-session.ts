/**
 * One group in the app (issue 12, item 2): its identity (identity-keeper.ts), its connection and
 * what the window sees of it (chat-session.ts with member-list.ts and timeline.ts), its stored
 * history (history-reader.ts) and the organiser's tools (organiser.ts). Each
 * group has its own event hub: the service forwards the events of the group the window shows and
 * keeps only a summary of the others (connection, unread) for the sidebar.
 */
import type { LocalIdentity } from '../core/pki/local-identity.js';
import type { AppEvent } from '../../src-shared/ipc-contract.js';
import type { GroupSummary } from '../../src-shared/model.js';
import { ChatSession } from './chat-session.js';
import { EventHub } from './event-hub.js';
import type { FileChoices } from './file-choices.js';
import { HistoryReader } from './history-reader.js';
import { IdentityKeeper } from './identity-keeper.js';
import type { KeptIdentities } from './kept-identities.js';
import { MemberList } from './member-list.js';
import type { AppMemberState } from './member-state.js';
import { Organiser } from './organiser.js';
import type { AppServicePorts } from './ports.js';
import type { Settings } from './settings.js';
import { Timeline } from './timeline.js';

export interface GroupSessionDeps {
  ports: AppServicePorts;
  settings: Settings;
  kept: KeptIdentities;
  choices: FileChoices;
  memberState: AppMemberState;
  /** A live message from another member (notifications, unread counts). */
  onIncoming: (session: GroupSession, from: string, text: string) => void;
  /** Something the sidebar shows changed (connection, identity state). */
  onSummaryChanged: (session: GroupSession) => void;
}

export class GroupSession {
  /** `<group id>/<name>`. */
  readonly id: string;
  /** This group's events; the service forwards them while the window shows this group. */
  readonly hub = new EventHub();
  readonly identity: IdentityKeeper;
  readonly timeline: Timeline;
  readonly history: HistoryReader;
  readonly members: MemberList;
  readonly chat: ChatSession;
  readonly organiser: Organiser;
  readonly #deps: GroupSessionDeps;

  constructor(id: string, deps: GroupSessionDeps) {
    this.id = id;
    this.#deps = deps;
    const { ports, kept, choices, memberState, settings } = deps;
    const hub = this.hub;
    const selfName = (): string | undefined => this.identity.current?.name;
    this.timeline = new Timeline(hub);
    this.history = new HistoryReader({ memberState, openSession: (owner) => this.chat.sessionFor(owner) });
    this.members = new MemberList({
      marks: {
        get: () => ({ ...(kept.get(id)?.verified ?? {}) }),
        set: (verified) => kept.update(id, { verified }),
      },
      hub,
      timeline: this.timeline,
      selfName,
    });
    this.identity = new IdentityKeeper({
      ports,
      hub,
      kept,
      owner: id,
      memberState,
      onOpened: (identity) => this.chat.showStoredHistory(identity),
    });
    this.chat = new ChatSession({
      ports,
      rememberAddress: ([relayAddress, ...relayFallbacks]) => {
        if (!relayAddress) return;
        kept.update(id, { relayAddress, relayFallbacks });
        // The last address used anywhere is where a new group's connect panel starts.
        settings.set('relayAddress', relayAddress);
        hub.emit({ type: 'settings', settings: this.settingsView() });
      },
      hub,
      memberState,
      members: this.members,
      timeline: this.timeline,
      history: this.history,
      selfName,
      onIncoming: (from, text) => deps.onIncoming(this, from, text),
    });
    this.organiser = new Organiser({
      ports,
      settings,
      hub,
      choices,
      stores: this.history,
      identity: () => this.identity.require(),
      offerRoster: (bytes) => this.chat.offerRoster(bytes),
      linkUp: () => this.chat.linkUp,
    });
    hub.on((event) => this.#follow(event));
  }

  /** The group's name: its CA's, or as kept while the identity is locked. */
  get groupName(): string {
    return this.identity.current?.ca.name ?? this.#deps.kept.get(this.id)?.groupName ?? 'Group';
  }

  summary(unread: number): GroupSummary {
    const state = this.identity.state;
    const connection = this.chat.connection;
    const member =
      state.status === 'ready' ? state.identity.name : state.status === 'locked' ? state.name : '';
    return {
      id: this.id,
      groupName: this.groupName,
      member,
      status: state.status === 'ready' ? 'ready' : 'locked',
      connection: connection.state,
      ...(connection.cause !== undefined ? { cause: connection.cause } : {}),
      unread,
    };
  }

  /** The settings as the window sees them while this group is shown: its own relay addresses. */
  settingsView(): ReturnType<Settings['view']> {
    const view = this.#deps.settings.view();
    const kept = this.#deps.kept.get(this.id);
    const relayAddress = kept?.relayAddress ?? view.relayAddress;
    const relayFallbacks = kept?.relayFallbacks ?? [];
    return {
      ...view,
      ...(relayAddress ? { relayAddress } : {}),
      ...(relayFallbacks.length > 0 ? { relayFallbacks } : {}),
    };
  }

  /** The identity of this group, open. */
  require(): LocalIdentity {
    return this.identity.require();
  }

  async dispose(): Promise<void> {
    await this.chat.dispose();
    this.hub.clear();
  }

  #follow(event: AppEvent): void {
    switch (event.type) {
      case 'members':
        this.organiser.membersOnline(event.members.map((m) => m.name));
        break;
      case 'identity':
        this.organiser.refresh();
        this.#deps.onSummaryChanged(this);
        break;
      case 'state':
        this.#deps.onSummaryChanged(this);
        break;
      case 'line':
        if (event.line.kind === 'system' && event.line.event === 'roster') this.organiser.refresh();
        break;
      default:
        break;
    }
  }
}
