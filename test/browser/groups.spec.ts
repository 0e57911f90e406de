/**
 * Two groups in one app (issue 12, item 2) in Debian Chromium over real app services and two real
 * relays: alice imports a second bundle from the sidebar, is connected to both groups, sees an
 * unread count on the group she is not looking at, switches to it (its own timeline, the count
 * gone), and a search finds an old message of that group. Screenshots go to
 * test-results/browser/groups-*.png.
 */
import { chromium, expect, test, type Browser, type BrowserContext, type Page } from '@playwright/test';
import { makeTestGroup, TEST_PASSWORD, type TestGroup } from '../helpers/group.js';
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
} from './support.js';

test.describe.configure({ mode: 'serial' });

let browser: Browser;
let server: Awaited<ReturnType<typeof serveRenderer>>;
let team: TestGroup;
let family: TestGroup;
const ports: number[] = [];
const apps: TestApp[] = [];
let context: BrowserContext | undefined;
let unbridge: (() => void) | undefined;
const consoleErrors: string[] = [];

async function app(): Promise<TestApp> {
  const created = await createTestApp();
  apps.push(created);
  return created;
}

async function chatting(a: TestApp, port: number): Promise<void> {
  unwrap(await a.service.connect({ host: '127.0.0.1', port }));
  await until(() => a.service.snapshot().connection.state === 'Chatting', 'chatting');
}

const messageTexts = (page: Page) => page.getByTestId('timeline').getByTestId('message-text');

test.beforeAll(async () => {
  assertBuilt();
  browser = await chromium.launch({ executablePath: chromiumPath(), headless: true, args: CHROMIUM_ARGS });
  server = await serveRenderer();
  team = makeTestGroup(['alice', 'bob'], { name: 'Team' });
  family = makeTestGroup(['alice', 'carol'], { name: 'Family' });
  for (const g of [team, family]) {
    const host = await app();
    ports.push(unwrap(await startRelay(host, g.relayBundle, TEST_PASSWORD)).port as number);
  }
});

test.afterAll(async () => {
  unbridge?.();
  await context?.close();
  await Promise.all(apps.map((a) => a.service.dispose()));
  await server?.close();
  await browser?.close();
});

test('two groups: import a second from the sidebar, unread per group, switch, search', async () => {
  test.setTimeout(180_000);
  const [teamPort, familyPort] = ports as [number, number];
  const bob = await app();
  unwrap(await importBundle(bob, team.bundles.bob as string, TEST_PASSWORD));
  await chatting(bob, teamPort);
  const carol = await app();
  unwrap(await importBundle(carol, family.bundles.carol as string, TEST_PASSWORD));
  await chatting(carol, familyPort);
  const alice = await app();
  unwrap(await importBundle(alice, team.bundles.alice as string, TEST_PASSWORD));
  await chatting(alice, teamPort);
  unwrap(await bob.service.send({ text: 'the quarterly numbers are in' }));
  await until(
    () => alice.service.snapshot().timeline.some((l) => l.kind === 'message' && l.text.includes('quarterly')),
    'alice reads bob',
  );

  const window = await openBridgedWindow(browser, server.url, 'alice', alice, consoleErrors);
  ({ context, unbridge } = window);
  const page = window.page;
  const groups = page.getByTestId('groups').getByTestId('group-item');
  await expect(groups).toHaveCount(1);

  // A second bundle, of another group, imported from the sidebar: both are listed, the new one shown.
  await page.getByTestId('add-group').click();
  const dialog = page.getByTestId('import-dialog');
  alice.dialogs.bundles.push(family.bundles.alice as string);
  await dialog.getByRole('button', { name: /choose/i }).click();
  await expect(dialog.getByTestId('import-file')).toContainText('alice.p12');
  await dialog.getByTestId('import-password').fill(TEST_PASSWORD);
  await dialog.getByTestId('import-submit').click();
  await expect(groups).toHaveCount(2);
  await expect(page.locator('[data-testid="group-item"][aria-current="true"]')).toHaveCount(1);
  await expect(groups.nth(1)).toHaveAttribute('aria-current', 'true');
  await expect(messageTexts(page)).toHaveCount(0);
  await page.getByTestId('connect-host').fill('127.0.0.1');
  await page.getByTestId('connect-port').fill(String(familyPort));
  await page.getByTestId('connect').click();
  await expect(page.getByTestId('connection-indicator')).toContainText('Online');
  await expect(groups.nth(0)).toContainText('Online');
  await expect(groups.nth(1)).toContainText('Online');

  // Family shown: bob's message in the team counts on the team's entry only.
  unwrap(await bob.service.send({ text: 'lunch at noon, team' }));
  await expect(groups.nth(0).getByTestId('group-unread')).toHaveText('1');
  await expect(groups.nth(1).getByTestId('group-unread')).toHaveCount(0);
  unwrap(await carol.service.send({ text: 'hi alice, it is carol' }));
  await expect(messageTexts(page).last()).toHaveText('hi alice, it is carol');
  await expect(page.getByText('lunch at noon, team')).toHaveCount(0);
  await screenshot(page, 'groups-01-unread-in-the-other-group');

  // Switching: the team's own timeline, its count gone.
  await groups.nth(0).click();
  await expect(groups.nth(0)).toHaveAttribute('aria-current', 'true');
  await expect(messageTexts(page).last()).toHaveText('lunch at noon, team');
  await expect(page.getByText('hi alice, it is carol')).toHaveCount(0);
  await expect(groups.nth(0).getByTestId('group-unread')).toHaveCount(0);
  // The connect form shows this group's relay, not the one shown before.
  await expect(page.getByTestId('connect-port')).toHaveValue(String(teamPort));
  await screenshot(page, 'groups-02-switched');
  await groups.nth(1).click();
  await expect(page.getByTestId('connect-port')).toHaveValue(String(familyPort));
  await groups.nth(0).click();
  await expect(page.getByTestId('connect-port')).toHaveValue(String(teamPort));

  // Search in the shown group finds its old message.
  await page.getByTestId('search-input').fill('quarterly');
  await page.getByTestId('search-input').press('Enter');
  await expect(page.getByTestId('search-result')).toHaveCount(1);
  await expect(page.getByTestId('search-result').first()).toContainText('the quarterly numbers are in');
  await screenshot(page, 'groups-03-search');

  expect(consoleErrors).toEqual([]);
});
