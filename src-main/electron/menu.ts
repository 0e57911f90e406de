/**
 * The application menu as data. Items either ask the window to open one of its dialogs
 * (menu events through the service) or call the service directly.
 */
import type { MenuItemConstructorOptions } from 'electron';
import type { MenuAction } from '../../src-shared/ipc-contract.js';

export interface MenuActions {
  open(action: MenuAction): void;
  stopRelay(): void;
  disconnect(): void;
  quit(): void;
}

export function buildMenuTemplate(actions: MenuActions, platform: string): MenuItemConstructorOptions[] {
  const isMac = platform === 'darwin';
  const template: MenuItemConstructorOptions[] = [];
  if (isMac) {
    template.push({
      label: 'SecureChat-X',
      submenu: [
        { label: 'About SecureChat-X', click: () => actions.open('about') },
        { type: 'separator' },
        { label: 'Settings…', accelerator: 'Cmd+,', click: () => actions.open('settings') },
        { type: 'separator' },
        { role: 'hide' },
        { role: 'hideOthers' },
        { role: 'unhide' },
        { type: 'separator' },
        { label: 'Quit SecureChat-X', accelerator: 'Cmd+Q', click: () => actions.quit() },
      ],
    });
  }
  template.push(
    {
      label: '&File',
      submenu: [
        {
          id: 'import-identity',
          label: 'Import Certificate Bundle…',
          accelerator: 'CmdOrCtrl+O',
          click: () => actions.open('import-identity'),
        },
        {
          id: 'create-group',
          label: 'Create Group…',
          accelerator: 'CmdOrCtrl+Shift+N',
          click: () => actions.open('create-group'),
        },
        {
          id: 'open-group-ca',
          label: 'Open Group CA Bundle…',
          click: () => actions.open('open-group-ca'),
        },
        ...(isMac
          ? []
          : ([
              { type: 'separator' },
              { label: 'Settings…', accelerator: 'Ctrl+,', click: () => actions.open('settings') },
              { type: 'separator' },
              { label: 'Quit', accelerator: 'Ctrl+Q', click: () => actions.quit() },
            ] satisfies MenuItemConstructorOptions[])),
      ],
    },
    { role: 'editMenu' },
    {
      label: '&Relay',
      submenu: [
        { id: 'start-relay', label: 'Start Relay…', click: () => actions.open('start-relay') },
        { id: 'stop-relay', label: 'Stop Relay', click: () => actions.stopRelay() },
      ],
    },
    {
      label: '&Connection',
      submenu: [
        {
          id: 'connect',
          label: 'Connect…',
          accelerator: 'CmdOrCtrl+K',
          click: () => actions.open('connect'),
        },
        { id: 'disconnect', label: 'Disconnect', click: () => actions.disconnect() },
      ],
    },
    {
      label: '&View',
      submenu: [
        { role: 'resetZoom' },
        { role: 'zoomIn' },
        { role: 'zoomOut' },
        { type: 'separator' },
        { role: 'togglefullscreen' },
      ],
    },
    {
      role: 'help',
      label: '&Help',
      submenu: [{ id: 'about', label: 'About SecureChat-X', click: () => actions.open('about') }],
    },
  );
  return template;
}
