/**
 * The desktop app's service: everything the window can ask for, in plain Node (no electron
 * import). The Electron shell binds it to IPC; the browser tests bind it to Playwright pages.
 *
 * Every public method returns the contract's Result union and never throws. Events for the
 * window go to the listeners registered with on(). Opening bundles and creating groups run in the
 * PKI worker thread (ports.pki), never on this event loop.
 *
 * This class is the IPC-facing facade; the work is done by:
 * - identity-keeper.ts: bundle import, keeping, unlock and removal of the identity;
 * - chat-session.ts: the chat engine and what the window sees of it (with member-list.ts, the
 *   members and their verification, and timeline.ts, the chat lines);
 * - session-state.ts: the identity's durable state store for each engine session;
 * - history-reader.ts: the stored history the window pages through and searches;
 * - relay-control.ts: the relay the app runs itself;
 * - organiser.ts: the organiser's tools (the CA bundle, add and remove members, the roster);
 * - group-files.ts: "create group"; external-links.ts: a message's link in the system browser;
 * - window-attention.ts: unread counts (title, badge) and one notification per group;
 * - file-choices.ts: dialog paths behind one-use tokens; event-hub.ts: the window's events.
 */
import type {
  AppEvent,
  AppEventListener,
  Args,
  Responses,
  Result,
  ServiceApi,
} from '../../src-shared/ipc-contract.js';
import type { AppSnapshot, OrganiserView } from '../../src-shared/model.js';
import { ChatSession } from './chat-session.js';
import { toResult } from './errors.js';
import { EventHub } from './event-hub.js';
import { openExternalLink } from './external-links.js';
import { FileChoices } from './file-choices.js';
import { HistoryReader } from './history-reader.js';
import { createGroupFiles } from './group-files.js';
import { IdentityKeeper } from './identity-keeper.js';
import { MemberList } from './member-list.js';
import { Organiser } from './organiser.js';
import { AppMemberState } from './member-state.js';
import type { AppServicePorts } from './ports.js';
import { RelayControl } from './relay-control.js';
import { Settings } from './settings.js';
import { Timeline } from './timeline.js';
import { WindowAttention } from './window-attention.js';

export { describeConnectionReason } from './engine-views.js';

export class AppService implements ServiceApi {
  readonly #ports: AppServicePorts;
  readonly #settings: Settings;
  readonly #hub = new EventHub();
  readonly #choices = new FileChoices();
  /** The identity's state stores (member-state.ts); the one open while an engine runs. */
  readonly #memberState: AppMemberState;
  readonly #identity: IdentityKeeper;
  readonly #timeline: Timeline;
  readonly #history: HistoryReader;
  readonly #members: MemberList;
  readonly #chat: ChatSession;
  readonly #relay: RelayControl;
  readonly #attention: WindowAttention;
  readonly #organiser: Organiser;

  private constructor(ports: AppServicePorts) {
    this.#ports = ports;
    const settings = (this.#settings = new Settings(ports.settings));
    const hub = this.#hub;
    const choices = this.#choices;
    const memberState = (this.#memberState = new AppMemberState({
      dataDir: ports.dataDir,
      settings,
      secrets: ports.secrets,
    }));
    const selfName = (): string | undefined => this.#identity.current?.name;
    const timeline = (this.#timeline = new Timeline(hub));
    const history = (this.#history = new HistoryReader({
      memberState,
      openSession: (owner) => this.#chat.sessionFor(owner),
    }));
    const members = (this.#members = new MemberList({ settings, hub, timeline, selfName }));
    this.#identity = new IdentityKeeper({
      ports,
      settings,
      hub,
      choices,
      memberState,
      onGroupChanged: () => members.forgetChanges(),
      onOpened: (identity) => this.#chat.showStoredHistory(identity),
    });
    const attention = (this.#attention = new WindowAttention({
      notifications: ports.notifications,
      ...(ports.attention ? { attention: ports.attention } : {}),
      settings,
    }));
    this.#chat = new ChatSession({
      ports,
      settings,
      hub,
      memberState,
      members,
      timeline,
      history,
      selfName,
      onIncoming: (from, text, group) => attention.incoming(from, text, group),
    });
    this.#relay = new RelayControl({ ports, settings, hub, choices });
    const organiser = (this.#organiser = new Organiser({
      ports,
      settings,
      hub,
      choices,
      stores: history,
      identity: () => this.#identity.require(),
      offerRoster: (bytes) => this.#chat.offerRoster(bytes),
      linkUp: () => this.#chat.linkUp,
    }));
    // The organiser's view follows who is online, the roster and the identity.
    hub.on((event) => {
      if (event.type === 'members') organiser.membersOnline(event.members.map((m) => m.name));
      else if (event.type === 'identity') organiser.refresh();
      else if (event.type === 'line' && event.line.kind === 'system' && event.line.event === 'roster')
        organiser.refresh();
    });
  }

  /** Creates the service and reopens the kept identity (without a prompt when the keystore can). */
  static async create(ports: AppServicePorts): Promise<AppService> {
    const service = new AppService(ports);
    await service.#identity.restore();
    return service;
  }

  // ---- events ------------------------------------------------------------------------------

  on(listener: AppEventListener): () => void {
    return this.#hub.on(listener);
  }

  /** For the shell: the window gained or lost focus (unread counts reset on focus). */
  windowFocus(focused: boolean): void {
    this.#attention.focus(focused);
  }

  /** Messages that arrived while the window was not in front. */
  get unreadCount(): number {
    return this.#attention.unread;
  }

  /** For the shell's menu: asks the window to open one of its dialogs. */
  requestMenuAction(action: Extract<AppEvent, { type: 'menu' }>['action']): void {
    this.#hub.emit({ type: 'menu', action });
  }

  // ---- snapshot & settings -----------------------------------------------------------------

  async getSnapshot(): Promise<Result<Responses['getSnapshot']>> {
    return toResult(() => this.snapshot());
  }

  snapshot(): AppSnapshot {
    const key = this.#chat.key;
    const organiser = this.#organiserView();
    return {
      app: {
        ...this.#ports.appInfo,
        secretStorageAvailable: this.#identity.secretsAvailable(),
      },
      identity: this.#identity.state,
      connection: this.#chat.connection,
      members: this.#members.entries,
      ...(key ? { key } : {}),
      timeline: this.#timeline.recent(),
      warnings: [...this.#members.warnings],
      relay: this.#relay.view,
      settings: this.#settings.view(),
      ...(organiser ? { organiser } : {}),
    };
  }

  /** The organiser's view, if the CA bundle is open; a roster that cannot be read shows none. */
  #organiserView(): OrganiserView | undefined {
    try {
      return this.#organiser.view();
    } catch {
      return undefined;
    }
  }

  async updateSettings(arg: Args<'updateSettings'>): Promise<Result<Responses['updateSettings']>> {
    return toResult(() => {
      if (arg.theme !== undefined) this.#settings.set('theme', arg.theme);
      if (arg.notifications !== undefined) this.#settings.set('notifications', arg.notifications);
      if (arg.notificationPreviews !== undefined)
        this.#settings.set('notificationPreviews', arg.notificationPreviews);
      const settings = this.#settings.view();
      this.#hub.emit({ type: 'settings', settings });
      return settings;
    });
  }

  // ---- dialogs -----------------------------------------------------------------------------

  async chooseBundle(arg: Args<'chooseBundle'>): Promise<Result<Responses['chooseBundle']>> {
    return toResult(async () => {
      const path = await this.#ports.dialogs.openBundle(arg.purpose);
      return path === null ? null : this.#choices.remember(path, 'bundle');
    });
  }

  async chooseFolder(): Promise<Result<Responses['chooseFolder']>> {
    return toResult(async () => {
      const path = await this.#ports.dialogs.chooseFolder();
      return path === null ? null : this.#choices.remember(path, 'folder');
    });
  }

  // ---- identity ----------------------------------------------------------------------------

  async importIdentity(arg: Args<'importIdentity'>): Promise<Result<Responses['importIdentity']>> {
    return toResult(
      () => this.#identity.import(arg, () => this.#chat.assertNotConnected('changing your identity')),
      'identity',
    );
  }

  async unlockIdentity(arg: Args<'unlockIdentity'>): Promise<Result<Responses['unlockIdentity']>> {
    return toResult(() => this.#identity.unlock(arg), 'identity');
  }

  async removeIdentity(): Promise<Result<null>> {
    return toResult(async () => {
      await this.#chat.stop('identity removed');
      await this.#identity.remove();
      return null;
    });
  }

  // ---- connection & chat -------------------------------------------------------------------

  async connect(arg: Args<'connect'>): Promise<Result<Responses['connect']>> {
    return toResult(() => this.#chat.connect(this.#identity.require(), { host: arg.host, port: arg.port }));
  }

  async disconnect(): Promise<Result<null>> {
    return toResult(async () => {
      await this.#chat.disconnect();
      return null;
    });
  }

  async send(arg: Args<'send'>): Promise<Result<Responses['send']>> {
    return toResult(() => ({ localId: this.#chat.send(arg.text) }));
  }

  async rekey(): Promise<Result<null>> {
    return toResult(() => {
      this.#chat.rekey();
      return null;
    });
  }

  // ---- history -----------------------------------------------------------------------------

  async historyPage(arg: Args<'historyPage'>): Promise<Result<Responses['historyPage']>> {
    return toResult(() => this.#history.older(this.#identity.require(), arg.beforeId, arg.limit));
  }

  async searchHistory(arg: Args<'searchHistory'>): Promise<Result<Responses['searchHistory']>> {
    return toResult(() => ({ lines: this.#history.search(this.#identity.require(), arg.text, arg.limit) }));
  }

  async latestLines(): Promise<Result<Responses['latestLines']>> {
    return toResult(() => this.#timeline.recent());
  }

  // ---- members & verification --------------------------------------------------------------

  async setVerified(arg: Args<'setVerified'>): Promise<Result<Responses['setVerified']>> {
    return toResult(() => this.#members.setVerified(arg));
  }

  // ---- relay -------------------------------------------------------------------------------

  async startRelay(arg: Args<'startRelay'>): Promise<Result<Responses['startRelay']>> {
    return toResult(() => this.#relay.start(arg), 'relay');
  }

  async stopRelay(): Promise<Result<Responses['stopRelay']>> {
    return toResult(() => this.#relay.stop());
  }

  /** The relay child's process id while one runs (for logs and tests). */
  get relayProcessId(): number | undefined {
    return this.#relay.pid;
  }

  // ---- group creation ----------------------------------------------------------------------

  async createGroup(arg: Args<'createGroup'>): Promise<Result<Responses['createGroup']>> {
    return toResult(() => {
      const { folderToken, ...options } = arg;
      return createGroupFiles(this.#ports, this.#choices.resolve(folderToken, 'folder'), options);
    });
  }

  // ---- organiser tools ---------------------------------------------------------------------

  async openGroupCa(arg: Args<'openGroupCa'>): Promise<Result<Responses['openGroupCa']>> {
    return toResult(() => this.#organiser.open(arg));
  }

  async closeGroupCa(): Promise<Result<null>> {
    return toResult(() => {
      this.#organiser.close();
      return null;
    });
  }

  async addMember(arg: Args<'addMember'>): Promise<Result<Responses['addMember']>> {
    return toResult(() => this.#organiser.addMember(arg));
  }

  async removeMember(arg: Args<'removeMember'>): Promise<Result<Responses['removeMember']>> {
    return toResult(() => this.#organiser.removeMember(arg));
  }

  async openExternal(arg: Args<'openExternal'>): Promise<Result<null>> {
    return toResult(() => openExternalLink(this.#ports.links, arg.url));
  }

  // ---- lifecycle ---------------------------------------------------------------------------

  /** Stops the engine and the relay (app quit). */
  async dispose(): Promise<void> {
    await this.#chat.dispose();
    this.#memberState.lock();
    if (this.#relay.running) await this.stopRelay();
    await this.#ports.pki.close().catch(() => undefined);
    this.#hub.clear();
  }
}
