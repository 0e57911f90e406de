/**
 * Real app services for tests under plain Node: settings in `conf` (a temporary cwd), the kept
 * bundle in a temporary data folder, the relay as a forked child and the PKI worker thread (both
 * out/node), the real ChatEngine.
 * Only the OS-facing ports are stand-ins: the dialog answers with paths the test queues, the
 * keystore is either absent or an in-memory AES key, notifications and opened links are recorded.
 */
import { createCipheriv, createDecipheriv, randomBytes } from 'node:crypto';
import { mkdtempSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join, resolve } from 'node:path';
import Conf from 'conf';
import { defaultEngineFactory } from '../../src-main/app/engine-factory.js';
import { forkRelayLauncher, noSecretStorage } from '../../src-main/app/node-ports.js';
import { PKI_WORKER_FILE, PkiWorkerClient } from '../../src-main/app/pki-client.js';
import type {
  AppServicePorts,
  DialogPort,
  ExternalLinkPort,
  RelayLauncher,
  SecretStoragePort,
  SettingsStore,
} from '../../src-main/app/ports.js';
import { AppService } from '../../src-main/app/service.js';
import type { AppEvent } from '../../src-shared/ipc-contract.js';

export const RELAY_CHILD_ENTRY = resolve(import.meta.dirname, '../../out/node/src-main/relay/child-entry.js');
/** The PKI worker as tsc builds it (next to pki-client.js in out/node). */
export const PKI_WORKER_ENTRY = resolve(import.meta.dirname, '../../out/node/src-main/app', PKI_WORKER_FILE);

/** A dialog port whose answers the test queues (a path, or null for "cancelled"). */
export class QueuedDialogs implements DialogPort {
  readonly bundles: (string | null)[] = [];
  readonly folders: (string | null)[] = [];
  async openBundle(): Promise<string | null> {
    return this.bundles.shift() ?? null;
  }
  async chooseFolder(): Promise<string | null> {
    return this.folders.shift() ?? null;
  }
}

/** Stands in for Electron shell.openExternal: records each URL it is asked to open, opens nothing. */
export class RecordingLinks implements ExternalLinkPort {
  readonly opened: string[] = [];
  async openExternal(url: string): Promise<void> {
    this.opened.push(url);
  }
}

/** Stands in for Electron safeStorage: AES-256-GCM under a key that lives in this process only. */
export function memorySecretStorage(): SecretStoragePort {
  const key = randomBytes(32);
  return {
    isAvailable: () => true,
    encryptString(plain) {
      const iv = randomBytes(12);
      const c = createCipheriv('aes-256-gcm', key, iv);
      const body = Buffer.concat([c.update(plain, 'utf8'), c.final()]);
      return Buffer.concat([iv, c.getAuthTag(), body]);
    },
    decryptString(data) {
      const buf = Buffer.from(data);
      const d = createDecipheriv('aes-256-gcm', key, buf.subarray(0, 12));
      d.setAuthTag(buf.subarray(12, 28));
      return Buffer.concat([d.update(buf.subarray(28)), d.final()]).toString('utf8');
    },
  };
}

export interface TestApp {
  service: AppService;
  dialogs: QueuedDialogs;
  events: AppEvent[];
  notifications: { group: string; title: string; body: string }[];
  /** Every unread count the service gave the attention port (title and badge), in order. */
  unreadCounts: number[];
  links: RecordingLinks;
  settings: SettingsStore;
  dataDir: string;
  settingsDir: string;
}

export interface TestAppOptions {
  secrets?: SecretStoragePort;
  /** Reuse folders (to restart "the same installation"). */
  dataDir?: string;
  settingsDir?: string;
  /** Another relay launcher (a test that kills the relay wraps the forked one to know its process). */
  relayLauncher?: RelayLauncher;
  /** The engine's reconnect backoff (default: 100 ms to 1 s). */
  backoff?: { initialMs: number; maxMs: number; jitter?: number };
}

/** The ports a test app runs on (also for tests of the service's parts on their own). */
export function testPorts(options: TestAppOptions = {}) {
  const dataDir = options.dataDir ?? mkdtempSync(join(tmpdir(), 'scx-app-data-'));
  const settingsDir = options.settingsDir ?? mkdtempSync(join(tmpdir(), 'scx-app-settings-'));
  const conf = new Conf<Record<string, unknown>>({ cwd: settingsDir, configName: 'settings' });
  const settings: SettingsStore = {
    get: (key) => conf.get(key),
    set: (key, value) => conf.set(key, value),
    delete: (key) => conf.delete(key),
  };
  const dialogs = new QueuedDialogs();
  const notifications: { group: string; title: string; body: string }[] = [];
  const unreadCounts: number[] = [];
  const links = new RecordingLinks();
  const ports: AppServicePorts = {
    dialogs,
    settings,
    notifications: { notify: (n) => notifications.push(n) },
    attention: { setUnread: (n) => unreadCounts.push(n) },
    links,
    secrets: options.secrets ?? noSecretStorage,
    relayLauncher: options.relayLauncher ?? forkRelayLauncher(RELAY_CHILD_ENTRY),
    pki: new PkiWorkerClient(PKI_WORKER_ENTRY),
    engineFactory: defaultEngineFactory({
      backoff: options.backoff ?? { initialMs: 100, maxMs: 1_000 },
      keyEstablishmentTimeoutMs: 8_000,
    }),
    dataDir,
    appInfo: { name: 'SecureChat-X', version: '0.0.0-test', platform: process.platform },
    kdfIterations: 10_000,
  };
  return { ports, dialogs, notifications, unreadCounts, links, settings, dataDir, settingsDir };
}

export async function createTestApp(options: TestAppOptions = {}): Promise<TestApp> {
  const { ports, dialogs, notifications, unreadCounts, links, settings, dataDir, settingsDir } =
    testPorts(options);
  const service = await AppService.create(ports);
  const events: AppEvent[] = [];
  service.on((e) => events.push(e));
  return { service, dialogs, events, notifications, unreadCounts, links, settings, dataDir, settingsDir };
}

/** Test apps made with `app()`, every one disposed by `disposeAll()` (in afterAll). */
export function testApps() {
  const apps: TestApp[] = [];
  return {
    apps,
    async app(options: TestAppOptions = {}): Promise<TestApp> {
      const created = await createTestApp(options);
      apps.push(created);
      return created;
    },
    disposeAll: () => Promise.all(apps.map((a) => a.service.dispose())),
  };
}

/** Polls until the condition holds; generous default, no timing assertions. */
export async function until(
  condition: () => boolean,
  what: string,
  timeoutMs = 45_000,
  intervalMs = 25,
): Promise<void> {
  const deadline = Date.now() + timeoutMs;
  while (!condition()) {
    if (Date.now() > deadline) throw new Error(`timed out waiting for ${what}`);
    await new Promise((r) => setTimeout(r, intervalMs));
  }
}

/** Result union → value, or a thrown error naming the failure. */
export function unwrap<T>(
  result: { ok: true; value: T } | { ok: false; error: { code: string; message: string } },
): T {
  if (!result.ok) throw new Error(`${result.error.code}: ${result.error.message}`);
  return result.value;
}

/** Picks a bundle through the dialog port and imports it. */
export async function importBundle(app: TestApp, path: string, password: string) {
  app.dialogs.bundles.push(path);
  const choice = unwrap(await app.service.chooseBundle({ purpose: 'identity' }));
  if (!choice) throw new Error('dialog cancelled');
  return app.service.importIdentity({ token: choice.token, password });
}

export async function startRelay(app: TestApp, path: string, password: string) {
  app.dialogs.bundles.push(path);
  const choice = unwrap(await app.service.chooseBundle({ purpose: 'relay' }));
  if (!choice) throw new Error('dialog cancelled');
  return app.service.startRelay({ token: choice.token, password, port: 0, host: '127.0.0.1' });
}
