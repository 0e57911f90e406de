/// <reference lib="dom" />
/**
 * The real Electron app, end to end (Playwright's Electron support): the same journey as the
 * browser suite, with alice in the packaged-style build (out/main, out/preload, out/renderer)
 * and bob and carol as app services in this Node process, all through one relay that alice
 * starts from her window (an Electron utility process).
 *
 * Runs only where an Electron binary is present: ELECTRON_PATH, or the binary that electron-vite
 * and `require('electron')` would use (src-main/launch/electron-runtime.ts), checked WITHOUT
 * triggering its download. Elsewhere every test is skipped and the reason is printed.
 */
import { existsSync, mkdirSync, mkdtempSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join, resolve } from 'node:path';
import { _electron as electron, expect, test, type ElectronApplication, type Page } from '@playwright/test';
import { findElectronRuntime } from '../../src-main/launch/electron-runtime.js';
import { METHODS } from '../../src-shared/ipc-contract.js';
import { makeTestGroup, TEST_PASSWORD, type TestGroup } from '../helpers/group.js';
import { createTestApp, importBundle, until, unwrap, type TestApp } from '../integration/app-harness.js';

const ROOT = resolve(import.meta.dirname, '../..');
const SHOTS = join(ROOT, 'test-results/electron');

// ELECTRON_PATH first: this suite hands the binary to Playwright itself.
const binary = findElectronRuntime(ROOT, process.env, ['ELECTRON_PATH', 'ELECTRON_EXEC_PATH']);
const SKIP_REASON = `no Electron binary on this machine (looked at ${binary.looked.join(', ')}); the real-Electron suite needs one (npm install on a machine that can download it, or ELECTRON_PATH)`;
if (!binary.path) {
  console.log(`[electron e2e] SKIPPED: ${SKIP_REASON}`);
}

test.describe.configure({ mode: 'serial' });
test.skip(!binary.path, SKIP_REASON);

let app: ElectronApplication;
let win: Page;
let group: TestGroup;
let bob: TestApp;
let carol: TestApp;
let relayPort = 0;

async function shot(name: string): Promise<void> {
  mkdirSync(SHOTS, { recursive: true });
  await win.screenshot({ path: join(SHOTS, `${name}.png`), animations: 'disabled' });
}

/** Native open dialogs answer with the queued paths (the dialog port calls dialog.showOpenDialog). */
async function queueDialogPaths(paths: string[]): Promise<void> {
  await app.evaluate(({ dialog }, queued) => {
    const queue = [...queued];
    const answer = async () => {
      const next = queue.shift();
      return next === undefined ? { canceled: true, filePaths: [] } : { canceled: false, filePaths: [next] };
    };
    (dialog as unknown as { showOpenDialog: typeof answer }).showOpenDialog = answer;
  }, paths);
}

test.beforeAll(async () => {
  if (!existsSync(join(ROOT, 'out/main/index.js'))) throw new Error('Run `npm run build` first.');
  group = makeTestGroup(['alice', 'bob', 'carol']);
  const userData = mkdtempSync(join(tmpdir(), 'scx-electron-'));
  app = await electron.launch({
    executablePath: binary.path,
    args: [ROOT, `--user-data-dir=${userData}`],
    env: { ...process.env, NODE_ENV: 'production' },
  });
  win = await app.firstWindow();
  await win.waitForLoadState('domcontentloaded');
  [bob, carol] = await Promise.all([createTestApp(), createTestApp()]);
  unwrap(await importBundle(bob, group.bundles.bob ?? '', TEST_PASSWORD));
  unwrap(await importBundle(carol, group.bundles.carol ?? '', TEST_PASSWORD));
});

test.afterAll(async () => {
  await bob?.service.dispose();
  await carol?.service.dispose();
  await app?.close();
});

test('the window is isolated: app:// origin, exactly the contract on window.securechat, no Node', async () => {
  expect(win.url()).toMatch(/^app:\/\/securechat\//);
  const surface = await win.evaluate(() => ({
    keys: Object.keys((window as unknown as { securechat: object }).securechat).sort(),
    require: typeof (globalThis as { require?: unknown }).require,
    process: typeof (globalThis as { process?: unknown }).process,
    opened: window.open('https://example.com') === null,
  }));
  expect(surface.keys).toEqual([...METHODS, 'onEvent'].sort());
  expect(surface.require).toBe('undefined');
  expect(surface.process).toBe('undefined');
  expect(surface.opened).toBe(true);
  const menu = await app.evaluate(({ Menu }) => Menu.getApplicationMenu()?.items.map((i) => i.label) ?? []);
  expect(menu).toEqual(expect.arrayContaining(['&File', '&Relay', '&Connection', '&Help']));
  await shot('01-onboarding');
});

test('a wrong password is refused in plain words; the right one imports alice', async () => {
  await queueDialogPaths([group.bundles.alice ?? '', group.bundles.alice ?? '']);
  await win.getByRole('button', { name: 'Choose file…' }).first().click();
  await win.getByTestId('import-password').fill('wrong');
  await win.getByTestId('import-submit').click();
  await expect(win.getByTestId('import-error')).toContainText('Wrong password');
  await shot('02-wrong-password');
  await win.getByTestId('import-password').fill(TEST_PASSWORD);
  await win.getByTestId('import-submit').click();
  await expect(win.getByTestId('identity-name')).toHaveText('alice');
});

test('alice starts the bundled relay (utility process) and everyone connects', async () => {
  await queueDialogPaths([group.relayBundle]);
  await win.getByTestId('relay-start-open').click();
  const dialog = win.getByTestId('relay-dialog');
  await dialog.getByRole('button', { name: 'Choose file…' }).click();
  await dialog.getByTestId('relay-password').fill(TEST_PASSWORD);
  await dialog.getByTestId('relay-port').fill('0');
  await dialog.getByTestId('relay-start').click();
  await expect(win.getByTestId('relay-status')).toHaveText('running');
  relayPort = Number(((await win.getByTestId('relay-address').textContent()) ?? '').split(':')[1]);
  expect(relayPort).toBeGreaterThan(0);

  await win.getByTestId('connect-host').fill('127.0.0.1');
  await win.getByTestId('connect-port').fill(String(relayPort));
  await win.getByTestId('connect').click();
  unwrap(await bob.service.connect({ host: '127.0.0.1', port: relayPort }));
  unwrap(await carol.service.connect({ host: '127.0.0.1', port: relayPort }));
  await expect(win.getByTestId('connection-indicator')).toHaveAttribute('data-state', 'Chatting');
  await expect(win.getByTestId('member')).toHaveCount(3);
  await until(() => bob.service.snapshot().key?.members.length === 3, 'bob keyed with three');
  await expect
    .poll(async () => win.getByTestId('safety-number').getAttribute('aria-label'))
    .toBe(`Safety number ${bob.service.snapshot().key?.safetyNumber}`);
  await expect(win.getByTestId('relay-count')).toHaveText('3');
  await shot('03-connected');
});

test('chat both ways, verify bob, carol leaves and the group re-keys', async () => {
  await win.getByTestId('composer').fill('Hello from Electron');
  await win.getByTestId('composer').press('Enter');
  await until(
    () =>
      bob.service.snapshot().timeline.some((l) => l.kind === 'message' && l.text === 'Hello from Electron'),
    'bob receives',
  );
  unwrap(await bob.service.send({ text: 'Hello back from Node' }));
  await expect(win.locator('[data-testid="message"][data-from="bob"]').last()).toContainText(
    'Hello back from Node',
  );

  const row = win.locator('[data-testid="member"][data-name="bob"]');
  await row.getByTestId('verify-toggle').click();
  await expect(row).toHaveAttribute('data-verified', 'true');

  unwrap(await carol.service.disconnect());
  await expect(win.locator('[data-testid="system-line"][data-event="left"]').last()).toContainText('carol');
  await expect(win.getByTestId('member')).toHaveCount(2);
  await expect(win.locator('[data-testid="system-line"][data-event="rekey"]').last()).toContainText(
    'New group key',
  );
  await shot('04-chat-and-rekey');
});
