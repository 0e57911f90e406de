/**
 * What the preload exposes on window.securechat: exactly the contract's methods, one per channel,
 * plus onEvent. Nothing generic (no invoke(channel), no raw ipcRenderer), and listeners receive
 * event payloads only, never the IpcRendererEvent (which would hand out `sender`).
 *
 * Takes ipcRenderer/contextBridge as parameters so it can be unit-tested without Electron.
 * Imports the zod-free half of the contract only (ipc-channels.ts): the preload bundles everything
 * it imports, and validation happens in the main process anyway.
 */
import type { ContextBridge, IpcRenderer } from 'electron';
import {
  CHANNELS,
  EVENT_CHANNEL,
  METHODS,
  type AppEvent,
  type AppEventListener,
  type SecureChatApi,
} from '../../src-shared/ipc-channels.js';

export type IpcRendererLike = Pick<IpcRenderer, 'invoke' | 'on' | 'removeListener'>;
export type ContextBridgeLike = Pick<ContextBridge, 'exposeInMainWorld'>;

export const API_KEY = 'securechat';

export function createPreloadApi(ipcRenderer: IpcRendererLike): SecureChatApi {
  const api: Record<string, unknown> = {};
  for (const method of METHODS) {
    const channel = CHANNELS[method];
    // One argument at most; extra arguments from page code are dropped here.
    api[method] = (arg?: unknown) => ipcRenderer.invoke(channel, arg);
  }
  api.onEvent = (listener: AppEventListener): (() => void) => {
    if (typeof listener !== 'function') throw new TypeError('onEvent needs a function');
    const wrapped = (_event: unknown, payload: AppEvent): void => listener(payload);
    ipcRenderer.on(EVENT_CHANNEL, wrapped);
    return () => {
      ipcRenderer.removeListener(EVENT_CHANNEL, wrapped);
    };
  };
  return Object.freeze(api) as unknown as SecureChatApi;
}

export function exposeApi(contextBridge: ContextBridgeLike, ipcRenderer: IpcRendererLike): void {
  contextBridge.exposeInMainWorld(API_KEY, createPreloadApi(ipcRenderer));
}
