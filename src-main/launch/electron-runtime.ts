/**
 * Where the Electron runtime is, found the way electron-vite finds it (ELECTRON_EXEC_PATH, else
 * node_modules/electron/path.txt naming a binary under dist/, which is also what the electron
 * package's own entry reads), without loading that package: loading it starts a download when the
 * binary is missing. `npm start` asks first so that a machine without the runtime gets one line
 * saying so instead of electron-vite's "Electron uninstall" stack trace; the real-Electron e2e
 * suite asks to decide whether it runs or says it skipped. Plain Node: nothing here imports it.
 */
import { existsSync, readFileSync } from 'node:fs';
import { join } from 'node:path';

export interface ElectronRuntime {
  /** The binary, when one exists. */
  path?: string;
  /** Every place looked at, in order (for the message when there is none). */
  looked: string[];
}

/** `variables`: the environment variables that may name a binary, first match wins. */
export function findElectronRuntime(
  root: string,
  env: NodeJS.ProcessEnv = process.env,
  variables: readonly string[] = ['ELECTRON_EXEC_PATH'],
): ElectronRuntime {
  const looked: string[] = [];
  for (const name of variables) {
    const fromEnv = env[name];
    if (!fromEnv) continue;
    looked.push(`${name}=${fromEnv}`);
    if (existsSync(fromEnv)) return { path: fromEnv, looked };
  }
  const pathTxt = join(root, 'node_modules/electron/path.txt');
  looked.push(pathTxt);
  if (!existsSync(pathTxt)) return { looked };
  const binary = join(root, 'node_modules/electron/dist', readFileSync(pathTxt, 'utf8').trim());
  looked.push(binary);
  return existsSync(binary) ? { path: binary, looked } : { looked };
}

/** The one line `npm start` prints when there is no runtime: what is missing and what to do. */
export function missingRuntimeMessage(found: ElectronRuntime): string {
  return (
    `securechat-x: the Electron runtime is not installed (looked at ${found.looked.join(', ')}). ` +
    'npm downloads it from GitHub on install: run `npm install` again where github.com is reachable, ' +
    'or set ELECTRON_EXEC_PATH to an Electron binary. The relay and the command-line client need no ' +
    'Electron: `npx securechat-x --help`.'
  );
}
