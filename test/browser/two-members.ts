/**
 * The setup two browser specs share (chat-basics, timeline-unseen): alice and bob on real app
 * services, one real relay run by bob's app, both chatting, each service bridged to a page of the
 * built renderer. Page errors and console errors are gathered for the spec's last check.
 */
import { chromium, expect, type Browser } from '@playwright/test';
import { makeTestGroup, TEST_PASSWORD } from '../helpers/group.js';
import {
  createTestApp,
  importBundle,
  startRelay,
  unwrap,
  until,
  type TestApp,
} from '../integration/app-harness.js';
import {
  assertBuilt,
  chromiumPath,
  CHROMIUM_ARGS,
  openBridgedWindow,
  serveRenderer,
  type BridgedWindow,
} from './support.js';

export type Member = BridgedWindow;

export interface TwoMembers {
  alice: Member;
  bob: Member;
  /** The renderer's origin (for clipboard permissions and the like). */
  url: string;
  consoleErrors: string[];
  close(): Promise<void>;
}

export async function startTwoMembers(): Promise<TwoMembers> {
  assertBuilt();
  const browser: Browser = await chromium.launch({
    executablePath: chromiumPath(),
    headless: true,
    args: CHROMIUM_ARGS,
  });
  const server = await serveRenderer();
  const consoleErrors: string[] = [];
  const members: Member[] = [];
  const open = async (name: string, app: TestApp): Promise<Member> => {
    const member = await openBridgedWindow(browser, server.url, name, app, consoleErrors);
    members.push(member);
    return member;
  };
  const group = makeTestGroup(['alice', 'bob']);
  const apps: Record<string, TestApp> = {};
  for (const name of ['alice', 'bob']) {
    const app = await createTestApp();
    unwrap(await importBundle(app, group.bundles[name] as string, TEST_PASSWORD));
    apps[name] = app;
  }
  const relay = unwrap(await startRelay(apps.bob as TestApp, group.relayBundle, TEST_PASSWORD));
  for (const app of Object.values(apps)) {
    unwrap(await app.service.connect({ host: '127.0.0.1', port: relay.port as number }));
  }
  for (const app of Object.values(apps)) {
    await until(() => app.service.snapshot().connection.state === 'Chatting', 'both chatting');
  }
  const alice = await open('alice', apps.alice as TestApp);
  const bob = await open('bob', apps.bob as TestApp);
  await expect(alice.page.getByTestId('connection-indicator')).toHaveAttribute('data-state', 'Chatting');
  return {
    alice,
    bob,
    url: server.url,
    consoleErrors,
    async close() {
      for (const m of members) {
        m.unbridge();
        await m.app.service.dispose().catch(() => undefined);
      }
      await browser.close();
      await server.close();
    },
  };
}
