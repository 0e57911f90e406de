/**
 * The shell's security wiring against stand-ins of the Electron objects it touches
 * (webPreferences, webContents handlers, session permission handlers, the app:// file mapping,
 * the menu), and the rule that only main.ts and preload.ts import electron at run time.
 */
import { readdirSync, readFileSync } from 'node:fs';
import { join, resolve } from 'node:path';
import type { MenuItemConstructorOptions } from 'electron';
import { describe, expect, it, vi } from 'vitest';
import { buildMenuTemplate, type MenuActions } from '../../src-main/electron/menu.js';
import {
  APP_INDEX_URL,
  CONTENT_SECURITY_POLICY,
  hardenSession,
  hardenWebContents,
  isAppUrl,
  resolveAppFile,
  webPreferences,
  type SessionLike,
  type WebContentsLike,
} from '../../src-main/electron/security.js';

const ROOT = resolve(import.meta.dirname, '../..');

describe('window web preferences', () => {
  it('isolate, sandbox and keep Node out of the renderer', () => {
    const prefs = webPreferences('/app/out/preload/index.cjs');
    expect(prefs).toMatchObject({
      preload: '/app/out/preload/index.cjs',
      contextIsolation: true,
      sandbox: true,
      nodeIntegration: false,
      nodeIntegrationInWorker: false,
      nodeIntegrationInSubFrames: false,
      webSecurity: true,
      allowRunningInsecureContent: false,
      webviewTag: false,
    });
  });

  it('the CSP allows only the app’s own origin: no remote content, no eval, no inline script', () => {
    const directives = Object.fromEntries(
      CONTENT_SECURITY_POLICY.split(';').map((d) => {
        const [name, ...values] = d.trim().split(/\s+/);
        return [name, values];
      }),
    );
    expect(directives['default-src']).toEqual(["'self'"]);
    expect(directives['script-src']).toEqual(["'self'"]);
    expect(directives['object-src']).toEqual(["'none'"]);
    expect(CONTENT_SECURITY_POLICY).not.toMatch(/unsafe-eval|unsafe-inline|https?:|\*/);
    // The page's own meta CSP says the same (it is what the browser tests run under).
    const html = readFileSync(join(ROOT, 'src-renderer/index.html'), 'utf8');
    const meta = /http-equiv="Content-Security-Policy"\s+content="([^"]+)"/.exec(html)?.[1];
    expect(meta).toBeDefined();
    expect(meta).toContain("default-src 'self'");
    expect(meta).toContain("script-src 'self'");
    expect(meta).not.toMatch(/unsafe-eval|unsafe-inline|https?:/);
  });
});

describe('navigation and new windows', () => {
  function fakeContents() {
    const handlers = new Map<string, (event: { preventDefault(): void }, url: string) => void>();
    let openHandler: ((details: { url: string }) => { action: string }) | undefined;
    const contents = {
      on: (name: string, h: (event: { preventDefault(): void }, url: string) => void) => {
        handlers.set(name, h);
        return contents;
      },
      setWindowOpenHandler: (h: (details: { url: string }) => { action: string }) => {
        openHandler = h;
      },
    };
    return {
      contents: contents as unknown as WebContentsLike,
      fire(name: string, url: string): boolean {
        const preventDefault = vi.fn();
        handlers.get(name)?.({ preventDefault }, url);
        return preventDefault.mock.calls.length > 0;
      },
      open: (url: string) => openHandler?.({ url }),
      has: (name: string) => handlers.has(name),
    };
  }

  it('denies navigation away from the app and every window.open', () => {
    const c = fakeContents();
    hardenWebContents(c.contents, (url) => isAppUrl(url));
    expect(c.fire('will-navigate', 'https://evil.example/')).toBe(true);
    expect(c.fire('will-navigate', 'file:///etc/passwd')).toBe(true);
    expect(c.fire('will-redirect', 'https://evil.example/')).toBe(true);
    expect(c.fire('will-navigate', APP_INDEX_URL)).toBe(false);
    expect(c.fire('will-attach-webview', 'x')).toBe(true);
    expect(c.open('https://example.com')).toEqual({ action: 'deny' });
    expect(c.open(APP_INDEX_URL)).toEqual({ action: 'deny' });
  });

  it('knows the app origin, and the dev server only when given', () => {
    expect(isAppUrl('app://securechat/index.html')).toBe(true);
    expect(isAppUrl('app://other/index.html')).toBe(false);
    expect(isAppUrl('http://localhost:5173/')).toBe(false);
    expect(isAppUrl('http://localhost:5173/x', 'http://localhost:5173')).toBe(true);
    expect(isAppUrl('not a url')).toBe(false);
  });
});

describe('session permissions', () => {
  it('deny every permission request, check and device', () => {
    let request: ((c: unknown, p: string, cb: (granted: boolean) => void) => void) | undefined;
    let check: ((...a: unknown[]) => boolean) | undefined;
    let device: ((...a: unknown[]) => boolean) | undefined;
    const session = {
      setPermissionRequestHandler: (h: typeof request) => (request = h),
      setPermissionCheckHandler: (h: typeof check) => (check = h),
      setDevicePermissionHandler: (h: typeof device) => (device = h),
    } as unknown as SessionLike;
    hardenSession(session);
    for (const permission of ['media', 'geolocation', 'notifications', 'clipboard-read', 'openExternal']) {
      const cb = vi.fn();
      request?.({}, permission, cb);
      expect(cb).toHaveBeenCalledWith(false);
      expect(check?.({}, permission, 'app://securechat', {})).toBe(false);
    }
    expect(device?.({})).toBe(false);
  });
});

describe('app:// file mapping', () => {
  const root = '/opt/app/out/renderer';
  it('maps into the renderer folder only', () => {
    expect(resolveAppFile('app://securechat/', root)).toBe('/opt/app/out/renderer/index.html');
    expect(resolveAppFile('app://securechat/assets/index.js', root)).toBe(
      '/opt/app/out/renderer/assets/index.js',
    );
    expect(resolveAppFile('app://securechat/../../etc/passwd', root)).toBe(
      '/opt/app/out/renderer/etc/passwd',
    );
    // URL parsing folds encoded dot segments into the path: it stays inside the folder.
    expect(resolveAppFile('app://securechat/%2e%2e/%2e%2e/etc/passwd', root)).toBe(
      '/opt/app/out/renderer/etc/passwd',
    );
    expect(resolveAppFile('app://securechat/..%2f..%2fetc/passwd', root)).toBeNull();
    expect(resolveAppFile('app://other/index.html', root)).toBeNull();
    expect(resolveAppFile('file:///etc/passwd', root)).toBeNull();
    expect(resolveAppFile('app://securechat/%00', root)).toBeNull();
  });
});

describe('application menu', () => {
  function items(template: MenuItemConstructorOptions[]): MenuItemConstructorOptions[] {
    return template.flatMap((i) => [i, ...(Array.isArray(i.submenu) ? items(i.submenu) : [])]);
  }
  function click(template: MenuItemConstructorOptions[], id: string): void {
    const item = items(template).find((i) => i.id === id);
    expect(item, id).toBeDefined();
    (item?.click as () => void)();
  }

  for (const platform of ['linux', 'win32', 'darwin']) {
    it(`has File / Relay / Connection / Help items wired to the service (${platform})`, () => {
      const actions: MenuActions = { open: vi.fn(), stopRelay: vi.fn(), disconnect: vi.fn(), quit: vi.fn() };
      const template = buildMenuTemplate(actions, platform);
      const labels = template.map((t) => t.label ?? t.role);
      expect(labels).toEqual(expect.arrayContaining(['&File', '&Relay', '&Connection', '&Help']));
      click(template, 'import-identity');
      click(template, 'create-group');
      click(template, 'open-group-ca');
      click(template, 'start-relay');
      click(template, 'connect');
      click(template, 'about');
      expect((actions.open as ReturnType<typeof vi.fn>).mock.calls.map((c) => c[0])).toEqual([
        'import-identity',
        'create-group',
        'open-group-ca',
        'start-relay',
        'connect',
        'about',
      ]);
      click(template, 'stop-relay');
      click(template, 'disconnect');
      expect(actions.stopRelay).toHaveBeenCalledTimes(1);
      expect(actions.disconnect).toHaveBeenCalledTimes(1);
    });
  }
});

describe('process boundary', () => {
  it('only main.ts and preload.ts import electron at run time; the rest of the shell imports types', () => {
    const dir = join(ROOT, 'src-main/electron');
    const runtime = readdirSync(dir)
      .filter((f) => f.endsWith('.ts'))
      .filter((f) =>
        /^import\s+(?!type\b)[^;]*from\s+'electron(-store)?'/m.test(readFileSync(join(dir, f), 'utf8')),
      );
    expect(runtime.sort()).toEqual(['main.ts', 'preload.ts']);
  });

  it('the app service and the shared contract import no electron at all', () => {
    for (const sub of ['src-main/app', 'src-shared', 'src-renderer/src']) {
      const files = readdirSync(join(ROOT, sub), { recursive: true }) as string[];
      for (const f of files.filter((x) => /\.(ts|svelte)$/.test(x))) {
        expect(readFileSync(join(ROOT, sub, f), 'utf8'), `${sub}/${f}`).not.toMatch(/from\s+'electron/);
      }
    }
  });
});
