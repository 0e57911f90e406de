/// <reference lib="dom" />
/**
 * Chat basics in a real browser (the built renderer under its CSP, each page bridged to its own
 * real app service, one real relay): links in messages are anchors that ask before anything
 * opens, and only a confirmed URL reaches the external-link port (the harness records it; the
 * window never navigates); right-to-left text carries dir="auto"; a paste over the message limit
 * stays whole in the box with the reason shown and Send disabled.
 * Screenshots of each step: test-results/browser/basics-*.png.
 */
import { expect, test } from '@playwright/test';
import { MAX_MESSAGE_CHARS } from '../../src-shared/limits.js';
import { screenshot } from './support.js';
import { startTwoMembers, type Member, type TwoMembers } from './two-members.js';

let members: TwoMembers;
let alice: Member;
let bob: Member;

test.describe.configure({ mode: 'serial' });

test.beforeAll(async () => {
  members = await startTwoMembers();
  ({ alice, bob } = members);
});

test.afterAll(async () => {
  await members?.close();
});

test('a link in a message is an anchor; it opens only after confirming, and the window stays put', async () => {
  const url = 'https://example.org/guide?topic=relays#start';
  const text = `The setup guide is at ${url}. Ask me (or https://example.net/faq)!`;
  await bob.page.getByTestId('composer').fill(text);
  await bob.page.getByTestId('composer').press('Enter');
  const message = alice.page.locator('[data-testid="message"][data-from="bob"]').last();
  const body = message.getByTestId('message-text');
  await expect(body).toHaveText(text); // segments join back to the text, no extra spaces
  const links = message.getByTestId('message-link');
  await expect(links).toHaveCount(2);
  await expect(links.first()).toHaveAttribute('href', url);
  await expect(links.first()).toHaveText(url); // the '.' after it is not part of it
  await expect(links.nth(1)).toHaveAttribute('href', 'https://example.net/faq'); // nor the ')!'
  await expect(message.locator('a')).toHaveCount(2); // nothing else became markup
  const windowUrl = alice.page.url();
  await screenshot(alice.page, 'basics-01-link-in-message');

  // Click, then cancel: nothing is opened.
  await links.first().click();
  const dialog = alice.page.getByTestId('link-dialog');
  await expect(dialog).toBeVisible();
  await expect(dialog.getByRole('heading', { name: 'Open this link in your browser?' })).toBeVisible();
  await expect(dialog.getByTestId('link-url')).toHaveText(url);
  await screenshot(alice.page, 'basics-02-link-confirm');
  await dialog.getByRole('button', { name: 'Cancel' }).click();
  await expect(dialog).toBeHidden();
  expect(alice.app.links.opened).toEqual([]);
  expect(alice.page.url()).toBe(windowUrl);
  await screenshot(alice.page, 'basics-03-link-cancelled');

  // Click, then confirm: exactly that URL reaches the port, once; the window does not navigate.
  await links.first().click();
  await expect(dialog).toBeVisible();
  await dialog.getByTestId('link-open').click();
  await expect(dialog).toBeHidden();
  await expect.poll(() => alice.app.links.opened).toEqual([url]);
  expect(alice.page.url()).toBe(windowUrl);
  expect(alice.context.pages()).toHaveLength(1);
  await screenshot(alice.page, 'basics-04-link-opened');

  // Escape closes the question like Cancel.
  await links.nth(1).click();
  await expect(dialog).toBeVisible();
  await alice.page.keyboard.press('Escape');
  await expect(dialog).toBeHidden();
  expect(alice.app.links.opened).toEqual([url]);
  expect(alice.page.url()).toBe(windowUrl);
});

test('right-to-left messages and the composer carry dir="auto"', async () => {
  const arabic = 'مرحبا بالجميع، الاجتماع غدا.';
  const hebrew = 'שלום לכולם, הפגישה מחר.';
  for (const text of [arabic, hebrew]) {
    await bob.page.getByTestId('composer').fill(text);
    await bob.page.getByTestId('composer').press('Enter');
  }
  for (const text of [arabic, hebrew]) {
    const body = alice.page
      .locator('[data-testid="message"][data-from="bob"]')
      .getByTestId('message-text')
      .filter({ hasText: text });
    await expect(body).toHaveText(text);
    await expect(body).toHaveAttribute('dir', 'auto');
    // The browser resolves "auto" from the first strong character: right to left.
    expect(await body.evaluate((el) => el.matches(':dir(rtl)'))).toBe(true);
  }
  const composer = alice.page.getByTestId('composer');
  await expect(composer).toHaveAttribute('dir', 'auto');
  await composer.fill(hebrew);
  expect(await composer.evaluate((el) => el.matches(':dir(rtl)'))).toBe(true);
  await screenshot(alice.page, 'basics-05-right-to-left');
  await composer.fill('');
});

test('a paste over the limit stays whole, says why, and Send is disabled until it fits', async () => {
  const { page, context } = alice;
  await context.grantPermissions(['clipboard-read', 'clipboard-write'], {
    origin: new URL(members.url).origin,
  });
  const over = 120;
  const long = `${'Lorem ipsum dolor sit amet. '.repeat(Math.ceil((MAX_MESSAGE_CHARS + over) / 28))}`.slice(
    0,
    MAX_MESSAGE_CHARS + over,
  );
  const composer = page.getByTestId('composer');
  await composer.click();
  await page.evaluate((t) => navigator.clipboard.writeText(t), long);
  await page.keyboard.press('ControlOrMeta+V');
  await expect.poll(async () => (await composer.inputValue()).length).toBe(long.length);
  expect(await composer.inputValue()).toBe(long);
  await expect(composer).not.toHaveAttribute('maxlength');
  const reason = page.getByTestId('composer-too-long');
  await expect(reason).toHaveText(
    `This message is ${over} characters too long (limit ${MAX_MESSAGE_CHARS}).`,
  );
  await expect(reason).toHaveAttribute('role', 'alert');
  await expect(page.getByTestId('composer-count')).toHaveText(
    `${MAX_MESSAGE_CHARS + over} / ${MAX_MESSAGE_CHARS}`,
  );
  await expect(page.getByTestId('send')).toBeDisabled();
  await expect(composer).toHaveAttribute('aria-invalid', 'true');
  await screenshot(page, 'basics-06-too-long');

  // Enter does not send it either: the text stays, nothing new in the timeline.
  const own = await page.getByTestId('own-message').count();
  await composer.press('Enter');
  expect(await composer.inputValue()).toBe(long);
  expect(await page.getByTestId('own-message').count()).toBe(own);

  // Cut down to the limit: the reason goes, the counter stays (near the limit), Send is enabled.
  await composer.fill(long.slice(0, MAX_MESSAGE_CHARS));
  await expect(reason).toBeHidden();
  await expect(page.getByTestId('composer-count')).toHaveText(`${MAX_MESSAGE_CHARS} / ${MAX_MESSAGE_CHARS}`);
  await expect(page.getByTestId('send')).toBeEnabled();
  await screenshot(page, 'basics-07-at-limit');
  await composer.fill('');
  await expect(page.getByTestId('composer-count')).toBeHidden();
});

test('no errors in the page console (CSP violations included)', () => {
  expect(members.consoleErrors).toEqual([]);
});
