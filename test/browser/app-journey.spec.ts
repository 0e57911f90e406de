/// <reference lib="dom" />
/**
 * The desktop app's whole journey in a real browser: the built renderer (served from 127.0.0.1,
 * under its strict CSP) in three Chromium pages, each bridged to its OWN real app service in this
 * Node process through the preload's contract; one real relay started from bob's window (a child
 * process through the service's relay launcher). Screenshots of each step: test-results/browser/.
 */
import { chromium, expect, test, type Browser, type BrowserContext, type Page } from '@playwright/test';
import { existsSync, mkdtempSync, readFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { readBundle } from '../../src-main/core/pki/bundle.js';
import { groupFingerprint } from '../../src-shared/format.js';
import { makeTestGroup, readTestRoster, TEST_PASSWORD, type TestGroup } from '../helpers/group.js';
import { publishRoster } from '../../src-main/client/roster-publish.js';
import { LocalIdentity } from '../../src-main/core/pki/local-identity.js';
import { createTestApp, type TestApp } from '../integration/app-harness.js';
import {
  assertBuilt,
  bridgePage,
  chromiumPath,
  CHROMIUM_ARGS,
  screenshot,
  serveRenderer,
} from './support.js';

interface Member {
  name: 'alice' | 'bob' | 'carol';
  app: TestApp;
  context: BrowserContext;
  page: Page;
  unbridge: () => void;
}

let browser: Browser;
let server: Awaited<ReturnType<typeof serveRenderer>>;
let group: TestGroup;
const members: Record<string, Member> = {};
let relayPort = 0;
const consoleErrors: string[] = [];

function member(name: string): Member {
  const m = members[name];
  if (!m) throw new Error(`no member ${name}`);
  return m;
}

function fingerprintOf(path: string): string {
  return readBundle(readFileSync(path), TEST_PASSWORD).certificate.fingerprintHex;
}

function bundle(name: string): string {
  const path = group.bundles[name];
  if (!path) throw new Error(`no bundle for ${name}`);
  return path;
}

test.describe.configure({ mode: 'serial' });

test.beforeAll(async () => {
  assertBuilt();
  browser = await chromium.launch({ executablePath: chromiumPath(), headless: true, args: CHROMIUM_ARGS });
  server = await serveRenderer();
  group = makeTestGroup(['alice', 'bob', 'carol']);
  for (const name of ['alice', 'bob', 'carol'] as const) {
    const app = await createTestApp();
    const context = await browser.newContext({
      viewport: { width: 1360, height: 860 },
      colorScheme: 'light',
    });
    const page = await context.newPage();
    page.on('console', (msg) => {
      if (msg.type() === 'error') consoleErrors.push(`${name}: ${msg.text()}`);
    });
    page.on('pageerror', (err) => consoleErrors.push(`${name}: ${err.message}`));
    const unbridge = await bridgePage(page, app.service);
    await page.goto(server.url);
    members[name] = { name, app, context, page, unbridge };
  }
});

test.afterAll(async () => {
  for (const m of Object.values(members)) {
    m.unbridge();
    await m.app.service.dispose().catch(() => undefined);
  }
  await browser?.close();
  await server?.close();
});

async function importThroughUi(m: Member, password: string): Promise<void> {
  const { page, app } = m;
  app.dialogs.bundles.push(bundle(m.name));
  const form = page.getByTestId('import-form').first();
  await form.getByRole('button', { name: 'Choose file…' }).click();
  await expect(form.getByTestId('import-file')).toHaveText(`${m.name}.p12`);
  await form.getByTestId('import-password').fill(password);
  await form.getByTestId('import-submit').click();
}

test('onboarding, and a wrong bundle password is refused in plain words', async () => {
  const alice = member('alice');
  await expect(alice.page.getByRole('heading', { name: 'Import your certificate bundle' })).toBeVisible();
  await expect(alice.page.getByRole('heading', { name: 'Create a new group' })).toBeVisible();
  await screenshot(alice.page, '01-onboarding');

  await importThroughUi(alice, 'definitely not it');
  const error = alice.page.getByTestId('import-error');
  await expect(error).toContainText('Wrong password');
  await expect(error).toHaveAttribute('role', 'alert');
  await screenshot(alice.page, '02-wrong-password');
  expect(alice.app.service.snapshot().identity.status).toBe('none');
});

test('create a group from the onboarding screen; existing files are only replaced after confirming', async () => {
  const alice = member('alice');
  const folder = mkdtempSync(join(tmpdir(), 'scx-ui-group-'));
  alice.app.dialogs.folders.push(folder);
  await alice.page.getByTestId('open-create-group').click();
  const dialog = alice.page.getByTestId('create-group-dialog');
  await expect(dialog).toBeVisible();
  await dialog.getByRole('button', { name: 'Choose folder…' }).click();
  await dialog.getByLabel('Group name').fill('Design team');
  await dialog.getByLabel('Members').fill('dana, eli, fay');
  await dialog.getByLabel('Bundle password').fill('correct horse battery');
  await dialog.getByLabel('Repeat password').fill('correct horse battery');
  await screenshot(alice.page, '01b-create-group');
  await dialog.getByRole('button', { name: /Create group \(3 members\)/ }).click();
  await expect(dialog.getByTestId('create-group-done')).toBeVisible();
  for (const f of ['ca.pem', 'ca.p12', 'dana.p12', 'eli.p12', 'fay.p12', 'relay.p12', 'roster.scx']) {
    expect(existsSync(join(folder, f)), f).toBe(true);
  }
  // The summary lists the roster with the other files.
  await expect(dialog.getByTestId('create-group-done').getByText('roster.scx')).toBeVisible();
  await screenshot(alice.page, '01c-group-created');
  await dialog.getByRole('button', { name: 'Done' }).click();
  await expect(dialog).toBeHidden();

  // Again into the same folder: the files are listed and nothing is replaced without a click.
  const before = readFileSync(join(folder, 'dana.p12'));
  alice.app.dialogs.folders.push(folder);
  await alice.page.getByTestId('open-create-group').click();
  await dialog.getByRole('button', { name: 'Choose folder…' }).click();
  await dialog.getByLabel('Bundle password').fill('another password');
  await dialog.getByLabel('Repeat password').fill('another password');
  await dialog.getByRole('button', { name: /Create group/ }).click();
  await expect(dialog.getByRole('alert')).toContainText('already exist');
  await expect(dialog.getByRole('alert')).toContainText('roster.scx');
  await expect(dialog.getByRole('button', { name: 'Replace them' })).toBeVisible();
  await screenshot(alice.page, '01d-overwrite-confirm');
  expect(readFileSync(join(folder, 'dana.p12')).equals(before)).toBe(true);
  await dialog.getByRole('button', { name: 'Cancel' }).click();
  await expect(dialog).toBeHidden();
});

test('each member imports their bundle and sees their identity and fingerprint', async () => {
  // alice retries with the same chosen file.
  const alice = member('alice');
  await alice.page.getByTestId('import-password').fill(TEST_PASSWORD);
  await alice.page.getByTestId('import-submit').click();
  for (const name of ['bob', 'carol']) await importThroughUi(member(name), TEST_PASSWORD);
  for (const name of ['alice', 'bob', 'carol']) {
    const { page } = member(name);
    await expect(page.getByTestId('identity-name')).toHaveText(name);
    await expect(page.getByTestId('identity-fingerprint')).toHaveText(
      groupFingerprint(fingerprintOf(bundle(name))),
    );
    // The group CA's fingerprint, with the advice to compare it with the organiser's ca.pem.
    await expect(page.getByTestId('identity-ca-fingerprint')).toHaveText(
      groupFingerprint(group.ca.certificate.fingerprintHex),
    );
    await expect(page.getByTestId('identity-ca-advice')).toContainText('organiser hands out');
  }
  const indicator = alice.page.getByTestId('connection-indicator');
  await expect(indicator).toHaveAttribute('data-state', 'Disconnected');
  await expect(indicator.getByRole('status')).toHaveText('Offline');
  await screenshot(alice.page, '03-identity-imported');
});

test('bob starts the bundled relay from his window: address and member count shown', async () => {
  const bob = member('bob');
  bob.app.dialogs.bundles.push(group.relayBundle);
  await bob.page.getByTestId('relay-start-open').click();
  const dialog = bob.page.getByTestId('relay-dialog');
  await expect(dialog).toBeVisible();
  await dialog.getByRole('button', { name: 'Choose file…' }).click();
  await expect(dialog.getByText('relay.p12')).toBeVisible();
  await dialog.getByTestId('relay-password').fill(TEST_PASSWORD);
  await dialog.getByTestId('relay-port').fill('0');
  await dialog.getByTestId('relay-start').click();
  await expect(bob.page.getByTestId('relay-status')).toHaveText('running');
  const address = (await bob.page.getByTestId('relay-address').textContent()) ?? '';
  expect(address).toMatch(/^127\.0\.0\.1:\d+$/);
  relayPort = Number(address.split(':')[1]);
  expect(relayPort).toBeGreaterThan(0);
  await expect(bob.page.getByTestId('relay-count')).toHaveText('0');
  await screenshot(bob.page, '04-relay-running');
});

test('all three connect: the header says Online, fingerprints and one safety number', async () => {
  for (const name of ['alice', 'bob', 'carol']) {
    const { page } = member(name);
    await page.getByTestId('connect-host').fill('127.0.0.1');
    await page.getByTestId('connect-port').fill(String(relayPort));
    await page.getByTestId('connect').click();
  }
  const numbers: string[] = [];
  for (const name of ['alice', 'bob', 'carol']) {
    const { page } = member(name);
    await expect(page.getByTestId('connection-indicator')).toHaveAttribute('data-state', 'Chatting');
    await expect(page.getByTestId('connection-words')).toHaveText('Online');
    await expect(page.getByTestId('member')).toHaveCount(3);
    await expect(page.getByTestId('safety-number')).toBeVisible();
    for (const other of ['alice', 'bob', 'carol']) {
      await expect(
        page.locator(`[data-testid="member"][data-name="${other}"] [data-testid="member-fingerprint"]`),
      ).toHaveText(groupFingerprint(fingerprintOf(bundle(other))));
    }
  }
  // The same safety number in every window (once the last key is in).
  await expect
    .poll(async () => {
      numbers.length = 0;
      for (const name of ['alice', 'bob', 'carol']) {
        numbers.push((await member(name).page.getByTestId('safety-number').getAttribute('aria-label')) ?? '');
      }
      return new Set(numbers).size;
    })
    .toBe(1);
  expect(numbers[0]).toMatch(/\d{5}/);
  await expect(member('bob').page.getByTestId('relay-count')).toHaveText('3');
  await screenshot(member('alice').page, '05-connected-alice');
});

test('chat both ways: Enter sends, Shift+Enter adds a line, own messages show sent', async () => {
  const alice = member('alice');
  const bob = member('bob');
  const carol = member('carol');
  const composer = alice.page.getByTestId('composer');
  await composer.click();
  await composer.fill('Hello team! The relay is up.');
  await composer.press('Enter');
  await expect(composer).toHaveValue('');
  const own = alice.page.getByTestId('own-message').last();
  await expect(own).toContainText('Hello team! The relay is up.');
  await expect(own).toHaveAttribute('data-status', 'sent');

  for (const m of [bob, carol]) {
    await expect(m.page.locator('[data-testid="message"][data-from="alice"]').last()).toContainText(
      'Hello team! The relay is up.',
    );
  }

  const bobComposer = bob.page.getByTestId('composer');
  await bobComposer.click();
  await bobComposer.pressSequentially('Hi alice!');
  await bobComposer.press('Shift+Enter');
  await bobComposer.pressSequentially('Both lines arrive together.');
  await expect(bobComposer).toHaveValue('Hi alice!\nBoth lines arrive together.');
  await bobComposer.press('Enter');
  const received = alice.page.locator('[data-testid="message"][data-from="bob"]').last();
  await expect(received).toContainText('Hi alice!');
  await expect(received).toContainText('Both lines arrive together.');
  await carol.page.getByTestId('composer').fill('Carol here — reading you both.');
  await carol.page.getByTestId('composer').press('Enter');
  await expect(alice.page.locator('[data-testid="message"][data-from="carol"]').last()).toContainText(
    'Carol here',
  );
  // The polite live region announces the latest message, not every one.
  await expect(alice.page.getByTestId('live-polite')).toContainText('carol');
  await screenshot(alice.page, '06-chat-alice');
  await screenshot(bob.page, '06-chat-bob');
});

test('alice marks bob and carol verified', async () => {
  const alice = member('alice');
  for (const name of ['bob', 'carol']) {
    const row = alice.page.locator(`[data-testid="member"][data-name="${name}"]`);
    await row.getByTestId('verify-toggle').click();
    await expect(row).toHaveAttribute('data-verified', 'true');
    await expect(row.getByTestId('verified-badge')).toBeVisible();
    await expect(row.getByTestId('verify-toggle')).toHaveAttribute('aria-pressed', 'true');
  }
  // The marks are kept with the group's identity (kept-identities.ts).
  const kept = alice.app.settings.get('identities') as { verified?: Record<string, string> }[] | undefined;
  expect(kept?.[0]?.verified).toEqual({
    bob: fingerprintOf(bundle('bob')),
    carol: fingerprintOf(bundle('carol')),
  });
  await screenshot(alice.page, '07-verified');
});

test('carol leaves: alice and bob see her go and keep the key; "Renew keys" moves both to a new one', async () => {
  const alice = member('alice');
  const bob = member('bob');
  const carol = member('carol');
  const epochOf = async (m: ReturnType<typeof member>) =>
    Number(((await m.page.getByTestId('epoch').textContent()) ?? '').replace(/\D/g, ''));
  const safetyNumbers = async () => [
    await alice.page.getByTestId('safety-number').getAttribute('aria-label'),
    await bob.page.getByTestId('safety-number').getAttribute('aria-label'),
  ];
  const epochBefore = await epochOf(alice);
  const rekeysBefore = await alice.page.locator('[data-testid="system-line"][data-event="rekey"]').count();
  await carol.page.getByTestId('disconnect').click();
  await expect(carol.page.getByTestId('connection-indicator')).toHaveAttribute('data-state', 'Disconnected');
  await expect(carol.page.getByTestId('connection-words')).toHaveText('Offline');
  for (const m of [alice, bob]) {
    await expect(m.page.locator('[data-testid="system-line"][data-event="left"]').last()).toContainText(
      'carol left the chat',
    );
    await expect(m.page.getByTestId('member')).toHaveCount(2);
  }
  await expect(bob.page.getByTestId('relay-count')).toHaveText('2');
  // Presence never re-keys (DESIGN §10.2): the key is over the roster, carol still in it.
  expect(await epochOf(alice)).toBe(epochBefore);
  expect(await epochOf(bob)).toBe(epochBefore);
  await expect(alice.page.locator('[data-testid="system-line"][data-event="rekey"]')).toHaveCount(
    rekeysBefore,
  );
  await screenshot(alice.page, '08-leave-keeps-key');

  await alice.page.getByRole('button', { name: 'Renew keys' }).click();
  for (const m of [alice, bob]) {
    await expect.poll(() => epochOf(m)).toBeGreaterThan(epochBefore);
    await expect(m.page.locator('[data-testid="system-line"][data-event="rekey"]').last()).toContainText(
      'New group key',
    );
  }
  await expect.poll(async () => new Set(await safetyNumbers()).size).toBe(1);
  expect(await epochOf(alice)).toBe(await epochOf(bob));
  await screenshot(alice.page, '08-rekey-after-renew');
});

test('carol comes back with a new certificate: alice gets a prominent warning', async () => {
  const alice = member('alice');
  const carol = member('carol');
  const oldCarol = LocalIdentity.fromBundleFile(readFileSync(group.bundles.carol as string), TEST_PASSWORD);
  const newBundle = group.addMember('carol');
  // The relay admits the new certificate once it holds the roster that lists it: carol, who left,
  // carries it there with her old bundle (as an organiser would publish it).
  const published = await publishRoster({
    identity: oldCarol,
    relay: { host: '127.0.0.1', port: relayPort },
    roster: readTestRoster(group),
  });
  expect(published.version).toBe(group.roster().version);
  // The app menu's "Import certificate bundle…" opens the import dialog in carol's window.
  carol.app.service.requestMenuAction('import-identity');
  const dialog = carol.page.getByTestId('import-dialog');
  await expect(dialog).toBeVisible();
  carol.app.dialogs.bundles.push(newBundle);
  await dialog.getByRole('button', { name: 'Choose file…' }).click();
  await dialog.getByTestId('import-password').fill(TEST_PASSWORD);
  await dialog.getByTestId('import-submit').click();
  await expect(dialog).toBeHidden();
  await expect(carol.page.getByTestId('identity-fingerprint')).toHaveText(
    groupFingerprint(fingerprintOf(newBundle)),
  );
  await carol.page.getByTestId('connect').click();

  const warning = alice.page.getByTestId('fingerprint-warning');
  await expect(warning).toBeVisible();
  await expect(warning).toHaveAttribute('role', 'alert');
  await expect(warning).toContainText('carol’s certificate has changed');
  const row = alice.page.locator('[data-testid="member"][data-name="carol"]');
  await expect(row).toHaveAttribute('data-verified', 'false');
  await expect(row).toContainText('Certificate changed');
  await screenshot(alice.page, '09-fingerprint-changed');
});

test('dark theme and keyboard focus', async () => {
  const bob = member('bob');
  await bob.page.getByTestId('theme-toggle').click(); // system → light
  await bob.page.getByTestId('theme-toggle').click(); // light → dark
  await expect(bob.page.locator('html')).toHaveAttribute('data-theme', 'dark');
  const bg = await bob.page.evaluate(() => getComputedStyle(document.body).backgroundColor);
  expect(bg).not.toBe('rgb(244, 245, 248)');
  await screenshot(bob.page, '10-dark-theme-bob');
  // The dark theme on the onboarding screen too (a fresh window).
  await member('alice').page.emulateMedia({ colorScheme: 'dark' });
  await screenshot(member('alice').page, '11-alice-system-dark');
});

test('a reload restores the window from the service; keyboard users start at the skip link', async () => {
  const carol = member('carol');
  // carol reconnected in the test before, so lines may still arrive: the window after the reload
  // shows what the service holds at that moment, whatever that is by then.
  const held = () => carol.app.service.snapshot().timeline.filter((l) => l.kind === 'system').length;
  await carol.page.reload();
  await expect(carol.page.getByTestId('identity-name')).toHaveText('carol');
  await expect(carol.page.getByTestId('connection-indicator')).toHaveAttribute('data-state', 'Chatting');
  await expect.poll(async () => (await carol.page.getByTestId('system-line').count()) === held()).toBe(true);
  expect(held()).toBeGreaterThan(0);
  await carol.page.keyboard.press('Tab');
  const skip = carol.page.getByRole('link', { name: 'Skip to the message box' });
  await expect(skip).toBeFocused();
  await expect.poll(async () => (await skip.boundingBox())?.y ?? -1).toBeGreaterThanOrEqual(0);
  await carol.page.keyboard.press('Tab');
  await expect(carol.page.getByRole('button', { name: 'Details' })).toBeFocused();
  await carol.page.keyboard.press('Tab');
  await expect(carol.page.getByTestId('theme-toggle')).toBeFocused();
});

test('a restart without a keystore asks for the bundle password (unlock screen)', async () => {
  const alice = member('alice');
  const restarted = await createTestApp({ dataDir: alice.app.dataDir, settingsDir: alice.app.settingsDir });
  const context = await browser.newContext({ viewport: { width: 1360, height: 860 } });
  const page = await context.newPage();
  const unbridge = await bridgePage(page, restarted.service);
  try {
    await page.goto(server.url);
    await expect(page.getByRole('heading', { name: 'Unlock your identity' })).toBeVisible();
    await page.getByLabel('Bundle password').fill('wrong');
    await page.getByRole('button', { name: 'Unlock' }).click();
    await expect(page.getByRole('alert').first()).toContainText('Wrong password');
    await screenshot(page, '12-unlock');
    await page.getByLabel('Bundle password').fill(TEST_PASSWORD);
    await page.getByRole('button', { name: 'Unlock' }).click();
    await expect(page.getByTestId('identity-name')).toHaveText('alice');
  } finally {
    unbridge();
    await restarted.service.dispose();
    await context.close();
  }
});

test('no errors in the page console (CSP violations included)', () => {
  expect(consoleErrors).toEqual([]);
});
