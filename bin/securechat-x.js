#!/usr/bin/env node
// Thin launcher: the CLI is compiled to out/node by `npm run build:node` (run by `npm ci` via `prepare`).
import { existsSync } from 'node:fs';
import { fileURLToPath, pathToFileURL } from 'node:url';
import { dirname, join } from 'node:path';

const entry = join(
  dirname(fileURLToPath(import.meta.url)),
  '..',
  'out',
  'node',
  'src-main',
  'cli',
  'main.js',
);
if (!existsSync(entry)) {
  process.stderr.write(
    'securechat-x: the CLI is not built yet. Run `npm run build` in the project folder first.\n',
  );
  process.exit(2);
}
await import(pathToFileURL(entry).href);
