/**
 * Where a relay keeps its durable state (the log and, beside it, the highest roster):
 * `--data-dir`, else `$XDG_DATA_HOME/securechat-x/relay` (`~/.local/share/…` when XDG_DATA_HOME is
 * unset or relative, as the XDG spec says).
 */
import { mkdirSync } from 'node:fs';
import { homedir } from 'node:os';
import { join, resolve } from 'node:path';

export function defaultRelayDataDir(env: NodeJS.ProcessEnv = process.env, home: string = homedir()): string {
  const xdg = env.XDG_DATA_HOME;
  const base = xdg !== undefined && xdg.startsWith('/') ? xdg : join(home, '.local', 'share');
  return join(base, 'securechat-x', 'relay');
}

/** The data directory to use, created (owner-only) if missing. */
export function prepareRelayDataDir(flag: string | undefined, env: NodeJS.ProcessEnv = process.env): string {
  const dir = resolve(flag ?? defaultRelayDataDir(env));
  mkdirSync(dir, { recursive: true, mode: 0o700 });
  return dir;
}
