/** Opening a member's state store from the CLI, with errors in words (chat, history). */
import { existsSync } from 'node:fs';
import { join } from 'node:path';
import { StateStoreError } from '../client/state/errors.js';
import type { MemberStateStore, MemberStoreOwner } from '../client/state/member-store.js';
import { openStoreWithPassword, STATE_DB_FILE } from '../client/state/store-key.js';
import { CliError } from './cli-error.js';

export async function openStateStore(
  dir: string,
  password: string,
  owner: MemberStoreOwner,
  options: { mustExist?: boolean } = {},
): Promise<MemberStateStore> {
  if (options.mustExist && !existsSync(join(dir, STATE_DB_FILE))) {
    throw new CliError(
      `no state store for ${owner.member} in ${dir}: nothing was kept yet (run chat first, or pass the --state-dir chat used)`,
      1,
    );
  }
  try {
    return await openStoreWithPassword(dir, password, owner);
  } catch (err) {
    if (err instanceof StateStoreError) {
      const hint =
        err.code === 'StateKeyWrong'
          ? ' (it was created with another bundle password; use another --state-dir or the old password)'
          : '';
      throw new CliError(`state store ${dir}: ${err.message} [${err.code}]${hint}`, 1);
    }
    throw err;
  }
}
