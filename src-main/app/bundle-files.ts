/**
 * Reading a certificate bundle the user chose: the file checked for size, then opened in the PKI
 * worker thread (ports.pki, about a second of PBKDF2), never on the main event loop.
 */
import { readFile, stat } from 'node:fs/promises';
import { MAX_BUNDLE_BYTES } from '../core/pki/bundle.js';
import { LocalIdentity } from '../core/pki/local-identity.js';
import { AppFailure } from './errors.js';
import type { PkiPort } from './ports.js';

/** Reads a chosen .p12, refusing what cannot be a bundle (empty, a folder, far too large). */
export async function readBundleFile(path: string): Promise<Buffer> {
  const info = await stat(path);
  if (!info.isFile() || info.size === 0 || info.size > MAX_BUNDLE_BYTES) {
    throw new AppFailure(
      'NotABundle',
      'This file is not a SecureChat-X certificate bundle (.p12): it is empty, a folder or far too large.',
    );
  }
  return readFile(path);
}

/** Opens a bundle in the PKI worker; the private key goes straight into a LocalIdentity. */
export async function openBundle(
  pki: PkiPort,
  data: Uint8Array,
  password: string,
  role: 'member' | 'relay',
): Promise<LocalIdentity> {
  return LocalIdentity.fromBundle(await pki.readBundle(data, password), role);
}
