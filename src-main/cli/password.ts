import { readFile } from 'node:fs/promises';
import { CliError } from './cli-error.js';

export const PASSWORD_ENV = 'SECURECHAT_PASSWORD';

/**
 * Passwords come from SECURECHAT_PASSWORD or a file (first line), never from an argument, where
 * other users of the machine could read them in the process list.
 */
export async function readPassword(passwordFile: string | undefined, what = 'bundle'): Promise<string> {
  if (passwordFile !== undefined) {
    let text: string;
    try {
      text = await readFile(passwordFile, 'utf8');
    } catch (err) {
      throw new CliError(
        `cannot read the password file ${passwordFile}: ${(err as NodeJS.ErrnoException).code}`,
      );
    }
    const password = text.split(/\r?\n/)[0] ?? '';
    if (password.length === 0) throw new CliError(`the password file ${passwordFile} is empty`);
    return password;
  }
  const fromEnv = process.env[PASSWORD_ENV];
  if (fromEnv !== undefined && fromEnv.length > 0) return fromEnv;
  // Like a missing required flag: a usage error (exit 2).
  throw new CliError(`no ${what} password: set ${PASSWORD_ENV} or pass --password-file FILE`, 2);
}
