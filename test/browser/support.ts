/// <reference lib="dom" />
/**
 * Browser-test plumbing: find Chromium, serve the built renderer from 127.0.0.1, and bridge a
 * page to a real app service through the same contract the preload implements (one function per
 * contract method on window.securechat, onEvent with payloads only, arguments validated by the
 * same invoker bindIpc uses).
 */
import { existsSync, mkdirSync, readFileSync, statSync } from 'node:fs';
import { createServer, type Server } from 'node:http';
import type { AddressInfo } from 'node:net';
import { extname, join, resolve, sep } from 'node:path';
import type { Browser, BrowserContext, Page } from '@playwright/test';
import { createInvoker } from '../../src-main/app/ipc-router.js';
import type { AppService } from '../../src-main/app/service.js';
import type { TestApp } from '../integration/app-harness.js';
import { CONTRACT, METHODS, type AppEvent } from '../../src-shared/ipc-contract.js';

export const ROOT = resolve(import.meta.dirname, '../..');
export const RENDERER_DIR = join(ROOT, 'out/renderer');
export const SCREENSHOT_DIR = join(ROOT, 'test-results/browser');

export const CHROMIUM_ARGS = [
  '--no-sandbox',
  '--disable-gpu',
  '--disable-background-networking',
  '--disable-component-update',
  '--no-first-run',
];

/** CHROMIUM_PATH, else Debian's Chromium. Throws with the install command when none is there. */
export function chromiumPath(): string {
  const candidates = [process.env.CHROMIUM_PATH, '/usr/lib/chromium/chromium', '/usr/bin/chromium'].filter(
    (p): p is string => typeof p === 'string' && p.length > 0,
  );
  const found = candidates.find((p) => existsSync(p));
  if (!found) {
    throw new Error(
      `No Chromium found (looked at ${candidates.join(', ')}). Install it with: apt-get update && apt-get install -y chromium (or set CHROMIUM_PATH).`,
    );
  }
  return found;
}

export function assertBuilt(): void {
  if (!existsSync(join(RENDERER_DIR, 'index.html'))) {
    throw new Error('The renderer is not built: run `npm run build` first.');
  }
}

const TYPES: Record<string, string> = {
  '.html': 'text/html; charset=utf-8',
  '.js': 'text/javascript; charset=utf-8',
  '.css': 'text/css; charset=utf-8',
  '.svg': 'image/svg+xml',
  '.png': 'image/png',
  '.woff2': 'font/woff2',
};

/** A tiny static server for out/renderer on 127.0.0.1 (module scripts do not load from file://). */
export async function serveRenderer(): Promise<{ url: string; close(): Promise<void> }> {
  const root = resolve(RENDERER_DIR);
  const server: Server = createServer((req, res) => {
    const path = decodeURIComponent(new URL(req.url ?? '/', 'http://x').pathname);
    const file = resolve(root, `.${path === '/' ? '/index.html' : path}`);
    if (!file.startsWith(root + sep) || !existsSync(file) || !statSync(file).isFile()) {
      res.writeHead(404).end('not found');
      return;
    }
    res.writeHead(200, {
      'content-type': TYPES[extname(file)] ?? 'application/octet-stream',
      'cache-control': 'no-store',
    });
    res.end(readFileSync(file));
  });
  await new Promise<void>((r) => server.listen(0, '127.0.0.1', r));
  const { port } = server.address() as AddressInfo;
  return {
    url: `http://127.0.0.1:${port}/index.html`,
    close: () => new Promise<void>((r) => server.close(() => r())),
  };
}

/**
 * Gives the page a window.securechat answered by `service`, exactly like the preload: the
 * contract's methods (one argument, forwarded to the validating invoker) and onEvent.
 */
export async function bridgePage(page: Page, service: AppService): Promise<() => void> {
  const invoke = createInvoker(service);
  await page.exposeFunction('__scxInvoke', (channel: string, arg: unknown) => invoke(channel, arg));
  const methods = METHODS.map((m) => [m, CONTRACT[m].channel] as const);
  await page.addInitScript((methodList: (readonly [string, string])[]) => {
    const w = window as unknown as {
      __scxInvoke(channel: string, arg: unknown): Promise<unknown>;
      __scxEmit?: (event: unknown) => void;
    };
    const listeners = new Set<(event: unknown) => void>();
    const api: Record<string, unknown> = {};
    for (const [method, channel] of methodList) api[method] = (arg?: unknown) => w.__scxInvoke(channel, arg);
    api.onEvent = (listener: (event: unknown) => void) => {
      listeners.add(listener);
      return () => listeners.delete(listener);
    };
    Object.defineProperty(window, 'securechat', {
      value: Object.freeze(api),
      writable: false,
      configurable: false,
    });
    w.__scxEmit = (event) => {
      for (const l of [...listeners]) l(event);
    };
  }, methods);
  // Events in order, one evaluate at a time (like webContents.send).
  let queue = Promise.resolve();
  return service.on((event: AppEvent) => {
    queue = queue
      .then(() =>
        page.evaluate(
          (e) => (window as unknown as { __scxEmit?: (e: unknown) => void }).__scxEmit?.(e),
          event,
        ),
      )
      .catch(() => undefined);
  });
}

export async function screenshot(page: Page, name: string): Promise<string> {
  mkdirSync(SCREENSHOT_DIR, { recursive: true });
  const path = join(SCREENSHOT_DIR, `${name}.png`);
  await page.screenshot({ path, fullPage: false, animations: 'disabled' });
  return path;
}

/** One member's window: a page of the built renderer in its own context, bridged to its service. */
export interface BridgedWindow {
  app: TestApp;
  context: BrowserContext;
  page: Page;
  unbridge: () => void;
}

/**
 * Opens `url` for `app` in a new 1360×860 light context; console errors and page errors are
 * pushed to `errors`, prefixed with `name`, for the spec's last check.
 */
export async function openBridgedWindow(
  browser: Browser,
  url: string,
  name: string,
  app: TestApp,
  errors: string[],
  viewport = { width: 1360, height: 860 },
): Promise<BridgedWindow> {
  const context = await browser.newContext({ viewport, colorScheme: 'light' });
  const page = await context.newPage();
  page.on('console', (msg) => {
    if (msg.type() === 'error') errors.push(`${name}: ${msg.text()}`);
  });
  page.on('pageerror', (err) => errors.push(`${name}: ${err.message}`));
  const unbridge = await bridgePage(page, app.service);
  await page.goto(url);
  return { app, context, page, unbridge };
}
