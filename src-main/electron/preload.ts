/** Sandboxed preload (bundled to CommonJS): exposes the contract on window.securechat, nothing else. */
import { contextBridge, ipcRenderer } from 'electron';
import { exposeApi } from './preload-api.js';

exposeApi(contextBridge, ipcRenderer);
