/**
 * What the desktop shell shows when the app cannot start (electron/main.ts): a dialog, because a
 * main process that fails before its window exists would otherwise leave the user with nothing on
 * screen and the error in a terminal they never opened.
 */
import { toAppError } from './errors.js';

export interface StartFailureReport {
  title: string;
  message: string;
  /** Where the error came from, for a bug report; never a stack trace. */
  detail: string;
}

export function startFailureReport(err: unknown, dataFolder: string): StartFailureReport {
  const error = toAppError(err);
  return {
    title: 'SecureChat-X could not start',
    message: error.message,
    detail: `Error code: ${error.code}. The app keeps its data in ${dataFolder}.`,
  };
}
