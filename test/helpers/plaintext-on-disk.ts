/**
 * Where message text can be read on disk: every file under the given folders (a store, its -wal
 * and -shm, settings, kept bundles) searched for each text's UTF-8 bytes.
 */
import { readdirSync, readFileSync } from 'node:fs';
import { join } from 'node:path';

/** Every file under `dir`, at any depth. */
export function filesUnder(dir: string): string[] {
  return readdirSync(dir, { withFileTypes: true }).flatMap((e) =>
    e.isDirectory() ? filesUnder(join(dir, e.name)) : e.isFile() ? [join(dir, e.name)] : [],
  );
}

/** `text in file` for each text readable in a file under `dirs` (none: nothing is in plain sight). */
export function plaintextFound(dirs: readonly string[], texts: readonly string[]): string[] {
  return dirs.flatMap(filesUnder).flatMap((file) => {
    const bytes = readFileSync(file);
    return texts.filter((t) => bytes.includes(Buffer.from(t, 'utf8'))).map((t) => `${t} in ${file}`);
  });
}
