/**
 * Flag parsing shared by the group and inspect commands: node:util parseArgs in strict mode, with
 * its errors turned into one-line usage errors (exit code 2).
 */
import { CliError } from './cli-error.js';

function isParseArgsError(err: unknown): err is Error {
  return (
    err instanceof Error &&
    'code' in err &&
    typeof err.code === 'string' &&
    err.code.startsWith('ERR_PARSE_ARGS')
  );
}

/** Runs a parseArgs call; a bad flag becomes a CliError naming the command whose --help explains it. */
export function parseOrUsage<T>(command: string, parse: () => T): T {
  try {
    return parse();
  } catch (err) {
    if (isParseArgsError(err)) throw usageError(command, err.message);
    throw err;
  }
}

export function usageError(command: string, message: string): CliError {
  return new CliError(`${message} (see securechat-x ${command} --help)`, 2);
}

/** A decimal integer flag within bounds; parseInt alone would accept "12abc" or "1e5". */
export function integerOption(
  command: string,
  flag: string,
  raw: string | undefined,
  bounds: { min: number; max: number; fallback: number },
): number {
  if (raw === undefined) return bounds.fallback;
  const value = /^[0-9]{1,10}$/.test(raw) ? Number(raw) : Number.NaN;
  if (!Number.isSafeInteger(value) || value < bounds.min || value > bounds.max) {
    throw usageError(
      command,
      `--${flag} must be an integer from ${bounds.min} to ${bounds.max}, not "${raw}"`,
    );
  }
  return value;
}

export function requiredOption(command: string, flag: string, raw: string | undefined): string {
  if (raw === undefined || raw.length === 0) throw usageError(command, `--${flag} is required`);
  return raw;
}
