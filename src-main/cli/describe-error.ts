import { PkiError } from '../core/pki/errors.js';
import { RosterError } from '../core/roster/errors.js';
import { CliError } from './cli-error.js';

/** One readable line for any failure; stack traces only for genuine bugs. */
export function describeError(err: unknown): string {
  if (err instanceof CliError) return err.message;
  if (err instanceof PkiError || err instanceof RosterError) return `${err.message} (${err.code})`;
  if (
    err instanceof Error &&
    'code' in err &&
    typeof err.code === 'string' &&
    err.code.startsWith('ERR_PARSE_ARGS')
  ) {
    return `${err.message}\nRun with --help for usage.`;
  }
  if (err instanceof Error) return err.stack ?? err.message;
  return String(err);
}
