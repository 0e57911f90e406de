import { readFile } from 'node:fs/promises';
import { CliError } from './cli-error.js';
import { fileProblem } from './fs-errors.js';

export const PASSWORD_ENV = 'SECURECHAT_PASSWORD';
/** The group CA bundle's own password (group create, group add-member). */
export const CA_PASSWORD_ENV = 'SECURECHAT_CA_PASSWORD';

const PASSWORD_SOURCES =
  `passwords come from ${PASSWORD_ENV} (or ${CA_PASSWORD_ENV} for the group CA bundle) or ` +
  '--password-file FILE (--ca-password-file FILE), never from an argument, which other users of ' +
  'this machine can read in the process list';

/**
 * `--password x` / `--ca-password=x` would otherwise get parseArgs' "Unknown option", which reads
 * as if the flag were merely misspelt. Checked for every command before it parses its flags; an
 * argument after `--` is a positional and left alone.
 */
export function refusePasswordArguments(argv: readonly string[]): void {
  for (const arg of argv) {
    if (arg === '--') return;
    if (/^--(ca-)?password(=|$)/.test(arg))
      throw new CliError(`${arg.split('=')[0]}: ${PASSWORD_SOURCES}`, 2);
  }
}

async function readPasswordFile(passwordFile: string): Promise<string> {
  let text: string;
  try {
    text = await readFile(passwordFile, 'utf8');
  } catch (err) {
    throw new CliError(`cannot read the password file: ${fileProblem(passwordFile, err)}`);
  }
  const password = text.split(/\r?\n/)[0] ?? '';
  if (password.length === 0) throw new CliError(`the password file ${passwordFile} is empty`);
  return password;
}

function fromEnv(name: string): string | undefined {
  const value = process.env[name];
  return value !== undefined && value.length > 0 ? value : undefined;
}

/**
 * Passwords come from SECURECHAT_PASSWORD or a file (first line), never from an argument, where
 * other users of the machine could read them in the process list.
 */
export async function readPassword(passwordFile: string | undefined, what = 'bundle'): Promise<string> {
  if (passwordFile !== undefined) return readPasswordFile(passwordFile);
  const password = fromEnv(PASSWORD_ENV);
  if (password !== undefined) return password;
  // Like a missing required flag: a usage error (exit 2).
  throw new CliError(`no ${what} password: set ${PASSWORD_ENV} or pass --password-file FILE`, 2);
}

export interface CaPassword {
  password: string;
  /** True when no CA password was given and the member password stands in for it. */
  fromMemberPassword: boolean;
  /** What to print on stderr in that case, once the command has done its work. */
  warning: string;
}

/**
 * The group CA bundle's password: --ca-password-file, else SECURECHAT_CA_PASSWORD, else the member
 * password (SECURECHAT_PASSWORD / --password-file), which the caller then warns about: whoever
 * knows a member password and gets hold of ca.p12 can issue members.
 */
export async function readCaPassword(
  caPasswordFile: string | undefined,
  memberPasswordFile: string | undefined,
): Promise<CaPassword> {
  const warning =
    `securechat-x: warning: no CA password (${CA_PASSWORD_ENV} or --ca-password-file), so ca.p12 ` +
    'uses the member password: whoever knows it and gets ca.p12 can add members\n';
  if (caPasswordFile !== undefined) {
    return { password: await readPasswordFile(caPasswordFile), fromMemberPassword: false, warning };
  }
  const password = fromEnv(CA_PASSWORD_ENV);
  if (password !== undefined) return { password, fromMemberPassword: false, warning };
  if (memberPasswordFile === undefined && fromEnv(PASSWORD_ENV) === undefined) {
    throw new CliError(
      `no CA bundle password: set ${CA_PASSWORD_ENV} or pass --ca-password-file FILE ` +
        `(or, not recommended, the member password: ${PASSWORD_ENV} or --password-file FILE)`,
      2,
    );
  }
  return { password: await readPassword(memberPasswordFile, 'CA bundle'), fromMemberPassword: true, warning };
}
