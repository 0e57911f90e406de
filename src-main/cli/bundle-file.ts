/** Reading a .p12 from disk with errors that name the file and say what to do. */
import { readFile, stat } from 'node:fs/promises';
import {
  MAX_BUNDLE_BYTES,
  readBundle,
  type LoadedBundle,
  type ReadBundleOptions,
} from '../core/pki/bundle.js';
import { PkiError } from '../core/pki/errors.js';
import { CliError } from './cli-error.js';
import { fileProblem } from './fs-errors.js';

export async function readInputFile(path: string, maxBytes = MAX_BUNDLE_BYTES): Promise<Buffer> {
  try {
    // Check the size first: a wrong path could name a huge file we should not load.
    const info = await stat(path);
    if (info.isDirectory()) throw new CliError(`${path} is a folder, not a file`);
    if (!info.isFile()) throw new CliError(`${path} is not a regular file`);
    if (info.size > maxBytes) throw new CliError(`${path} is too large to be a certificate or bundle`);
    return await readFile(path);
  } catch (err) {
    if (err instanceof CliError) throw err;
    throw new CliError(fileProblem(path, err));
  }
}

export async function readBundleFile(
  path: string,
  password: string,
  options: ReadBundleOptions = {},
): Promise<LoadedBundle> {
  const data = await readInputFile(path);
  try {
    return readBundle(data, password, options);
  } catch (err) {
    if (err instanceof PkiError) throw new CliError(`${path}: ${err.message} (${err.code})`);
    throw err;
  }
}
