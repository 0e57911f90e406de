/**
 * History that lasts (issue 12, item 1), in Debian Chromium over real app services and a real
 * relay: three members chat; carol closes her app while alice and bob talk; carol reopens and
 * sees the earlier history at once and what she missed below "While you were away"; alice
 * restarts with 1,000 messages stored and scrolls up through older pages to the first one, the
 * window never holding more than its bound; a search finds an old message and shows it in place;
 * and once the apps are closed, no file they keep holds a message's text.
 * Screenshots of each step go to test-results/browser/.
 */
import { chromium, expect, test, type Browser, type Page } from '@playwright/test';
import { MAX_RENDERED_LINES, TIMELINE_START_LINES } from '../../src-shared/limits.js';
import { makeTestGroup, TEST_PASSWORD, type TestGroup } from '../helpers/group.js';
import { plaintextFound } from '../helpers/plaintext-on-disk.js';
import {
  createTestApp,
  importBundle,
  startRelay,
  until,
  unwrap,
  type TestApp,
} from '../integration/app-harness.js';
import {
  assertBuilt,
  chromiumPath,
  CHROMIUM_ARGS,
  openBridgedWindow,
  screenshot,
  serveRenderer,
  type BridgedWindow,
} from './support.js';

test.describe.configure({ mode: 'serial' });

type Window = BridgedWindow;

const STORED = 1_000;
let browser: Browser;
let server: Awaited<ReturnType<typeof serveRenderer>>;
let group: TestGroup;
let host: TestApp;
let port: number;
const windows: Window[] = [];
const consoleErrors: string[] = [];

async function open(name: string, app: TestApp): Promise<Window> {
  const w = await openBridgedWindow(browser, server.url, name, app, consoleErrors);
  windows.push(w);
  return w;
}

/** Closes the app: the window, then the service (engine stopped, store closed). */
async function quit(w: Window): Promise<void> {
  w.unbridge();
  await w.context.close();
  await w.app.service.dispose();
  windows.splice(windows.indexOf(w), 1);
}

/** The same installation started again; without a keystore it opens on the unlock screen. */
async function reopen(name: string, previous: TestApp): Promise<Window> {
  const app = await createTestApp({ dataDir: previous.dataDir, settingsDir: previous.settingsDir });
  const w = await open(name, app);
  await expect(w.page.getByRole('heading', { name: 'Unlock your identity' })).toBeVisible();
  await w.page.getByLabel('Bundle password').fill(TEST_PASSWORD);
  await w.page.getByRole('button', { name: 'Unlock' }).click();
  await expect(w.page.getByTestId('identity-name')).toHaveText(name);
  return w;
}

async function chatting(app: TestApp): Promise<void> {
  unwrap(await app.service.connect({ host: '127.0.0.1', port }));
  await until(() => app.service.snapshot().connection.state === 'Chatting', 'chatting');
}

/** Sends through the service and waits until the relay stored the last one (acks come in order). */
async function sendAll(app: TestApp, texts: readonly string[]): Promise<void> {
  for (const text of texts) unwrap(await app.service.send({ text }));
  const last = texts.at(-1);
  await until(
    () =>
      app.service.snapshot().timeline.some((l) => l.kind === 'own' && l.text === last && l.status === 'sent'),
    'stored by the relay',
  );
}

const messageTexts = (page: Page) => page.getByTestId('timeline').getByTestId('message-text');

test.beforeAll(async () => {
  assertBuilt();
  browser = await chromium.launch({ executablePath: chromiumPath(), headless: true, args: CHROMIUM_ARGS });
  server = await serveRenderer();
  group = makeTestGroup(['alice', 'bob', 'carol']);
  host = await createTestApp();
  port = unwrap(await startRelay(host, group.relayBundle, TEST_PASSWORD)).port as number;
});

test.afterAll(async () => {
  for (const w of [...windows]) await quit(w);
  await host?.service.dispose();
  await server?.close();
  await browser?.close();
});

test('history lasts: the away divider, a restart with 1,000 messages paged on scroll, search in place', async () => {
  test.setTimeout(240_000);
  const apps: Record<string, TestApp> = {};
  for (const name of ['alice', 'bob', 'carol']) {
    const app = await createTestApp();
    unwrap(await importBundle(app, group.bundles[name] as string, TEST_PASSWORD));
    await chatting(app);
    apps[name] = app;
  }
  // Three members chat: alice's long history first (before the windows open: a thousand live
  // lines through the test bridge would only slow the test), then a word in the window.
  await sendAll(
    apps.alice as TestApp,
    Array.from({ length: STORED }, (_, i) => `note ${i + 1} of the plan`),
  );
  let alice = await open('alice', apps.alice as TestApp);
  let carol = await open('carol', apps.carol as TestApp);
  await expect(messageTexts(alice.page).last()).toHaveText(`note ${STORED} of the plan`);
  await carol.page.getByTestId('composer').fill('carol here, reading along');
  await carol.page.getByTestId('composer').press('Enter');
  await expect(messageTexts(alice.page).last()).toHaveText('carol here, reading along');
  await screenshot(carol.page, 'history-01-three-members');

  // Carol closes her app; alice and bob talk.
  const carolApp = carol.app;
  await quit(carol);
  const missed = ['lunch at noon?', 'yes, the usual place', 'bringing the slides'];
  await sendAll(alice.app, [missed[0] as string]);
  await sendAll(apps.bob as TestApp, [missed[1] as string]);
  await sendAll(alice.app, [missed[2] as string]);

  // Carol reopens: unlocked, the earlier history is there before she connects.
  carol = await reopen('carol', carolApp);
  await expect(carol.page.getByTestId('connection-indicator')).not.toHaveAttribute('data-state', 'Chatting');
  await expect(messageTexts(carol.page).last()).toHaveText('carol here, reading along');
  await expect(carol.page.getByTestId('away-divider')).toHaveCount(0);
  await screenshot(carol.page, 'history-02-reopened-before-connect');
  // Connected, what she missed comes in below "While you were away".
  await chatting(carol.app);
  const divider = carol.page.getByTestId('away-divider');
  await expect(divider).toHaveText('While you were away');
  const below = carol.page.locator(
    '[data-testid="away-divider"] ~ [data-testid="message"] [data-testid="message-text"]',
  );
  await expect(below).toHaveText(missed);
  await expect(carol.page.getByText('carol here, reading along')).toHaveCount(1);
  await screenshot(carol.page, 'history-03-while-you-were-away');

  // Alice restarts: unlock, the history is intact, older pages load as she scrolls up.
  const aliceApp = alice.app;
  await quit(alice);
  alice = await reopen('alice', aliceApp);
  await expect(messageTexts(alice.page).last()).toHaveText('bringing the slides');
  await expect(messageTexts(alice.page)).toHaveCount(TIMELINE_START_LINES);
  await screenshot(alice.page, 'history-04-restarted');
  const timeline = alice.page.getByTestId('timeline');
  const held = alice.page.locator('[data-line-id]');
  let most = 0;
  // Scroll to the top until the history says it has nothing older (each page comes on scroll).
  while ((await alice.page.getByTestId('history-start').count()) === 0) {
    const before = await held.first().getAttribute('data-line-id');
    await timeline.evaluate((el) => el.scrollTo({ top: 0 }));
    await expect(held.first()).not.toHaveAttribute('data-line-id', before ?? '');
    most = Math.max(most, await held.count());
  }
  expect(most).toBeLessThanOrEqual(MAX_RENDERED_LINES);
  await expect(messageTexts(alice.page).first()).toHaveText('note 1 of the plan');
  // Reading old history, the window is detached from the newest lines: "Jump to latest" brings them.
  await expect(alice.page.getByTestId('jump-latest')).toBeVisible();
  await screenshot(alice.page, 'history-05-first-page');
  await alice.page.getByTestId('jump-latest').click();
  await expect(messageTexts(alice.page).last()).toHaveText('bringing the slides');

  // Search finds an old message and shows it in its place.
  await alice.page.getByTestId('search-input').fill('NOTE 7 OF');
  await alice.page.getByTestId('search-input').press('Enter');
  const results = alice.page.getByTestId('search-result');
  await expect(results).toHaveCount(1);
  await expect(results.first()).toContainText('note 7 of the plan');
  await screenshot(alice.page, 'history-06-search');
  await results.first().click();
  const found = alice.page.locator('.message.focused [data-testid="message-text"]');
  await expect(found).toHaveText('note 7 of the plan');
  await expect(found).toBeInViewport();
  await screenshot(alice.page, 'history-07-found-in-place');
  await alice.page.getByTestId('jump-latest').click();
  await expect(messageTexts(alice.page).last()).toHaveText('bringing the slides');

  expect(consoleErrors).toEqual([]);
  // Every app closed: the history databases and everything else they keep hold no message text.
  const members = [alice.app, carol.app, apps.bob as TestApp];
  for (const w of [...windows]) await quit(w);
  await (apps.bob as TestApp).service.dispose();
  const dirs = members.flatMap((a) => [a.dataDir, a.settingsDir]);
  expect(plaintextFound(dirs, [...missed, 'note 7 of the plan', 'carol here, reading along'])).toEqual([]);
});
