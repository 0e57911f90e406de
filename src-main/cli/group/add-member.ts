/** `securechat-x group add-member`: issues one more member (or relay) bundle from the CA bundle. */
import { dirname, join, resolve } from 'node:path';
import { parseArgs } from 'node:util';
import { writeBundle } from '../../core/pki/bundle.js';
import { issueCertificate } from '../../core/pki/issue.js';
import { parseOrUsage, requiredOption, usageError } from '../args.js';
import { readBundleFile } from '../bundle-file.js';
import { CliError } from '../cli-error.js';
import { checkTargets, writeOutputs } from '../output-files.js';
import { CA_PASSWORD_ENV, PASSWORD_ENV, readCaPassword, readPassword } from '../password.js';
import { nameProblem } from './names.js';
import { MIN_NEW_PASSWORD_CHARS, SHARED_HELP, SHARED_OPTIONS, issuingOptions } from './options.js';

const COMMAND = 'group add-member';

export const ADD_MEMBER_HELP = `usage: securechat-x group add-member --ca DIR/ca.p12 --name NAME [--out FILE] [options]

Issues a certificate for a new member (or, with --relay, a relay) from the group CA bundle and
writes it as a PKCS#12 bundle. The new bundle's password comes from SECURECHAT_PASSWORD or
--password-file; ca.p12 is opened with SECURECHAT_CA_PASSWORD or --ca-password-file (without
either, with the bundle password, and a warning). The group's other bundles stay valid; members
pick up the newcomer on the next re-key.

options:
  --ca FILE                  the group CA bundle, ca.p12 (required)
  --name NAME                the new identity (required): 1-64 of letters, digits, '.', '_', '-'
  --out FILE                 where to write the bundle (default: NAME.p12 beside the CA bundle)
  --relay                    issue a relay (serverAuth) certificate instead of a member one
${SHARED_HELP}
`;

export async function addMember(argv: string[]): Promise<number> {
  const { values } = parseOrUsage(COMMAND, () =>
    parseArgs({
      args: argv,
      strict: true,
      allowPositionals: false,
      options: {
        ...SHARED_OPTIONS,
        ca: { type: 'string' },
        name: { type: 'string' },
        out: { type: 'string' },
        relay: { type: 'boolean', default: false },
      },
    }),
  );
  if (values.help) {
    process.stdout.write(ADD_MEMBER_HELP);
    return 0;
  }
  const caPath = resolve(requiredOption(COMMAND, 'ca', values.ca));
  const name = requiredOption(COMMAND, 'name', values.name);
  const role = values.relay ? 'relay' : 'member';
  const problem = nameProblem(name, role);
  if (problem) throw usageError(COMMAND, `--name: ${problem}`);
  const out = resolve(values.out ?? join(dirname(caPath), `${name}.p12`));
  if (out === caPath) throw usageError(COMMAND, '--out must not be the CA bundle itself');
  const opts = issuingOptions(COMMAND, values);
  await checkTargets([out], values.force);

  const password = await readPassword(values['password-file'], 'member bundle');
  if ([...password].length < MIN_NEW_PASSWORD_CHARS) {
    throw new CliError(`the bundle password must have at least ${MIN_NEW_PASSWORD_CHARS} characters`);
  }
  const caPassword = await readCaPassword(values['ca-password-file'], values['password-file']);
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
  const ca = { certificate: loaded.certificate, privateKeyPem: loaded.privateKeyPem };
  const credential = issueCertificate(ca, {
    name,
    role,
    keyBits: opts.keyBits,
    validityDays: opts.validityDays,
  });
  const data = writeBundle(credential, ca.certificate, password, { kdfIterations: opts.kdfIterations });
  await writeOutputs([{ path: out, data, mode: 0o600 }], values.force);
  if (caPassword.fromMemberPassword) process.stderr.write(caPassword.warning);

  const cert = credential.certificate;
  process.stdout.write(
    [
      `Added ${role} "${cert.name}" to group "${ca.certificate.name}"`,
      `  bundle:       ${out}`,
      `  fingerprint:  ${cert.fingerprintDisplay}`,
      `  valid to:     ${cert.notAfter.toISOString()}`,
      `  group id:     ${ca.certificate.fingerprintDisplay}`,
      '',
    ].join('\n'),
  );
  return 0;
}
