/**
 * The organiser's tools (issue 12, item 3) in Debian Chromium over real app services, the real PKI
 * worker and a real relay: alice holds the group's ca.p12 and opens it from her window; the roster
 * shows who is online; she adds dave (whose bundle she hands over), who joins and reads only what
 * follows; she removes carol after a confirmation naming her, and carol's window says she was
 * removed. The OS file dialog is the only stand-in (a queue of paths). Screenshots of each step go
 * to test-results/browser/organiser-*.png.
 */
import { writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { chromium, expect, test, type Browser, type Page } from '@playwright/test';
import { writeBundle } from '../../src-main/core/pki/index.js';
import { makeTestGroup, TEST_KDF_ITERATIONS, TEST_PASSWORD, type TestGroup } from '../helpers/group.js';
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

const CA_PASSWORD = 'the organiser keeps this one';
const DAVE_PASSWORD = 'a passphrase for dave';

type Window = BridgedWindow;

let browser: Browser;
let server: Awaited<ReturnType<typeof serveRenderer>>;
let group: TestGroup;
let caPath: string;
let port: number;
const apps: TestApp[] = [];
const windows: Window[] = [];
const consoleErrors: string[] = [];

async function open(name: string, app: TestApp): Promise<Window> {
  const w = await openBridgedWindow(browser, server.url, name, app, consoleErrors, {
    width: 1360,
    height: 900,
  });
  await expect(w.page.getByTestId('identity-name')).toHaveText(name);
  windows.push(w);
  return w;
}

async function member(name: string, bundle: string, password = TEST_PASSWORD): Promise<TestApp> {
  const app = await createTestApp();
  apps.push(app);
  unwrap(await importBundle(app, bundle, password));
  unwrap(await app.service.connect({ host: '127.0.0.1', port }));
  await until(() => app.service.snapshot().connection.state === 'Chatting', `${name} chatting`);
  return app;
}

const messageTexts = (page: Page) => page.getByTestId('timeline').getByTestId('message-text');

test.beforeAll(async () => {
  assertBuilt();
  browser = await chromium.launch({ executablePath: chromiumPath(), headless: true, args: CHROMIUM_ARGS });
  server = await serveRenderer();
  group = makeTestGroup(['alice', 'bob', 'carol']);
  caPath = join(group.dir, 'ca.p12');
  writeFileSync(
    caPath,
    writeBundle(group.ca, group.ca.certificate, CA_PASSWORD, { kdfIterations: TEST_KDF_ITERATIONS }),
  );
  const host = await createTestApp();
  apps.push(host);
  port = unwrap(await startRelay(host, group.relayBundle, TEST_PASSWORD)).port as number;
});

test.afterAll(async () => {
  for (const w of windows) {
    w.unbridge();
    await w.context.close();
  }
  await Promise.all(apps.map((a) => a.service.dispose()));
  await server?.close();
  await browser?.close();
});

test('the organiser adds dave and removes carol from her window', async () => {
  test.setTimeout(180_000);
  const alice = await open('alice', await member('alice', group.bundles.alice as string));
  const carol = await open('carol', await member('carol', group.bundles.carol as string));
  await alice.page.getByTestId('composer').fill('before dave');
  await alice.page.getByTestId('composer').press('Enter');
  await expect(messageTexts(carol.page).last()).toHaveText('before dave');

  // Alice opens the CA bundle: a wrong password is said in words, then the roster appears.
  const panel = alice.page.getByTestId('organiser');
  await panel.getByTestId('open-ca').click();
  const openDialog = alice.page.getByTestId('open-ca-dialog');
  alice.app.dialogs.bundles.push(caPath);
  await openDialog.getByTestId('choose-ca').click();
  await expect(openDialog.getByText('ca.p12')).toBeVisible();
  await openDialog.getByTestId('ca-password').fill('not the password');
  await openDialog.getByTestId('open-ca-submit').click();
  await expect(openDialog.getByTestId('open-ca-error')).toContainText('Wrong password');
  await openDialog.getByTestId('ca-password').fill(CA_PASSWORD);
  await openDialog.getByTestId('open-ca-submit').click();
  await expect(openDialog).toBeHidden();
  await expect(panel.getByTestId('roster-version')).toHaveText('v1');
  const roster = panel.getByTestId('roster-member');
  await expect(roster).toHaveCount(3);
  await expect(panel.locator('[data-name="alice"] [data-testid="presence"]')).toHaveText('Online');
  await expect(panel.locator('[data-name="bob"] [data-testid="presence"]')).toHaveText('Not seen yet');
  await expect(panel.locator('[data-name="carol"] [data-testid="presence"]')).toHaveText('Online');
  await panel.scrollIntoViewIfNeeded();
  await screenshot(alice.page, 'organiser-01-roster');

  // Add dave: his bundle is written beside ca.p12 and the roster's next version published.
  await panel.getByTestId('add-member').click();
  const addDialog = alice.page.getByTestId('add-member-dialog');
  await addDialog.getByTestId('new-member-name').fill('dave');
  await addDialog.getByTestId('new-member-password').fill(DAVE_PASSWORD);
  await addDialog.getByTestId('new-member-confirm').fill(DAVE_PASSWORD);
  await addDialog.getByTestId('add-ca-password').fill(CA_PASSWORD);
  await addDialog.getByTestId('add-member-submit').click();
  const bundlePath = join(group.dir, 'dave.p12');
  await expect(addDialog.getByTestId('added-bundle-path')).toHaveText(bundlePath);
  await expect(addDialog.getByTestId('add-member-done')).toContainText('in force at the relay now');
  await screenshot(alice.page, 'organiser-02-dave-added');
  await addDialog.getByTestId('add-member-close').click();
  await expect(panel.getByTestId('roster-version')).toHaveText('v2');
  await expect(roster).toHaveCount(4);

  // Dave imports the bundle alice handed him, connects, and reads what follows only.
  const dave = await open('dave', await member('dave', bundlePath, DAVE_PASSWORD));
  await expect(panel.locator('[data-name="dave"] [data-testid="presence"]')).toHaveText('Online');
  await until(
    () => [alice, carol, dave].every((w) => w.app.service.snapshot().key?.members.includes('dave') === true),
    'one key with dave',
  );
  await alice.page.getByTestId('composer').fill('welcome, dave');
  await alice.page.getByTestId('composer').press('Enter');
  await expect(messageTexts(dave.page).last()).toHaveText('welcome, dave');
  await expect(dave.page.getByText('before dave')).toHaveCount(0);
  await screenshot(dave.page, 'organiser-03-dave-reads-what-follows');

  // Remove carol: the confirmation names her; her window says she was removed.
  await panel.locator('[data-name="carol"]').getByTestId('remove-member').click();
  const removeDialog = alice.page.getByTestId('remove-member-dialog');
  await expect(removeDialog.getByRole('heading')).toHaveText('Remove carol from the group?');
  await removeDialog.getByTestId('remove-reason').fill('lost laptop');
  await removeDialog.getByTestId('remove-ca-password').fill(CA_PASSWORD);
  await screenshot(alice.page, 'organiser-04-confirm-removal');
  await removeDialog.getByTestId('remove-member-submit').click();
  await expect(removeDialog).toBeHidden();
  await expect(panel.getByTestId('roster-version')).toHaveText('v3');
  await expect(panel.locator('[data-name="carol"]')).toHaveCount(0);
  await expect(panel.getByTestId('removed-member')).toHaveCount(1);
  await expect(carol.page.getByTestId('connection-indicator')).toContainText('Removed');
  await expect(carol.page.getByText('You were removed from this group.').first()).toBeVisible();
  await screenshot(carol.page, 'organiser-05-carol-removed');
  await until(
    () => alice.app.service.snapshot().key?.members.includes('carol') === false,
    'a key without carol',
  );
  await alice.page.getByTestId('composer').fill('without carol');
  await alice.page.getByTestId('composer').press('Enter');
  await expect(messageTexts(dave.page).last()).toHaveText('without carol');
  await expect(carol.page.getByText('without carol')).toHaveCount(0);
  await screenshot(alice.page, 'organiser-06-after-removal');

  expect(consoleErrors).toEqual([]);
});
