/**
 * Binds every contract channel with ipcMain.handle. Each call: the sender frame must be the app's
 * own window at the app's own URL, the argument is validated with the contract's schema
 * (createInvoker), and the answer is always the Result union.
 */
import type { IpcMain, IpcMainInvokeEvent } from 'electron';
import { fail } from '../../src-shared/ipc-contract.js';
import { contractChannels, createInvoker } from '../app/ipc-router.js';
import type { ServiceApi } from '../../src-shared/ipc-contract.js';

export type IpcMainLike = Pick<IpcMain, 'handle' | 'removeHandler'>;
export type SenderCheck = (event: IpcMainInvokeEvent) => boolean;

export function bindIpc(ipcMain: IpcMainLike, service: ServiceApi, isTrustedSender: SenderCheck): () => void {
  const invoke = createInvoker(service);
  const channels = contractChannels();
  for (const { channel } of channels) {
    ipcMain.handle(channel, async (event: IpcMainInvokeEvent, ...args: unknown[]) => {
      if (!isTrustedSender(event)) {
        return fail('UntrustedSender', 'This request did not come from the SecureChat-X window.');
      }
      if (args.length > 1) return fail('InvalidArgument', 'invalid request: one argument at most');
      return invoke(channel, args[0]);
    });
  }
  return () => {
    for (const { channel } of channels) ipcMain.removeHandler(channel);
  };
}

export interface SenderPolicy {
  /** webContents id of the app's window (undefined before it exists). */
  windowContentsId(): number | undefined;
  /** True for the app's own renderer URL (app://securechat/… or the dev server). */
  isAppUrl(url: string): boolean;
}

/** Only the top frame of our own window, showing our own page, may call the service. */
export function createSenderCheck(policy: SenderPolicy): SenderCheck {
  return (event) => {
    const frame = event.senderFrame;
    if (!frame) return false;
    if (event.sender.id !== policy.windowContentsId()) return false;
    if (frame !== event.sender.mainFrame) return false;
    return policy.isAppUrl(frame.url);
  };
}
