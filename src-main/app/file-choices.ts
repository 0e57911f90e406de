/**
 * Files the user picked in a native dialog. Paths never come from the renderer: the dialog port
 * returns a path, the window gets an opaque one-use token (FileChoice) and passes it back.
 */
import { randomBytes } from 'node:crypto';
import { basename } from 'node:path';
import type { FileChoice } from '../../src-shared/model.js';
import { AppFailure } from './errors.js';

const CHOICE_TTL_MS = 30 * 60_000;

export type ChoiceKind = 'bundle' | 'folder';

interface Choice {
  path: string;
  kind: ChoiceKind;
  expires: number;
}

export class FileChoices {
  readonly #choices = new Map<string, Choice>();

  /** A token for a path a dialog returned (valid for 30 minutes). */
  remember(path: string, kind: ChoiceKind): FileChoice {
    const now = Date.now();
    for (const [token, choice] of this.#choices) if (choice.expires < now) this.#choices.delete(token);
    const token = randomBytes(18).toString('base64url');
    this.#choices.set(token, { path, kind, expires: now + CHOICE_TTL_MS });
    return { token, displayName: basename(path) };
  }

  /** The path behind a token; ChoiceExpired if the token is unknown, of another kind or too old. */
  resolve(token: string, kind: ChoiceKind): string {
    const choice = this.#choices.get(token);
    if (!choice || choice.kind !== kind || choice.expires < Date.now()) {
      throw new AppFailure(
        'ChoiceExpired',
        kind === 'bundle' ? 'Choose the bundle file again.' : 'Choose the folder again.',
      );
    }
    return choice.path;
  }

  /** A token that has been used for good (an imported bundle). */
  forget(token: string): void {
    this.#choices.delete(token);
  }
}
