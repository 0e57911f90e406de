/**
 * Playwright: `browser` runs the built renderer in Debian's Chromium against real app services
 * (test/browser); `electron` runs the real Electron app where its binary exists (test/electron)
 * and skips, saying why, where it does not.
 */
import { defineConfig } from '@playwright/test';

export default defineConfig({
  outputDir: 'test-results/playwright',
  reporter: [['list']],
  workers: 1,
  fullyParallel: false,
  timeout: 300_000,
  expect: { timeout: 30_000 },
  projects: [
    { name: 'browser', testDir: 'test/browser', testMatch: /.*\.spec\.ts$/ },
    { name: 'electron', testDir: 'test/electron', testMatch: /.*\.spec\.ts$/ },
  ],
});
