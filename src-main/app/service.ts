/**
 * The desktop app's service: everything the window can ask for, in plain Node (no electron
 * import). The Electron shell binds it to IPC; the browser tests bind it to Playwright pages.
 *
 * Every public method returns the contract's Result union and never throws. Events for the
 * window go to the listeners registered with on(). Opening bundles and creating groups run in the
 * PKI worker thread (ports.pki), never on this event loop.
 *
 * This class is the IPC-facing facade over the groups the app holds (group-sessions.ts: one
 * group-session.ts per kept identity; the window shows one, the active group, and a sidebar lists
 * them all). The work is done by:
 * - identity-keeper.ts, kept-identities.ts: keeping, unlock and removal of each identity;
 * - chat-session.ts: the chat engine and its connection (with member-list.ts, the members and
 *   their verification, and timeline-projection.ts, the key and the chat lines of timeline.ts);
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
import { charactersOverLimit, MAX_MESSAGE_CHARS, tooLongReason } from '../../src-shared/limits.js';
import type { AppSnapshot, OrganiserView } from '../../src-shared/model.js';
import { openBundle, readBundleFile } from './bundle-files.js';
import { AppFailure, toResult } from './errors.js';
import { EventHub } from './event-hub.js';
import { openExternalLink } from './external-links.js';
import { FileChoices } from './file-choices.js';
import { createGroupFiles } from './group-files.js';
import { GroupSessions } from './group-sessions.js';
import { ownerOf } from './history-reader.js';
import { KeptIdentities, ownerKey } from './kept-identities.js';
import { AppMemberState } from './member-state.js';
import type { AppServicePorts } from './ports.js';
import { RelayControl } from './relay-control.js';
import { Settings } from './settings.js';
import { UnreadCounts } from './unread.js';
import { WindowAttention } from './window-attention.js';

export { describeConnectionReason } from './engine-views.js';

/** MessageTooLong (the reason in words, details = [limit, length]) for a message over the limit. */
function checkMessageLength(text: string): void {
  const over = charactersOverLimit(text);
  if (over > 0)
    throw new AppFailure('MessageTooLong', tooLongReason(over), [
      String(MAX_MESSAGE_CHARS),
      String(text.length),
    ]);
}

export class AppService implements ServiceApi {
  readonly #ports: AppServicePorts;
  readonly #settings: Settings;
  /** The window's events: the active group's, forwarded, and the app's own. */
  readonly #hub = new EventHub();
  readonly #choices = new FileChoices();
  /** The identities' state stores (member-state.ts); each open while its group's engine runs. */
  readonly #memberState: AppMemberState;
  readonly #kept: KeptIdentities;
  readonly #groups: GroupSessions;
  readonly #relay: RelayControl;
  readonly #unread: UnreadCounts;

  private constructor(ports: AppServicePorts) {
    this.#ports = ports;
    const settings = (this.#settings = new Settings(ports.settings));
    const memberState = (this.#memberState = new AppMemberState({
      dataDir: ports.dataDir,
      settings,
      secrets: ports.secrets,
    }));
    const kept = (this.#kept = new KeptIdentities(settings));
    this.#unread = new UnreadCounts(ports.attention ?? { setUnread: () => undefined });
    this.#groups = new GroupSessions({
      session: { ports, settings, kept, choices: this.#choices, memberState },
      settings,
      hub: this.#hub,
      unread: this.#unread,
      attention: new WindowAttention({ notifications: ports.notifications, settings }),
    });
    this.#relay = new RelayControl({ ports, settings, hub: this.#hub, choices: this.#choices });
  }

  /** Creates the service and reopens the kept identities (without a prompt when the keystore can). */
  static async create(ports: AppServicePorts): Promise<AppService> {
    const service = new AppService(ports);
    const groups = service.#groups;
    service.#kept.migrate();
    for (const kept of service.#kept.list()) {
      const group = groups.add(ownerKey(kept));
      await group.identity.restore();
      if (!service.#kept.get(group.id)) groups.drop(group);
    }
    groups.restoreActive();
    return service;
  }

  // ---- events ------------------------------------------------------------------------------

  on(listener: AppEventListener): () => void {
    return this.#hub.on(listener);
  }

  /** For the shell: the window gained or lost focus (unread counts reset on focus). */
  windowFocus(focused: boolean): void {
    this.#groups.focus(focused);
  }

  /** For the shell: a group's notification was clicked; the window shows that group. */
  showGroup(id: string): void {
    const group = this.#groups.get(id);
    if (group) this.#groups.activate(group);
  }

  /** Unread messages of every group (the title and badge show it). */
  get unreadCount(): number {
    return this.#unread.total;
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
    const group = this.#groups.active;
    const key = group?.chat.key;
    const organiser = this.#organiserView();
    return {
      app: {
        ...this.#ports.appInfo,
        secretStorageAvailable: this.#secretsAvailable(),
      },
      groups: this.#groups.summaries(),
      ...(group ? { activeGroup: group.id } : {}),
      identity: group?.identity.state ?? { status: 'none' },
      connection: group?.chat.connection ?? { state: 'Disconnected' },
      members: group?.members.entries ?? [],
      ...(key ? { key } : {}),
      timeline: group?.timeline.recent() ?? [],
      warnings: [...(group?.members.warnings ?? [])],
      relay: this.#relay.view,
      settings: group?.settingsView() ?? this.#settings.view(),
      ...(organiser ? { organiser } : {}),
    };
  }

  /** The organiser's view, if the CA bundle is open; a roster that cannot be read shows none. */
  #organiserView(): OrganiserView | undefined {
    try {
      return this.#groups.active?.organiser.view();
    } catch {
      return undefined;
    }
  }

  #secretsAvailable(): boolean {
    try {
      return this.#ports.secrets.isAvailable();
    } catch {
      return false;
    }
  }

  async updateSettings(arg: Args<'updateSettings'>): Promise<Result<Responses['updateSettings']>> {
    return toResult(() => {
      if (arg.theme !== undefined) this.#settings.set('theme', arg.theme);
      if (arg.notifications !== undefined) this.#settings.set('notifications', arg.notifications);
      if (arg.notificationPreviews !== undefined)
        this.#settings.set('notificationPreviews', arg.notificationPreviews);
      const settings = this.#groups.active?.settingsView() ?? this.#settings.view();
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

  // ---- groups & identities ------------------------------------------------------------------

  async switchGroup(arg: Args<'switchGroup'>): Promise<Result<Responses['switchGroup']>> {
    return toResult(() => {
      const group = this.#groups.get(arg.id);
      if (!group) throw new AppFailure('InvalidArgument', 'This group is not in the app (any more).');
      this.#groups.activate(group);
      return this.snapshot();
    });
  }

  /**
   * Imports the chosen bundle: another group's is added to the app (and shown), the same
   * identity's again replaces its bundle (refused while that group is connected).
   */
  async importIdentity(arg: Args<'importIdentity'>): Promise<Result<Responses['importIdentity']>> {
    return toResult(async () => {
      const data = await readBundleFile(this.#choices.resolve(arg.token, 'bundle'));
      try {
        const identity = await openBundle(this.#ports.pki, data, arg.password, 'member');
        const id = ownerOf(identity);
        const existing = this.#groups.get(id);
        existing?.chat.assertNotConnected('importing this identity again');
        const group = existing ?? this.#groups.add(id);
        try {
          const view = await group.identity.adopt(identity, data, arg.password);
          this.#choices.forget(arg.token);
          this.#groups.activate(group);
          // The window starts over with this group's parts (the renderer reloads its snapshot).
          if (!existing) this.#hub.emit({ type: 'identity', identity: group.identity.state });
          return view;
        } catch (err) {
          if (!existing) this.#groups.drop(group);
          throw err;
        }
      } finally {
        data.fill(0);
      }
    }, 'identity');
  }

  async unlockIdentity(arg: Args<'unlockIdentity'>): Promise<Result<Responses['unlockIdentity']>> {
    return toResult(() => this.#groups.require().identity.unlock(arg), 'identity');
  }

  /** Removes the shown group's identity and its history; the next group is shown. */
  async removeIdentity(): Promise<Result<null>> {
    return toResult(async () => {
      const group = this.#groups.require();
      await group.chat.stop('identity removed');
      await group.identity.remove();
      this.#groups.drop(group);
      this.#groups.settle();
      return null;
    });
  }

  // ---- connection & chat -------------------------------------------------------------------

  async connect(arg: Args<'connect'>): Promise<Result<Responses['connect']>> {
    return toResult(() => {
      const group = this.#groups.require();
      const relays = [{ host: arg.host, port: arg.port }, ...(arg.fallbacks ?? [])] as const;
      const seen = new Set(relays.map((r) => `${r.host.toLowerCase()}:${r.port}`));
      if (seen.size < relays.length)
        throw new AppFailure('InvalidArgument', 'A relay address is listed twice.');
      return group.chat.connect(group.require(), relays);
    });
  }

  async disconnect(): Promise<Result<null>> {
    return toResult(async () => {
      await this.#groups.require().chat.disconnect();
      return null;
    });
  }

  async send(arg: Args<'send'>): Promise<Result<Responses['send']>> {
    return toResult(() => {
      // Too long is said first, whatever else stands in the way.
      checkMessageLength(arg.text);
      return { localId: this.#groups.require().chat.send(arg.text) };
    });
  }

  async rekey(): Promise<Result<null>> {
    return toResult(() => {
      this.#groups.require().chat.rekey();
      return null;
    });
  }

  // ---- history -----------------------------------------------------------------------------

  async historyPage(arg: Args<'historyPage'>): Promise<Result<Responses['historyPage']>> {
    return toResult(() => {
      const group = this.#groups.require();
      return group.history.older(group.require(), arg.beforeId, arg.limit);
    });
  }

  async searchHistory(arg: Args<'searchHistory'>): Promise<Result<Responses['searchHistory']>> {
    return toResult(() => {
      const group = this.#groups.require();
      return { lines: group.history.search(group.require(), arg.text, arg.limit) };
    });
  }

  async latestLines(): Promise<Result<Responses['latestLines']>> {
    return toResult(() => this.#groups.require().timeline.recent());
  }

  // ---- members & verification --------------------------------------------------------------

  async setVerified(arg: Args<'setVerified'>): Promise<Result<Responses['setVerified']>> {
    return toResult(() => this.#groups.require().members.setVerified(arg));
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

  // ---- organiser tools ----------------------------------------------------------------------

  async openGroupCa(arg: Args<'openGroupCa'>): Promise<Result<Responses['openGroupCa']>> {
    return toResult(() => this.#groups.require().organiser.open(arg));
  }

  async closeGroupCa(): Promise<Result<null>> {
    return toResult(() => {
      this.#groups.require().organiser.close();
      return null;
    });
  }

  async addMember(arg: Args<'addMember'>): Promise<Result<Responses['addMember']>> {
    return toResult(() => this.#groups.require().organiser.addMember(arg));
  }

  async removeMember(arg: Args<'removeMember'>): Promise<Result<Responses['removeMember']>> {
    return toResult(() => this.#groups.require().organiser.removeMember(arg));
  }

  async openExternal(arg: Args<'openExternal'>): Promise<Result<null>> {
    return toResult(() => openExternalLink(this.#ports.links, arg.url));
  }

  // ---- lifecycle ---------------------------------------------------------------------------

  /** Stops every group's engine and the relay (app quit). */
  async dispose(): Promise<void> {
    for (const group of this.#groups.all()) await group.dispose();
    this.#memberState.lock();
    if (this.#relay.running) await this.stopRelay();
    await this.#ports.pki.close().catch(() => undefined);
    this.#hub.clear();
  }
}
