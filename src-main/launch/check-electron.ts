/**
 * `npm start`'s first step (the `prestart` script): exits 1 with one line on stderr when there is
 * no Electron runtime to start (electron-runtime.ts), 0 otherwise. `--root` names the project
 * folder (default: the one this file was built into).
 */
import { dirname, resolve } from 'node:path';
import { fileURLToPath } from 'node:url';
import { parseArgs } from 'node:util';
import { findElectronRuntime, missingRuntimeMessage } from './electron-runtime.js';

// Built to out/node/src-main/launch/: the project is four folders up.
const DEFAULT_ROOT = resolve(dirname(fileURLToPath(import.meta.url)), '../../../..');

const { values } = parseArgs({ options: { root: { type: 'string' } }, strict: true });
const found = findElectronRuntime(values.root ?? DEFAULT_ROOT);
if (!found.path) {
  process.stderr.write(`${missingRuntimeMessage(found)}\n`);
  process.exitCode = 1;
}
