/**
 * Electron entry: the only module (with preload.ts) that imports 'electron'. It creates the
 * window with the hardened settings, serves the renderer on app://securechat, builds the menu and
 * plugs Electron implementations into the app service's ports. All behaviour lives in
 * src-main/app (tested under plain Node) and in the small wiring modules beside this file.
 */
import { dirname, join } from 'node:path';
import { fileURLToPath, pathToFileURL } from 'node:url';
import {
  BrowserWindow,
  Menu,
  Notification,
  app,
  dialog,
  ipcMain,
  net,
  protocol,
  safeStorage,
  session,
  shell,
  utilityProcess,
} from 'electron';
import Store from 'electron-store';
import { EVENT_CHANNEL } from '../../src-shared/ipc-contract.js';
import { defaultEngineFactory } from '../app/engine-factory.js';
import { PKI_WORKER_FILE, PkiWorkerClient } from '../app/pki-client.js';
import { AppService } from '../app/service.js';
import { Settings } from '../app/settings.js';
import { startFailureReport } from '../app/start-failure.js';
import type { SettingsStore } from '../app/ports.js';
import {
  attentionPort,
  dialogPort,
  externalLinkPort,
  notificationPort,
  secretStoragePort,
  utilityRelayLauncher,
} from './electron-ports.js';
import { bindIpc, createSenderCheck } from './ipc-binding.js';
import { buildMenuTemplate } from './menu.js';
import {
  APP_INDEX_URL,
  APP_SCHEME,
  CONTENT_SECURITY_POLICY,
  hardenSession,
  hardenWebContents,
  isAppUrl,
  resolveAppFile,
  webPreferences,
} from './security.js';

const here = dirname(fileURLToPath(import.meta.url));
const RENDERER_ROOT = join(here, '../renderer');
const PRELOAD = join(here, '../preload/index.cjs');
const RELAY_ENTRY = join(here, 'relay-child.js');
// Opening bundles and creating groups run in this worker thread (electron-vite main entry 'pki-worker').
const PKI_WORKER = join(here, PKI_WORKER_FILE);
// Set by `electron-vite dev` only; a packaged app always loads app://securechat.
const DEV_URL = app.isPackaged ? undefined : process.env.ELECTRON_RENDERER_URL;

protocol.registerSchemesAsPrivileged([
  { scheme: APP_SCHEME, privileges: { standard: true, secure: true, supportFetchAPI: true } },
]);
app.enableSandbox();

let mainWindow: BrowserWindow | undefined;
let service: AppService | undefined;
let windowSettings: Settings | undefined;
const getWindow = (): BrowserWindow | undefined =>
  mainWindow && !mainWindow.isDestroyed() ? mainWindow : undefined;

if (!app.requestSingleInstanceLock()) {
  app.quit();
} else {
  app.on('second-instance', () => {
    const w = getWindow();
    if (w) {
      if (w.isMinimized()) w.restore();
      w.focus();
    }
  });
  app.on('web-contents-created', (_event, contents) => {
    hardenWebContents(contents, (url) => isAppUrl(url, DEV_URL));
  });
  app.on('window-all-closed', () => {
    if (process.platform !== 'darwin') app.quit();
  });
  let disposed = false;
  app.on('before-quit', (event) => {
    if (disposed || !service) return;
    event.preventDefault();
    disposed = true;
    void service.dispose().finally(() => app.quit());
  });
  app.on('activate', () => {
    if (!getWindow() && service) createWindow(windowSettings);
  });
  app
    .whenReady()
    .then(start)
    .catch((err: unknown) => {
      // Without this a failing start leaves no window and the error only in a terminal.
      const report = startFailureReport(err, app.getPath('userData'));
      console.error(report.title, err);
      dialog.showErrorBox(report.title, `${report.message}\n\n${report.detail}`);
      app.exit(1);
    });
}

async function start(): Promise<void> {
  hardenSession(session.defaultSession);
  protocol.handle(APP_SCHEME, async (request) => {
    const file = resolveAppFile(request.url, RENDERER_ROOT);
    if (!file) return new Response('Not found', { status: 404 });
    const response = await net.fetch(pathToFileURL(file).toString());
    const headers = new Headers(response.headers);
    headers.set('Content-Security-Policy', CONTENT_SECURITY_POLICY);
    headers.set('X-Content-Type-Options', 'nosniff');
    return new Response(response.body, { status: response.status, headers });
  });

  const store = new Store<Record<string, unknown>>({ name: 'settings' });
  const settingsStore: SettingsStore = {
    get: (key) => store.get(key),
    set: (key, value) => store.set(key, value),
    delete: (key) => store.delete(key),
  };
  const appService = await AppService.create({
    dialogs: dialogPort(dialog, getWindow),
    settings: settingsStore,
    notifications: notificationPort(Notification, getWindow, (group) => service?.showGroup(group)),
    attention: attentionPort(app, getWindow),
    links: externalLinkPort(shell),
    secrets: secretStoragePort(safeStorage, process.platform),
    relayLauncher: utilityRelayLauncher(
      (modulePath, args, options) => utilityProcess.fork(modulePath, args, options),
      RELAY_ENTRY,
    ),
    pki: new PkiWorkerClient(PKI_WORKER),
    engineFactory: defaultEngineFactory(),
    dataDir: join(app.getPath('userData'), 'identity'),
    appInfo: { name: app.getName(), version: app.getVersion(), platform: process.platform },
  });
  service = appService;

  bindIpc(
    ipcMain,
    appService,
    createSenderCheck({
      windowContentsId: () => getWindow()?.webContents.id,
      isAppUrl: (url) => isAppUrl(url, DEV_URL),
    }),
  );
  appService.on((event) => getWindow()?.webContents.send(EVENT_CHANNEL, event));

  Menu.setApplicationMenu(
    Menu.buildFromTemplate(
      buildMenuTemplate(
        {
          open: (action) => {
            getWindow()?.show();
            appService.requestMenuAction(action);
          },
          stopRelay: () => void appService.stopRelay(),
          disconnect: () => void appService.disconnect(),
          quit: () => app.quit(),
        },
        process.platform,
      ),
    ),
  );
  windowSettings = new Settings(settingsStore);
  createWindow(windowSettings);
}

function createWindow(settings?: Settings): void {
  const bounds = settings?.get('windowBounds');
  const window = new BrowserWindow({
    width: bounds?.width ?? 1180,
    height: bounds?.height ?? 780,
    ...(bounds?.x !== undefined && bounds.y !== undefined ? { x: bounds.x, y: bounds.y } : {}),
    minWidth: 760,
    minHeight: 520,
    show: false,
    title: 'SecureChat-X',
    backgroundColor: '#0f1115',
    autoHideMenuBar: false,
    webPreferences: webPreferences(PRELOAD),
  });
  mainWindow = window;
  if (bounds?.maximized) window.maximize();
  window.once('ready-to-show', () => window.show());
  // The title carries the unread count (attentionPort): the page's <title> must not replace it.
  window.on('page-title-updated', (event) => event.preventDefault());
  window.on('focus', () => service?.windowFocus(true));
  window.on('blur', () => service?.windowFocus(false));
  window.on('close', () => {
    if (!settings) return;
    const b = window.getNormalBounds();
    settings.set('windowBounds', {
      x: b.x,
      y: b.y,
      width: Math.max(200, b.width),
      height: Math.max(200, b.height),
      maximized: window.isMaximized(),
    });
  });
  window.on('closed', () => {
    if (mainWindow === window) mainWindow = undefined;
  });
  void window.loadURL(DEV_URL ?? APP_INDEX_URL);
}
