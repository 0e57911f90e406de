/**
 * The shell's IPC wiring against a stand-in of ipcMain / ipcRenderer / contextBridge: every
 * contract channel bound, the sender frame checked, every argument validated, results as the
 * union; the preload exposes exactly the contract.
 */
import { readFileSync } from 'node:fs';
import { dirname, join, relative, resolve } from 'node:path';
import type { IpcMainInvokeEvent } from 'electron';
import { describe, expect, it, vi } from 'vitest';
import { bindIpc, createSenderCheck, type IpcMainLike } from '../../src-main/electron/ipc-binding.js';
import {
  API_KEY,
  createPreloadApi,
  exposeApi,
  type IpcRendererLike,
} from '../../src-main/electron/preload-api.js';
import { CHANNELS } from '../../src-shared/ipc-channels.js';
import {
  CONTRACT,
  EVENT_CHANNEL,
  METHODS,
  type AppEvent,
  type Method,
  type Result,
  type ServiceApi,
} from '../../src-shared/ipc-contract.js';

type Handler = (event: IpcMainInvokeEvent, ...args: unknown[]) => Promise<unknown>;

function fakeIpcMain(): IpcMainLike & { handlers: Map<string, Handler> } {
  const handlers = new Map<string, Handler>();
  return {
    handlers,
    handle: (channel: string, listener: Handler) => {
      if (handlers.has(channel)) throw new Error(`second handler for ${channel}`);
      handlers.set(channel, listener);
    },
    removeHandler: (channel: string) => void handlers.delete(channel),
  } as unknown as IpcMainLike & { handlers: Map<string, Handler> };
}

function handlerOf(ipc: { handlers: Map<string, Handler> }, channel: string): Handler {
  const handler = ipc.handlers.get(channel);
  if (!handler) throw new Error(`no handler for ${channel}`);
  return handler;
}

/** A service that records what reaches it. */
function recordingService(): ServiceApi & { calls: { method: Method; arg: unknown }[] } {
  const calls: { method: Method; arg: unknown }[] = [];
  const service: Record<string, unknown> = { calls };
  for (const method of METHODS) {
    service[method] = async (arg?: unknown): Promise<Result<unknown>> => {
      calls.push({ method, arg });
      return { ok: true, value: `${method}-done` };
    };
  }
  return service as unknown as ServiceApi & { calls: { method: Method; arg: unknown }[] };
}

const TOKEN = 'tok_0123456789abcdefXYZ';
const FP = 'ab'.repeat(32);

/** One valid argument per method, so every channel is exercised. */
const VALID: Record<Method, unknown> = {
  getSnapshot: undefined,
  chooseBundle: { purpose: 'identity' },
  chooseFolder: undefined,
  importIdentity: { token: TOKEN, password: 'pw' },
  unlockIdentity: { password: 'pw' },
  removeIdentity: undefined,
  connect: { host: '127.0.0.1', port: 7443 },
  disconnect: undefined,
  send: { text: 'hello' },
  setVerified: { name: 'bob', fingerprint: FP, verified: true },
  rekey: undefined,
  startRelay: { token: TOKEN, password: 'pw', port: 0, host: '127.0.0.1' },
  stopRelay: undefined,
  createGroup: {
    folderToken: TOKEN,
    groupName: 'Team',
    members: ['alice', 'bob'],
    relayName: 'relay',
    password: 'long enough',
    overwrite: false,
  },
  updateSettings: { theme: 'dark' },
  openExternal: { url: 'https://example.org/a?b=c#d' },
  historyPage: { beforeId: 120, limit: 100 },
  searchHistory: { text: 'budget', limit: 20 },
  latestLines: undefined,
  switchGroup: { id: `${'ab'.repeat(32)}/alice` },
  openGroupCa: { token: 'a'.repeat(24), password: 'organiser secret' },
  closeGroupCa: undefined,
  addMember: { name: 'dave', password: 'dave’s new password', caPassword: 'organiser secret' },
  removeMember: { name: 'carol', reason: 'lost laptop', caPassword: 'organiser secret' },
};

/** Arguments a compromised renderer might send; each must be refused before the service. */
const INVALID: Record<Method, unknown[]> = {
  getSnapshot: [{}, 'x', 1],
  chooseBundle: [undefined, { purpose: 'other' }, { purpose: 'identity', path: '/etc/passwd' }],
  chooseFolder: [{ path: '/' }],
  importIdentity: [
    { token: TOKEN },
    { token: '../../etc/passwd', password: 'pw' },
    { path: '/tmp/x.p12', password: 'pw' },
    { token: TOKEN, password: '' },
    { token: TOKEN, password: 'x'.repeat(2000) },
  ],
  unlockIdentity: [{ password: 42 }, { password: 'pw', extra: true }],
  removeIdentity: [{ all: true }],
  connect: [
    { host: '127.0.0.1', port: 0 },
    { host: '127.0.0.1', port: 70000 },
    { host: 'http://evil/', port: 1 },
    { host: '127.0.0.1', port: '7443' },
    { host: '', port: 1 },
  ],
  disconnect: [[]],
  // Over MAX_MESSAGE_CHARS but within the request bound reaches the service (MessageTooLong there).
  send: [{ text: '' }, { text: '   ' }, { text: 'x'.repeat(4 * 16 * 1024 + 1) }, { text: 1 }, 'hello'],
  setVerified: [
    { name: 'bob', fingerprint: 'AB'.repeat(32), verified: true },
    { name: '../bob', fingerprint: FP, verified: true },
    { name: 'bob', fingerprint: FP, verified: 'yes' },
  ],
  rekey: [{ epoch: 9 }],
  startRelay: [
    { token: TOKEN, password: 'pw', port: -1 },
    { token: TOKEN, password: 'pw', port: 1, host: '8.8.8.8' },
    { bundlePath: '/x', password: 'pw', port: 1 },
  ],
  stopRelay: [{ force: true }],
  createGroup: [
    {
      folderToken: TOKEN,
      groupName: 'Team\u0007',
      members: ['alice'],
      relayName: 'relay',
      password: 'long enough',
      overwrite: false,
    },
    {
      folderToken: TOKEN,
      groupName: 'T',
      members: [],
      relayName: 'relay',
      password: 'long enough',
      overwrite: false,
    },
    {
      folderToken: TOKEN,
      groupName: 'T',
      members: ['a', 'a'],
      relayName: 'relay',
      password: 'long enough',
      overwrite: false,
    },
    {
      folderToken: TOKEN,
      groupName: 'T',
      members: ['a'],
      relayName: 'a',
      password: 'long enough',
      overwrite: false,
    },
    {
      folderToken: TOKEN,
      groupName: 'T',
      members: ['a/b'],
      relayName: 'relay',
      password: 'long enough',
      overwrite: false,
    },
    {
      folderToken: TOKEN,
      groupName: 'T',
      members: ['a'],
      relayName: 'relay',
      password: 'short',
      overwrite: false,
    },
  ],
  updateSettings: [{ theme: 'neon' }, { notifications: 'on' }, { other: 1 }],
  openExternal: [
    { url: 'javascript:alert(1)' },
    { url: 'file:///etc/passwd' },
    { url: 'data:text/html,<script>1</script>' },
    { url: 'app://securechat/index.html' },
    { url: 'mailto:a@example.org' },
    { url: 'https://' },
    { url: 'not a url' },
    { url: `https://example.org/${'a'.repeat(2048)}` },
    { url: 'https://example.org', target: '_blank' },
    { url: 42 },
    'https://example.org',
  ],
  historyPage: [
    { beforeId: 0 },
    { beforeId: 1.5 },
    { beforeId: '12' },
    { limit: 0 },
    { limit: 201 },
    { beforeId: 3, extra: true },
  ],
  searchHistory: [{ text: '' }, { text: '  ' }, { text: 'x'.repeat(201) }, { text: 'a', limit: 101 }, 'a'],
  latestLines: [{ all: true }],
  switchGroup: [{ id: 'alice' }, { id: `${'ab'.repeat(32)}/../x` }, { id: `${'AB'.repeat(32)}/alice` }, {}],
  openGroupCa: [
    { token: '../ca.p12', password: 'x' },
    { token: 'a'.repeat(24) },
    { path: '/etc/ca.p12', password: 'x' },
  ],
  closeGroupCa: [{ now: true }],
  addMember: [
    { name: '../dave', password: 'long enough password', caPassword: 'x' },
    { name: 'dave', password: 'short', caPassword: 'x' },
    { name: 'dave', password: 'long enough password', caPassword: '' },
    { name: 'dave', password: 'long enough password', caPassword: 'x', folder: '/tmp' },
  ],
  removeMember: [
    { name: 'carol', reason: 'x'.repeat(201), caPassword: 'x' },
    { name: 'carol', reason: 'two\nlines', caPassword: 'x' },
    { name: 'carol', caPassword: 'x' },
    { name: 'car ol', reason: '', caPassword: 'x' },
  ],
};

const trustedEvent = {} as IpcMainInvokeEvent;

describe('bindIpc (main side)', () => {
  it('binds exactly the contract’s channels, each once', () => {
    const ipc = fakeIpcMain();
    bindIpc(ipc, recordingService(), () => true);
    expect([...ipc.handlers.keys()].sort()).toEqual(METHODS.map((m) => CONTRACT[m].channel).sort());
    expect(new Set(METHODS.map((m) => CONTRACT[m].channel)).size).toBe(METHODS.length);
  });

  it('passes valid arguments to the service and returns its result union', async () => {
    const ipc = fakeIpcMain();
    const service = recordingService();
    bindIpc(ipc, service, () => true);
    for (const method of METHODS) {
      const handler = handlerOf(ipc, CONTRACT[method].channel);
      const args = VALID[method] === undefined ? [] : [VALID[method]];
      expect(await handler(trustedEvent, ...args)).toEqual({ ok: true, value: `${method}-done` });
    }
    expect(service.calls.map((c) => c.method)).toEqual(METHODS);
    expect(service.calls.find((c) => c.method === 'connect')?.arg).toEqual({ host: '127.0.0.1', port: 7443 });
  });

  it('refuses invalid arguments with {ok:false, InvalidArgument}, before the service', async () => {
    const ipc = fakeIpcMain();
    const service = recordingService();
    bindIpc(ipc, service, () => true);
    for (const method of METHODS) {
      const handler = handlerOf(ipc, CONTRACT[method].channel);
      for (const bad of INVALID[method]) {
        const result = (await handler(trustedEvent, bad)) as Result<unknown>;
        expect(result, `${method} ${JSON.stringify(bad)?.slice(0, 60)}`).toMatchObject({
          ok: false,
          error: { code: 'InvalidArgument' },
        });
      }
      // More than one argument is refused too.
      expect(await handler(trustedEvent, VALID[method], 'extra')).toMatchObject({ ok: false });
    }
    expect(service.calls).toEqual([]);
  });

  it('refuses a request from an untrusted sender frame', async () => {
    const ipc = fakeIpcMain();
    const service = recordingService();
    bindIpc(ipc, service, () => false);
    for (const method of METHODS) {
      const handler = handlerOf(ipc, CONTRACT[method].channel);
      expect(await handler(trustedEvent, VALID[method])).toMatchObject({
        ok: false,
        error: { code: 'UntrustedSender' },
      });
    }
    expect(service.calls).toEqual([]);
  });

  it('turns a throwing service into {ok:false}', async () => {
    const ipc = fakeIpcMain();
    const service = recordingService();
    service.getSnapshot = () => {
      throw new Error('boom');
    };
    bindIpc(ipc, service, () => true);
    expect(await handlerOf(ipc, CONTRACT.getSnapshot.channel)(trustedEvent)).toMatchObject({
      ok: false,
      error: { code: 'Internal' },
    });
  });

  it('unbinds every channel', () => {
    const ipc = fakeIpcMain();
    const unbind = bindIpc(ipc, recordingService(), () => true);
    unbind();
    expect(ipc.handlers.size).toBe(0);
  });
});

describe('createSenderCheck', () => {
  const mainFrame = { url: 'app://securechat/index.html' };
  const sender = { id: 7, mainFrame };
  const check = createSenderCheck({
    windowContentsId: () => 7,
    isAppUrl: (url) => url.startsWith('app://securechat/'),
  });
  const event = (e: Partial<{ sender: unknown; senderFrame: unknown }>) =>
    ({ sender, senderFrame: mainFrame, ...e }) as unknown as IpcMainInvokeEvent;

  it('accepts the top frame of the app window at the app URL', () => {
    expect(check(event({}))).toBe(true);
  });
  it('refuses another window, a sub-frame, a foreign URL and a missing frame', () => {
    expect(check(event({ sender: { id: 8, mainFrame } }))).toBe(false);
    expect(check(event({ senderFrame: { url: 'app://securechat/index.html' } }))).toBe(false);
    const foreign = { url: 'https://evil.example/' };
    expect(check(event({ sender: { id: 7, mainFrame: foreign }, senderFrame: foreign }))).toBe(false);
    expect(check(event({ senderFrame: null }))).toBe(false);
  });
});

describe('preload API', () => {
  function fakeIpcRenderer() {
    const listeners = new Map<string, ((...a: unknown[]) => void)[]>();
    const invoke = vi.fn(async (channel: string, arg?: unknown) => ({ ok: true, value: { channel, arg } }));
    const ipc = {
      invoke,
      on: (channel: string, l: (...a: unknown[]) => void) => {
        listeners.set(channel, [...(listeners.get(channel) ?? []), l]);
        return ipc;
      },
      removeListener: (channel: string, l: (...a: unknown[]) => void) => {
        listeners.set(
          channel,
          (listeners.get(channel) ?? []).filter((x) => x !== l),
        );
        return ipc;
      },
      emit: (channel: string, ...args: unknown[]) =>
        (listeners.get(channel) ?? []).forEach((l) => l(...args)),
      count: (channel: string) => (listeners.get(channel) ?? []).length,
    };
    return ipc;
  }

  it('exposes exactly the contract’s methods plus onEvent, frozen', () => {
    const api = createPreloadApi(fakeIpcRenderer() as unknown as IpcRendererLike);
    expect(Object.keys(api).sort()).toEqual([...METHODS, 'onEvent'].sort());
    expect(Object.isFrozen(api)).toBe(true);
    expect(Object.values(api).every((v) => typeof v === 'function')).toBe(true);
  });

  it('maps each method to its own channel with one argument', async () => {
    const ipc = fakeIpcRenderer();
    const api = createPreloadApi(ipc as unknown as IpcRendererLike) as unknown as Record<
      string,
      (...a: unknown[]) => Promise<unknown>
    >;
    for (const method of METHODS) {
      ipc.invoke.mockClear();
      await api[method]?.(VALID[method], 'dropped extra');
      expect(ipc.invoke).toHaveBeenCalledWith(CONTRACT[method].channel, VALID[method]);
    }
  });

  it('onEvent hands listeners the payload only, and unsubscribes', () => {
    const ipc = fakeIpcRenderer();
    const api = createPreloadApi(ipc as unknown as IpcRendererLike);
    const seen: unknown[][] = [];
    const off = api.onEvent((...args: unknown[]) => seen.push(args));
    const payload: AppEvent = { type: 'menu', action: 'about' };
    ipc.emit(EVENT_CHANNEL, { sender: 'the IpcRendererEvent must not leak' }, payload);
    expect(seen).toEqual([[payload]]);
    off();
    expect(ipc.count(EVENT_CHANNEL)).toBe(0);
    ipc.emit(EVENT_CHANNEL, {}, payload);
    expect(seen).toHaveLength(1);
  });

  it('exposeApi puts it on window.securechat through contextBridge, and nothing else', () => {
    const exposeInMainWorld = vi.fn();
    exposeApi({ exposeInMainWorld }, fakeIpcRenderer() as unknown as IpcRendererLike);
    expect(exposeInMainWorld).toHaveBeenCalledTimes(1);
    expect(exposeInMainWorld.mock.calls[0]?.[0]).toBe(API_KEY);
    expect(API_KEY).toBe('securechat');
  });
});

/** Runtime imports (not `import type`) of a TypeScript file, following relative ones. */
function runtimeImportGraph(entry: string): { files: string[]; packages: string[] } {
  const files = new Set<string>();
  const packages = new Set<string>();
  const visit = (file: string): void => {
    if (files.has(file)) return;
    files.add(file);
    const source = readFileSync(file, 'utf8');
    for (const m of source.matchAll(/^(?:import|export)\s+(type\s+)?(?:[^'";]*?\s+from\s+)?'([^']+)';/gm)) {
      const [, typeOnly, specifier = ''] = m;
      if (typeOnly) continue;
      if (specifier.startsWith('.')) visit(resolve(dirname(file), specifier.replace(/\.js$/, '.ts')));
      else packages.add(specifier);
    }
  };
  visit(entry);
  const root = resolve(import.meta.dirname, '../..');
  return { files: [...files].map((f) => relative(root, f)).sort(), packages: [...packages].sort() };
}

describe('the preload’s half of the contract (no zod in the sandboxed bundle)', () => {
  it('the zod-free channel list and the validating contract name the same methods and channels', () => {
    expect(Object.keys(CHANNELS).sort()).toEqual(Object.keys(CONTRACT).sort());
    for (const method of METHODS) expect(CONTRACT[method].channel).toBe(CHANNELS[method]);
    expect(new Set(Object.values(CHANNELS)).size).toBe(METHODS.length);
  });

  it('preload.ts reaches only electron, preload-api.ts and src-shared/ipc-channels.ts at run time', () => {
    const graph = runtimeImportGraph(resolve(import.meta.dirname, '../../src-main/electron/preload.ts'));
    expect(graph.packages).toEqual(['electron']);
    expect(graph.files).toEqual([
      join('src-main', 'electron', 'preload-api.ts'),
      join('src-main', 'electron', 'preload.ts'),
      join('src-shared', 'ipc-channels.ts'),
    ]);
  });

  it('the main-side contract does pull in zod (the check above can see it)', () => {
    const graph = runtimeImportGraph(resolve(import.meta.dirname, '../../src-shared/ipc-contract.ts'));
    expect(graph.packages).toContain('zod');
  });
});
