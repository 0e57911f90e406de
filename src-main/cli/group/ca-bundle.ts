/** Opening the group CA bundle (ca.p12) for group add-member and group remove-member. */
import type { Credential } from '../../core/pki/issue.js';
import { readBundleFile } from '../bundle-file.js';
import { CliError } from '../cli-error.js';
import { CA_PASSWORD_ENV, PASSWORD_ENV, type CaPassword } from '../password.js';

export async function openCaBundle(caPath: string, caPassword: CaPassword): Promise<Credential> {
  let loaded;
  try {
    loaded = await readBundleFile(caPath, caPassword.password);
  } catch (err) {
    // Say where the password that did not open ca.p12 came from: likely the wrong one was used.
    if (caPassword.fromMemberPassword && err instanceof CliError && /\(WrongPassword\)$/.test(err.message)) {
      throw new CliError(
        `${err.message}; with no ${CA_PASSWORD_ENV} or --ca-password-file, the ${PASSWORD_ENV} / --password-file password was tried`,
      );
    }
    throw err;
  }
  if (!loaded.certificate.isCa) {
    throw new CliError(
      `${caPath} is the bundle of "${loaded.certificate.name}", not the group CA bundle (ca.p12)`,
    );
  }
  return { certificate: loaded.certificate, privateKeyPem: loaded.privateKeyPem };
}
