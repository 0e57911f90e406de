/// <reference types="svelte" />
/// <reference types="vite/client" />
import type { SecureChatApi } from '../../src-shared/ipc-channels.js';

declare global {
  interface Window {
    /** Exposed by the preload (src-main/electron/preload.ts): exactly the IPC contract. */
    readonly securechat?: SecureChatApi;
  }
}

export {};
