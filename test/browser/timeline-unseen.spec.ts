/// <reference lib="dom" />
/**
 * The timeline's "New messages" divider and "Jump to latest" button in a real browser (the built
 * renderer, two pages on real app services and one real relay): with alice scrolled up, bob's
 * new messages get a divider right above the first of them ("3 new messages", role="separator")
 * and a jump button with the count; clicking it (or Tab to it and Enter, or End in the timeline,
 * with reduced motion) brings her to the bottom and the button goes. At the bottom a new message
 * keeps her there, with no button, and clears the divider she has seen.
 * Screenshots of each step: test-results/browser/unseen-*.png.
 */
import { expect, test } from '@playwright/test';
import { unwrap } from '../integration/app-harness.js';
import { screenshot } from './support.js';
import { startTwoMembers, type Member, type TwoMembers } from './two-members.js';

let members: TwoMembers;
let alice: Member;
let bob: Member;

test.describe.configure({ mode: 'serial' });

/** bob sends each text (through his service) and alice's window shows the last of them. */
async function bobSends(texts: string[]): Promise<void> {
  for (const text of texts) unwrap(await bob.app.service.send({ text }));
  const last = texts[texts.length - 1] as string;
  await expect(
    alice.page.locator('[data-testid="message"][data-from="bob"]').getByTestId('message-text').last(),
  ).toHaveText(last);
}

/** How far alice's timeline is from its bottom, in pixels. */
function distanceFromBottom(): Promise<number> {
  return alice.page
    .getByTestId('timeline')
    .evaluate((el) => Math.round(el.scrollHeight - el.scrollTop - el.clientHeight));
}

/** Scrolls alice's timeline to the top with the mouse wheel, as a user would. */
async function scrollAliceUp(): Promise<void> {
  await alice.page.getByTestId('timeline').hover();
  await expect
    .poll(async () => {
      await alice.page.mouse.wheel(0, -2000);
      return alice.page.getByTestId('timeline').evaluate((el) => el.scrollTop);
    })
    .toBe(0);
  expect(await distanceFromBottom()).toBeGreaterThan(300);
}

test.beforeAll(async () => {
  members = await startTwoMembers();
  ({ alice, bob } = members);
});

test.afterAll(async () => {
  await members?.close();
});

test('scrolled up, new messages get a divider above the first and a jump button that goes to the bottom', async () => {
  const { page } = alice;
  const divider = page.getByTestId('timeline').getByRole('separator');
  const jump = page.getByRole('button', { name: /^Jump to latest/ });

  // 40 messages: alice's timeline scrolls and, at the bottom, follows them.
  await bobSends(Array.from({ length: 40 }, (_, i) => `Filler message ${i + 1}`));
  await expect(page.getByTestId('message')).toHaveCount(40);
  await expect.poll(distanceFromBottom).toBeLessThan(2);
  await expect(divider).toHaveCount(0);
  await expect(jump).toHaveCount(0);

  // Scrolled up with nothing new: no button.
  await scrollAliceUp();
  await expect(jump).toHaveCount(0);

  await bobSends(['First unseen', 'Second unseen', 'Third unseen']);
  await expect(divider).toHaveCount(1);
  await expect(divider).toHaveText('3 new messages');
  await expect(divider).toHaveAccessibleName('3 new messages');
  // Right above the first of them.
  const next = await divider.evaluate(
    (el) => el.nextElementSibling?.querySelector('[data-testid="message-text"]')?.textContent ?? '',
  );
  expect(next).toBe('First unseen');
  await expect(jump).toBeVisible();
  await expect(jump).toHaveAccessibleName('Jump to latest: 3 new messages');
  await expect(jump).toContainText('3');
  // The view stayed where alice left it.
  expect(await page.getByTestId('timeline').evaluate((el) => el.scrollTop)).toBe(0);
  await screenshot(page, 'unseen-01-scrolled-up');

  await jump.click();
  await expect.poll(distanceFromBottom).toBeLessThan(2);
  await expect(jump).toHaveCount(0);
  // The divider stays until she sends or a newer message arrives.
  await expect(divider).toHaveText('3 new messages');
  await screenshot(page, 'unseen-02-jumped');
});

test('at the bottom a new message keeps the view at the bottom, shows no button and clears the seen divider', async () => {
  const { page } = alice;
  await bobSends(['At the bottom']);
  await expect.poll(distanceFromBottom).toBeLessThan(2);
  await expect(page.getByRole('button', { name: /^Jump to latest/ })).toHaveCount(0);
  await expect(page.getByTestId('timeline').getByRole('separator')).toHaveCount(0);
  await screenshot(page, 'unseen-03-pinned');
});

test('the keyboard reaches the button (Tab, Enter), and End in the timeline jumps too', async () => {
  const { page } = alice;
  const timeline = page.getByTestId('timeline');
  const jump = page.getByRole('button', { name: /^Jump to latest/ });

  await scrollAliceUp();
  await bobSends(['Keyboard one', 'Keyboard two']);
  await expect(page.getByTestId('timeline').getByRole('separator')).toHaveText('2 new messages');
  await expect(jump).toHaveAccessibleName('Jump to latest: 2 new messages');
  await timeline.focus();
  await page.keyboard.press('Tab');
  await expect(jump).toBeFocused();
  await screenshot(page, 'unseen-04-button-focused');
  await page.keyboard.press('Enter');
  await expect.poll(distanceFromBottom).toBeLessThan(2);
  await expect(jump).toHaveCount(0);

  // End, with reduced motion (the scroll is instant then).
  await page.emulateMedia({ reducedMotion: 'reduce' });
  await scrollAliceUp();
  await bobSends(['End key one']);
  await expect(page.getByTestId('timeline').getByRole('separator')).toHaveText('1 new message');
  await expect(jump).toHaveAccessibleName('Jump to latest: 1 new message');
  await timeline.focus();
  await page.keyboard.press('End');
  await expect.poll(distanceFromBottom).toBeLessThan(2);
  await expect(jump).toHaveCount(0);
  await screenshot(page, 'unseen-05-end-key');
});

test('no errors in the page console (CSP violations included)', () => {
  expect(members.consoleErrors).toEqual([]);
});
