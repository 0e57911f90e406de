/**
 * Writing key material safely: every target is checked before any work is done (a refusal writes
 * nothing), new files are created exclusively (no race with a file appearing meanwhile), modes are
 * set explicitly (umask must not widen or narrow them unexpectedly), and --force replaces a file
 * by renaming a complete temporary file over it, so a crash never leaves a truncated bundle.
 */
import { randomBytes } from 'node:crypto';
import { lstat, mkdir, open, rename, rm } from 'node:fs/promises';
import { basename, dirname, join } from 'node:path';
import { CliError } from './cli-error.js';
import { fileProblem } from './fs-errors.js';

export interface OutputFile {
  path: string;
  data: Uint8Array | string;
  /** 0o600 for anything holding a private key. */
  mode: number;
}

function errnoOf(err: unknown): string {
  return (err as NodeJS.ErrnoException).code ?? 'error';
}

/** Refuses (listing every one) if any target exists and force is off; never accepts a directory. */
export async function checkTargets(paths: readonly string[], force: boolean): Promise<void> {
  const existing: string[] = [];
  for (const path of paths) {
    try {
      const info = await lstat(path);
      if (info.isDirectory()) throw new CliError(`${path} is a folder, not a file`);
      existing.push(path);
    } catch (err) {
      if (err instanceof CliError) throw err;
      if (errnoOf(err) === 'ENOTDIR') throw new CliError(`${dirname(path)} exists and is not a folder`);
      if (errnoOf(err) !== 'ENOENT') throw new CliError(fileProblem(path, err));
    }
  }
  if (existing.length > 0 && !force) {
    throw new CliError(
      `refusing to overwrite ${existing.join(', ')}; nothing was written (pass --force to replace)`,
    );
  }
}

/** Creates the folder (private: it will hold private keys) unless it exists. */
export async function ensureDirectory(dir: string): Promise<void> {
  try {
    await mkdir(dir, { recursive: true, mode: 0o700 });
  } catch (err) {
    throw new CliError(`cannot create the folder: ${fileProblem(dir, err, 'create')}`);
  }
  const info = await lstat(dir).catch(() => undefined);
  if (!info?.isDirectory()) throw new CliError(`${dir} is not a folder`);
}

async function writeExclusive(path: string, data: Uint8Array | string, mode: number): Promise<void> {
  const handle = await open(path, 'wx', mode);
  try {
    await handle.chmod(mode);
    await handle.writeFile(data);
    await handle.sync();
  } finally {
    await handle.close();
  }
}

async function replaceAtomically(path: string, data: Uint8Array | string, mode: number): Promise<void> {
  const tmp = join(dirname(path), `.${basename(path)}.${randomBytes(6).toString('hex')}.tmp`);
  try {
    await writeExclusive(tmp, data, mode);
    await rename(tmp, path);
  } catch (err) {
    await rm(tmp, { force: true });
    throw err;
  }
}

/**
 * Writes every file or, when a fresh write fails part-way, removes the ones this call created, so
 * a group is never left half made. (Files replaced under --force are gone by then.)
 */
export async function writeOutputs(files: readonly OutputFile[], force: boolean): Promise<void> {
  const created: string[] = [];
  for (const file of files) {
    try {
      if (force) await replaceAtomically(file.path, file.data, file.mode);
      else await writeExclusive(file.path, file.data, file.mode);
      created.push(file.path);
    } catch (err) {
      if (!force) await Promise.all(created.map((p) => rm(p, { force: true })));
      const why =
        errnoOf(err) === 'EEXIST'
          ? `cannot write ${file.path} (it appeared while the group was being written)`
          : fileProblem(file.path, err, 'write');
      throw new CliError(`${why}${force ? '' : '; the files written so far were removed'}`);
    }
  }
}
