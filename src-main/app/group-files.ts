/**
 * "Create group…": a new CA, one bundle per member and one for the relay, and roster v1, all made
 * in the PKI worker (the CA's private key exists there only) and written into the chosen folder,
 * never over existing files unless the user confirmed.
 */
import { existsSync } from 'node:fs';
import { mkdir, writeFile } from 'node:fs/promises';
import { basename, join } from 'node:path';
import { DEFAULT_KDF_ITERATIONS } from '../core/pki/bundle.js';
import { ROSTER_FILE } from '../core/roster/index.js';
import type { Args, Responses } from '../../src-shared/ipc-contract.js';
import { AppFailure } from './errors.js';
import type { AppServicePorts } from './ports.js';

export async function createGroupFiles(
  ports: Pick<AppServicePorts, 'pki' | 'kdfIterations'>,
  folder: string,
  arg: Omit<Args<'createGroup'>, 'folderToken'>,
): Promise<Responses['createGroup']> {
  // The roster is one of the group's files: checked for overwriting and listed like the rest.
  const files = [
    'ca.pem',
    'ca.p12',
    ...arg.members.map((m) => `${m}.p12`),
    `${arg.relayName}.p12`,
    ROSTER_FILE,
  ];
  const existing = files.filter((f) => existsSync(join(folder, f)));
  if (existing.length > 0 && !arg.overwrite) {
    throw new AppFailure(
      'WouldOverwrite',
      `${existing.length === 1 ? 'A file' : `${existing.length} files`} in ${basename(folder)} would be replaced: ${existing.join(', ')}.`,
      existing,
    );
  }
  const kdfIterations = ports.kdfIterations ?? DEFAULT_KDF_ITERATIONS;
  // Keys, bundles and the roster's signature are made in the PKI worker; the CA's private key
  // exists there only.
  const group = await ports.pki.createGroup({
    groupName: arg.groupName,
    members: arg.members,
    relayName: arg.relayName,
    password: arg.password,
    kdfIterations,
  });
  try {
    if (group.files.map((f) => f.name).join('/') !== files.join('/'))
      throw new AppFailure(
        'Internal',
        'Something went wrong: the new group’s files are not the expected ones.',
      );
    const flag = arg.overwrite ? 'w' : 'wx';
    await mkdir(folder, { recursive: true });
    for (const { name, bytes } of group.files) {
      await writeFile(join(folder, name), bytes, { flag, mode: name.endsWith('.p12') ? 0o600 : 0o644 });
    }
  } finally {
    for (const file of group.files) file.bytes.fill(0);
  }
  return { folder, caFingerprint: group.caFingerprintHex, files };
}
