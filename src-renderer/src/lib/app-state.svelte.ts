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
  ChatLine,
  ConnectionView,
  FingerprintWarning,
  IdentityState,
  KeyView,
  MemberEntry,
  RelayView,
  SettingsView,
} from '../../../src-shared/model.js';
import { Announcer } from './announcer.svelte.js';

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
  timeline = $state<ChatLine[]>([]);
  warnings = $state<FingerprintWarning[]>([]);
  relay = $state<RelayView>({ status: 'stopped', memberCount: 0, members: [] });
  settings = $state<SettingsView>({ theme: 'system', notifications: true, notificationPreviews: false });
  toasts = $state<Toast[]>([]);
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
    const s = result.value;
    this.app = s.app;
    this.identity = s.identity;
    this.connection = s.connection;
    this.connectionAt = Date.now();
    this.members = s.members;
    this.key = s.key;
    this.timeline = s.timeline;
    this.warnings = s.warnings;
    this.relay = s.relay;
    this.settings = s.settings;
    this.loaded = true;
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
        const index = this.timeline.findIndex((l) => l.id === event.line.id);
        if (index >= 0) this.timeline[index] = event.line;
        else {
          this.timeline.push(event.line);
          if (event.line.kind === 'message') this.announcer.message(event.line.from, event.line.text);
        }
        break;
      }
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
    }
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
