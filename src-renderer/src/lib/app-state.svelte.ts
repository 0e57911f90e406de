/**
 * The renderer's state: a snapshot from the main process, kept current by its events.
 * The renderer only ever talks to window.securechat (the IPC contract).
 */
import type {
  AppError,
  AppEvent,
  MenuAction,
  Result,
  SecureChatApi,
} from '../../../src-shared/ipc-channels.js';
import type {
  AppInfo,
  AppSnapshot,
  ChatLine,
  ConnectionView,
  FingerprintWarning,
  GroupSummary,
  IdentityState,
  KeyView,
  MemberEntry,
  OrganiserView,
  RelayView,
  SettingsView,
} from '../../../src-shared/model.js';
import { HISTORY_PAGE_LINES } from '../../../src-shared/limits.js';
import { Announcer } from './announcer.svelte.js';
import {
  applyLine,
  oldestHistoryId,
  prependOlder,
  startWindow,
  type TimelineWindow,
} from './timeline-window.js';

/** Messages shown around a search result: it sits in the middle of them. */
const CONTEXT_LINES = 50;

export interface Toast {
  id: number;
  kind: 'error' | 'info';
  title: string;
  message: string;
}

export class AppState {
  readonly api: SecureChatApi | undefined;
  loaded = $state(false);
  loadError = $state<string | undefined>(undefined);
  app = $state<AppInfo | undefined>(undefined);
  identity = $state<IdentityState>({ status: 'none' });
  connection = $state<ConnectionView>({ state: 'Disconnected' });
  /** When the current connection view arrived (ms since the epoch): the retry countdown starts there. */
  connectionAt = $state(Date.now());
  members = $state<MemberEntry[]>([]);
  key = $state<KeyView | undefined>(undefined);
  /** The bounded part of the chat the window holds (timeline-window.ts). */
  window = $state<TimelineWindow>(startWindow([]));
  /** An older page is being read from the history. */
  loadingOlder = $state(false);
  /** The line to bring into view and mark (a search result shown in its place). */
  focusLineId = $state<string | undefined>(undefined);
  warnings = $state<FingerprintWarning[]>([]);
  relay = $state<RelayView>({ status: 'stopped', memberCount: 0, members: [] });
  settings = $state<SettingsView>({ theme: 'system', notifications: true, notificationPreviews: false });
  toasts = $state<Toast[]>([]);
  /** Every group this app holds (the sidebar) and the one the window shows. */
  groups = $state<GroupSummary[]>([]);
  activeGroup = $state<string | undefined>(undefined);
  /** Counts the snapshots adopted: parts drawn from one (the connect form) start over with each. */
  snapshotSeq = $state(0);
  /** The organiser's view while the group's CA bundle is open (organiser.ts in main). */
  organiser = $state<OrganiserView | undefined>(undefined);
  /** The last menu action from the app menu, for App.svelte to open the matching dialog. */
  menu = $state<{ action: MenuAction; at: number } | undefined>(undefined);
  readonly announcer = new Announcer();
  #toastId = 0;

  constructor(api: SecureChatApi | undefined) {
    this.api = api;
  }

  get selfName(): string | undefined {
    return this.identity.status === 'ready' ? this.identity.identity.name : undefined;
  }

  get timeline(): readonly ChatLine[] {
    return this.window.lines;
  }

  get connected(): boolean {
    return !['Disconnected', 'Failed'].includes(this.connection.state);
  }

  async load(): Promise<void> {
    if (!this.api) {
      this.loadError = 'This page must be opened inside the SecureChat-X app.';
      return;
    }
    this.api.onEvent((event) => this.apply(event));
    const result = await this.api.getSnapshot();
    if (!result.ok) {
      this.loadError = result.error.message;
      return;
    }
    this.adopt(result.value);
  }

  /** Everything the window shows, from a snapshot: at load, and when another group is shown. */
  adopt(s: AppSnapshot): void {
    this.app = s.app;
    this.groups = s.groups;
    this.activeGroup = s.activeGroup;
    this.identity = s.identity;
    this.connection = s.connection;
    this.connectionAt = Date.now();
    this.members = s.members;
    this.key = s.key;
    this.window = startWindow(s.timeline, this.window);
    this.focusLineId = undefined;
    this.warnings = s.warnings;
    this.relay = s.relay;
    this.settings = s.settings;
    this.organiser = s.organiser;
    this.snapshotSeq += 1;
    this.loaded = true;
  }

  /** Shows another group of this app. */
  async switchTo(id: string): Promise<void> {
    if (id === this.activeGroup) return;
    const result = await this.call((api) => api.switchGroup({ id }));
    if (result.ok) this.adopt(result.value);
  }

  /** The main process shows another group (one was imported or removed): draw that one. */
  async #reload(): Promise<void> {
    const result = await this.call((api) => api.getSnapshot(), { quiet: true });
    if (result.ok) this.adopt(result.value);
  }

  apply(event: AppEvent): void {
    switch (event.type) {
      case 'state': {
        const { type: _t, ...view } = event;
        this.connection = view;
        this.connectionAt = Date.now();
        break;
      }
      case 'members':
        this.members = event.members;
        break;
      case 'fingerprint-changed': {
        const { type: _t, ...warning } = event;
        this.warnings = [...this.warnings.filter((w) => w.name !== warning.name), warning];
        this.announcer.alert(`Warning: ${warning.name}’s certificate changed since you verified it.`);
        break;
      }
      case 'key':
        this.key = event.key;
        break;
      case 'line': {
        const { window, added } = applyLine(this.window, event.line);
        this.window = window;
        if (added && event.line.kind === 'message') this.announcer.message(event.line.from, event.line.text);
        break;
      }
      case 'timeline':
        this.window = startWindow(event.lines, this.window);
        this.focusLineId = undefined;
        break;
      case 'relay':
        this.relay = event.relay;
        break;
      case 'identity':
        this.identity = event.identity;
        if (event.identity.status !== 'ready') {
          this.members = [];
          this.key = undefined;
        }
        break;
      case 'settings':
        this.settings = event.settings;
        break;
      case 'error':
        this.toast('error', titleFor(event.error), event.error.message);
        break;
      case 'menu':
        this.menu = { action: event.action, at: Date.now() };
        break;
      case 'organiser':
        this.organiser = event.organiser ?? undefined;
        break;
      case 'groups': {
        this.groups = event.groups;
        const shown = this.activeGroup;
        this.activeGroup = event.activeGroup;
        if (event.activeGroup !== shown) void this.#reload();
        break;
      }
    }
  }

  /** Scrolled to the top: the next older page from the history goes in above. */
  async loadOlder(): Promise<void> {
    const from = this.window;
    if (this.loadingOlder || !from.older || !this.api) return;
    this.loadingOlder = true;
    try {
      const beforeId = oldestHistoryId(from);
      const result = await this.call(
        (api) =>
          api.historyPage({ ...(beforeId !== undefined ? { beforeId } : {}), limit: HISTORY_PAGE_LINES }),
        { quiet: true },
      );
      // The window started over meanwhile (another identity, back to the latest): this page is not its.
      if (this.window.generation !== from.generation) return;
      this.window = result.ok
        ? prependOlder(this.window, result.value.lines, result.value.more)
        : { ...this.window, older: false };
    } finally {
      this.loadingOlder = false;
    }
  }

  /** Back to the newest lines after reading older history (the window is detached from them). */
  async showLatest(): Promise<void> {
    const result = await this.call((api) => api.latestLines());
    if (!result.ok) return;
    this.window = startWindow(result.value, this.window);
    this.focusLineId = undefined;
  }

  /** A search result in its place: the messages around it, it marked in the middle. */
  async showInContext(historyId: number): Promise<void> {
    const half = CONTEXT_LINES / 2;
    const result = await this.call((api) =>
      api.historyPage({ beforeId: historyId + half + 1, limit: CONTEXT_LINES }),
    );
    if (!result.ok) return;
    const around = startWindow(result.value.lines, this.window);
    // Newer lines than these exist (unless the page reached the newest): "Jump to latest" brings them.
    this.window = { ...around, older: result.value.more, detached: true };
    this.focusLineId = result.value.lines.find((l) => l.kind !== 'system' && l.historyId === historyId)?.id;
  }

  toast(kind: Toast['kind'], title: string, message: string): void {
    const id = ++this.#toastId;
    this.toasts = [...this.toasts.slice(-3), { id, kind, title, message }];
    setTimeout(() => this.dismiss(id), kind === 'error' ? 12_000 : 5_000);
  }

  dismiss(id: number): void {
    this.toasts = this.toasts.filter((t) => t.id !== id);
  }

  /** Calls the API; failures become a toast unless the caller shows them inline. */
  async call<T>(
    run: (api: SecureChatApi) => Promise<Result<T>>,
    options: { quiet?: boolean } = {},
  ): Promise<Result<T>> {
    if (!this.api) return { ok: false, error: { code: 'Internal', message: 'Not running inside the app.' } };
    let result: Result<T>;
    try {
      result = await run(this.api);
    } catch (err) {
      result = {
        ok: false,
        error: { code: 'Internal', message: err instanceof Error ? err.message : String(err) },
      };
    }
    if (!result.ok && !options.quiet) this.toast('error', titleFor(result.error), result.error.message);
    return result;
  }

  dismissWarning(name: string): void {
    this.warnings = this.warnings.filter((w) => w.name !== name);
  }
}

export function titleFor(error: AppError): string {
  switch (error.code) {
    case 'WrongPassword':
      return 'Wrong password';
    case 'NotABundle':
      return 'Not a certificate bundle';
    case 'RelayUnreachable':
      return 'Relay unreachable';
    case 'RelayFailed':
      return 'Relay problem';
    case 'UntrustedSender':
      return 'Request refused';
    case 'ChatError':
      return 'Message problem';
    case 'Removed':
      return 'Removed from the group';
    default:
      return 'Something went wrong';
  }
}
