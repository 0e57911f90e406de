/// <reference lib="dom" />
/**
 * The header's connection indicator in a real browser: the built renderer bridged to a real app
 * service (alice), bob's service running a real relay (a forked child) and chatting with her.
 * Online while chatting; the relay killed (SIGKILL) → "Offline — retrying in N s", counting down;
 * the relay back on the same port → Online; the Connection details panel (a button with
 * aria-expanded) shows the stepper, the reason and the relay address.
 * Screenshots of each step: test-results/browser/connection-*.png.
 */
import { chromium, expect, test, type Browser, type BrowserContext, type Page } from '@playwright/test';
import { forkRelayLauncher } from '../../src-main/app/node-ports.js';
import type { RelayLauncher, RelayProcess } from '../../src-main/app/ports.js';
import type { AppEvent } from '../../src-shared/ipc-contract.js';
import { makeTestGroup, TEST_PASSWORD, type TestGroup } from '../helpers/group.js';
import {
  createTestApp,
  importBundle,
  RELAY_CHILD_ENTRY,
  unwrap,
  until,
  type TestApp,
} from '../integration/app-harness.js';
import {
  assertBuilt,
  bridgePage,
  chromiumPath,
  CHROMIUM_ARGS,
  screenshot,
  serveRenderer,
} from './support.js';

/** alice waits this long between tries, without jitter: the countdown has seconds to show. */
const RETRY_MS = 5_000;

let browser: Browser;
let server: Awaited<ReturnType<typeof serveRenderer>>;
let group: TestGroup;
let alice: TestApp;
let bob: TestApp;
let context: BrowserContext;
let page: Page;
let unbridge: () => void = () => undefined;
let relayProcess: RelayProcess | undefined;
let relayPort = 0;
const consoleErrors: string[] = [];

/** The forked relay launcher, remembering the process it started last (to kill it). */
const launcher: RelayLauncher = {
  launch(options) {
    relayProcess = forkRelayLauncher(RELAY_CHILD_ENTRY).launch(options);
    return relayProcess;
  },
};

async function startRelay(port: number): Promise<number> {
  bob.dialogs.bundles.push(group.relayBundle);
  const choice = unwrap(await bob.service.chooseBundle({ purpose: 'relay' }));
  if (!choice) throw new Error('dialog cancelled');
  const view = unwrap(
    await bob.service.startRelay({ token: choice.token, password: TEST_PASSWORD, port, host: '127.0.0.1' }),
  );
  if (view.port === undefined) throw new Error('the relay has no port');
  return view.port;
}

function bundle(name: string): string {
  const path = group.bundles[name];
  if (!path) throw new Error(`no bundle for ${name}`);
  return path;
}

/** alice's state events from `from` on. */
function statesSince(from: number): Extract<AppEvent, { type: 'state' }>[] {
  return alice.events
    .slice(from)
    .filter((e): e is Extract<AppEvent, { type: 'state' }> => e.type === 'state');
}

test.describe.configure({ mode: 'serial' });

test.beforeAll(async () => {
  assertBuilt();
  browser = await chromium.launch({ executablePath: chromiumPath(), headless: true, args: CHROMIUM_ARGS });
  server = await serveRenderer();
  group = makeTestGroup(['alice', 'bob']);
  alice = await createTestApp({ backoff: { initialMs: RETRY_MS, maxMs: RETRY_MS, jitter: 0 } });
  bob = await createTestApp({ relayLauncher: launcher });
  context = await browser.newContext({ viewport: { width: 1360, height: 860 }, colorScheme: 'light' });
  page = await context.newPage();
  page.on('console', (msg) => {
    if (msg.type() === 'error') consoleErrors.push(msg.text());
  });
  page.on('pageerror', (err) => consoleErrors.push(err.message));
  unbridge = await bridgePage(page, alice.service);
  await page.goto(server.url);
});

test.afterAll(async () => {
  unbridge();
  for (const app of [alice, bob]) await app?.service.dispose().catch(() => undefined);
  await context?.close();
  await browser?.close();
  await server?.close();
});

test('Online while chatting', async () => {
  relayPort = await startRelay(0);
  unwrap(await importBundle(alice, bundle('alice'), TEST_PASSWORD));
  unwrap(await importBundle(bob, bundle('bob'), TEST_PASSWORD));
  const indicator = page.getByTestId('connection-indicator');
  await expect(indicator.getByRole('status')).toHaveText('Offline');

  await page.getByTestId('connect-host').fill('127.0.0.1');
  await page.getByTestId('connect-port').fill(String(relayPort));
  await page.getByTestId('connect').click();
  unwrap(await bob.service.connect({ host: '127.0.0.1', port: relayPort }));
  await expect(indicator).toHaveAttribute('data-state', 'Chatting');
  await expect(indicator.getByRole('status')).toHaveText('Online');
  await expect(page.getByTestId('member')).toHaveCount(2);
  await until(() => bob.service.snapshot().connection.state === 'Chatting', 'bob chatting');

  const composer = page.getByTestId('composer');
  await composer.fill('Can you read me, bob?');
  await composer.press('Enter');
  await until(
    () =>
      bob.service.snapshot().timeline.some((l) => l.kind === 'message' && l.text === 'Can you read me, bob?'),
    'bob reads alice',
  );
  await expect(indicator.getByRole('status')).toHaveText('Online');
  // A dot and the words: colour is not the only cue; the words are a polite live region.
  await expect(indicator.getByRole('status')).toHaveAttribute('aria-live', 'polite');
  await expect(indicator.locator('.connection-dot')).toBeVisible();
  await screenshot(page, 'connection-01-online');
});

test('the relay killed: "Offline — retrying in N s", counting down', async () => {
  const mark = alice.events.length;
  const pid = relayProcess?.pid;
  if (pid === undefined) throw new Error('no relay process');
  process.kill(pid, 'SIGKILL');
  await until(() => bob.service.snapshot().relay.status === 'crashed', 'the relay is gone');
  // The event first (alice's service saw the link drop and scheduled a try), then the words.
  await until(
    () => statesSince(mark).some((e) => e.state === 'Reconnecting' && (e.retryInMs ?? 0) >= RETRY_MS - 1),
    'alice waits to retry',
  );
  const words = page.getByTestId('connection-words');
  await expect(words).toHaveText(/^Offline — retrying in [1-5] s$/);
  await expect(page.getByTestId('connection-indicator')).toHaveAttribute('data-tone', 'retry');
  await screenshot(page, 'connection-02-retrying');
  // Counting down each second, never below 0: the next second's words follow.
  const first = Number(/(\d+) s$/.exec((await words.textContent()) ?? '')?.[1]);
  expect(first).toBeGreaterThanOrEqual(1);
  if (first >= 2) await expect(words).toHaveText(`Offline — retrying in ${first - 1} s`);
  await screenshot(page, 'connection-03-counting-down');
});

test('the details panel opens from the indicator: stepper, reason in full, relay address', async () => {
  const toggle = page.getByRole('button', { name: 'Details' });
  await expect(toggle).toHaveAttribute('aria-expanded', 'false');
  await expect(page.getByTestId('connection-details')).toHaveCount(0);
  await toggle.focus();
  await page.keyboard.press('Enter');
  await expect(toggle).toHaveAttribute('aria-expanded', 'true');
  const details = page.getByRole('region', { name: 'Connection details' });
  await expect(details).toBeVisible();
  await expect(details.getByTestId('stepper')).toBeVisible();
  await expect(details.getByRole('list', { name: 'Connection progress' }).getByRole('listitem')).toHaveCount(
    6,
  );
  await expect(details.getByTestId('connection-address')).toHaveText(`127.0.0.1:${relayPort}`);
  // The reason as the service worded it, in full (whichever attempt the view is from).
  await expect
    .poll(async () => {
      const shown = (await details.getByTestId('connection-reason').textContent()) ?? '';
      const view = alice.service.snapshot().connection;
      return view.state !== 'Reconnecting' || shown === view.reason;
    })
    .toBe(true);
  await screenshot(page, 'connection-04-details-offline');
});

test('the relay back on the same port: Online again; Escape closes the panel', async () => {
  await startRelay(relayPort);
  const indicator = page.getByTestId('connection-indicator');
  await expect(indicator).toHaveAttribute('data-state', 'Chatting', { timeout: 60_000 });
  await expect(indicator.getByRole('status')).toHaveText('Online');
  const details = page.getByTestId('connection-details');
  await expect(details.getByTestId('stepper')).toHaveAttribute('data-state', 'Chatting');
  await expect(details.locator('[aria-current="step"]')).toContainText('Chatting');
  await screenshot(page, 'connection-05-online-again-details');
  await page.keyboard.press('Escape');
  await expect(details).toHaveCount(0);
  const toggle = page.getByRole('button', { name: 'Details' });
  await expect(toggle).toHaveAttribute('aria-expanded', 'false');
  await expect(toggle).toBeFocused();
  await screenshot(page, 'connection-06-online-again');
});

test('no errors in the page console (CSP violations included)', () => {
  expect(consoleErrors).toEqual([]);
});
