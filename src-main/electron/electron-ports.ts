/**
 * The app service's ports, implemented with Electron APIs. Each takes the Electron module it
 * wraps as a parameter; only main.ts imports 'electron'.
 */
import type {
  App,
  BrowserWindow,
  Dialog,
  Notification as ElectronNotification,
  NotificationConstructorOptions,
  SafeStorage,
  Shell,
  UtilityProcess,
} from 'electron';
import type {
  AttentionPort,
  DialogPort,
  ExternalLinkPort,
  NotificationPort,
  RelayChildMessage,
  RelayLauncher,
  RelayProcess,
  SecretStoragePort,
} from '../app/ports.js';
import { parseRelayChildMessage, relayLaunchSpec } from '../app/relay-messages.js';
import { windowTitle } from '../app/unread.js';

export function dialogPort(
  dialog: Pick<Dialog, 'showOpenDialog'>,
  getWindow: () => BrowserWindow | undefined,
): DialogPort {
  const BUNDLE_DIALOG_TITLES = {
    identity: 'Choose your certificate bundle',
    relay: 'Choose the relay’s certificate bundle',
    ca: 'Choose the group’s CA bundle (ca.p12)',
  } as const;
  return {
    async openBundle(purpose) {
      const options = {
        title: BUNDLE_DIALOG_TITLES[purpose],
        buttonLabel: 'Choose',
        filters: [
          { name: 'Certificate bundles', extensions: ['p12', 'pfx'] },
          { name: 'All files', extensions: ['*'] },
        ],
        properties: ['openFile' as const],
      };
      const window = getWindow();
      const result = window
        ? await dialog.showOpenDialog(window, options)
        : await dialog.showOpenDialog(options);
      return result.canceled ? null : (result.filePaths[0] ?? null);
    },
    async chooseFolder() {
      const options = {
        title: 'Choose a folder for the new group’s files',
        buttonLabel: 'Use this folder',
        properties: ['openDirectory' as const, 'createDirectory' as const],
      };
      const window = getWindow();
      const result = window
        ? await dialog.showOpenDialog(window, options)
        : await dialog.showOpenDialog(options);
      return result.canceled ? null : (result.filePaths[0] ?? null);
    },
  };
}

/** The system browser. The service (external-links.ts) validated the URL before this is called. */
export function externalLinkPort(shell: Pick<Shell, 'openExternal'>): ExternalLinkPort {
  return {
    openExternal: (url) => shell.openExternal(url, { activate: true }),
  };
}

export function secretStoragePort(
  safeStorage: Pick<
    SafeStorage,
    'isEncryptionAvailable' | 'encryptString' | 'decryptString' | 'getSelectedStorageBackend'
  >,
  platform: string,
): SecretStoragePort {
  return {
    isAvailable() {
      if (!safeStorage.isEncryptionAvailable()) return false;
      // On Linux without a keyring Chromium falls back to a hard-coded key: that is not at-rest protection.
      if (platform === 'linux' && safeStorage.getSelectedStorageBackend() === 'basic_text') return false;
      return true;
    },
    encryptString: (plain) => safeStorage.encryptString(plain),
    decryptString: (encrypted) => safeStorage.decryptString(Buffer.from(encrypted)),
  };
}

export function notificationPort(
  Notification: {
    new (options: NotificationConstructorOptions): ElectronNotification;
    isSupported(): boolean;
  },
  getWindow: () => BrowserWindow | undefined,
  /** A click on a group's notification: the window shows that group. */
  onClick: (group: string) => void = () => undefined,
): NotificationPort {
  // The one notification shown per group: the next one for the group replaces it.
  const shown = new Map<string, ElectronNotification>();
  return {
    notify({ group, title, body }) {
      const window = getWindow();
      if (window?.isFocused()) return;
      if (!Notification.isSupported()) return;
      shown.get(group)?.close();
      const notification = new Notification({ title, body, silent: false });
      shown.set(group, notification);
      notification.on('close', () => {
        if (shown.get(group) === notification) shown.delete(group);
      });
      notification.on('click', () => {
        const w = getWindow();
        if (w) {
          if (w.isMinimized()) w.restore();
          w.focus();
        }
        onClick(group);
      });
      notification.show();
    },
  };
}

/** Unread counts in the window title and the dock / taskbar badge (where the desktop has one). */
export function attentionPort(
  app: Pick<App, 'setBadgeCount'>,
  getWindow: () => BrowserWindow | undefined,
): AttentionPort {
  return {
    setUnread(count) {
      getWindow()?.setTitle(windowTitle(count));
      app.setBadgeCount(count);
    },
  };
}

/** The bundled relay in an Electron utility process (a Node child without the app's privileges). */
export function utilityRelayLauncher(
  fork: (
    modulePath: string,
    args: string[],
    options: { serviceName: string; stdio: 'ignore' | 'inherit' | 'pipe'; env: Record<string, string> },
  ) => UtilityProcess,
  entryPath: string,
): RelayLauncher {
  return {
    launch(options): RelayProcess {
      const spec = relayLaunchSpec(options, process.env);
      const child = fork(entryPath, spec.args, {
        serviceName: 'SecureChat-X relay',
        stdio: 'inherit',
        env: spec.env,
      });
      const messageListeners: ((m: RelayChildMessage) => void)[] = [];
      const exitListeners: ((code: number | null, signal: string | null) => void)[] = [];
      let exited = false;
      let exitWaiters: (() => void)[] = [];
      child.on('message', (raw: unknown) => {
        const message = parseRelayChildMessage(raw);
        if (message) for (const l of messageListeners) l(message);
      });
      child.once('exit', (code: number) => {
        exited = true;
        for (const l of exitListeners) l(code, null);
        for (const w of exitWaiters) w();
        exitWaiters = [];
      });
      return {
        get pid() {
          return child.pid;
        },
        onMessage: (l) => void messageListeners.push(l),
        onExit: (l) => void exitListeners.push(l),
        stop: () =>
          new Promise<void>((resolve) => {
            if (exited) return resolve();
            exitWaiters.push(resolve);
            child.postMessage({ type: 'stop' });
            setTimeout(() => {
              if (!exited) child.kill();
            }, 5_000).unref();
          }),
      };
    },
  };
}
