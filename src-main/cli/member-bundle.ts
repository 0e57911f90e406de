/**
 * A member's bundle as `chat` and `history` open it: `--expect-ca` parsed (a usage error first),
 * the password read, the bundle file read (errors name the file), the identity loaded with role
 * member, and the CA checked against `--expect-ca`; then the state folder of that member.
 */
import { readFile } from 'node:fs/promises';
import { resolve as resolvePath } from 'node:path';
import type { MemberStoreOwner } from '../client/state/member-store.js';
import { defaultStateDir } from '../client/state/store-key.js';
import { LocalIdentity } from '../core/pki/local-identity.js';
import { CliError } from './cli-error.js';
import { checkExpectedCa, parseExpectedCa } from './expect-ca.js';
import { fileProblem } from './fs-errors.js';
import { readPassword } from './password.js';

export interface MemberBundleFlags {
  bundle: string;
  'password-file'?: string | undefined;
  'expect-ca'?: string | undefined;
  'state-dir'?: string | undefined;
}

export interface MemberBundle {
  identity: LocalIdentity;
  /** The bundle password, which also opens the member's state store. */
  password: string;
  owner: MemberStoreOwner;
  /** `--state-dir`, or the default folder for this group and member, resolved. */
  stateDir: string;
}

/** Throws CliError (exit 2 for a bad --expect-ca, exit 1 for an unreadable file) or PkiError. */
export async function openMemberBundle(command: string, flags: MemberBundleFlags): Promise<MemberBundle> {
  const expectedCa = parseExpectedCa(command, flags['expect-ca']);
  const password = await readPassword(flags['password-file']);
  let data: Buffer;
  try {
    data = await readFile(flags.bundle);
  } catch (err) {
    throw new CliError(fileProblem(flags.bundle, err));
  }
  const identity = LocalIdentity.fromBundleFile(data, password, 'member');
  checkExpectedCa(identity.ca, expectedCa);
  const owner = { groupId: identity.groupId, member: identity.name };
  const stateDir = resolvePath(flags['state-dir'] ?? defaultStateDir(owner));
  return { identity, password, owner, stateDir };
}
