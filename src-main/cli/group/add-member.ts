/**
 * `securechat-x group add-member`: issues one more member (or relay) bundle from the CA bundle and
 * writes the roster's next version listing it.
 */
import { rm } from 'node:fs/promises';
import { dirname, join, resolve } from 'node:path';
import { parseArgs } from 'node:util';
import { writeBundle } from '../../core/pki/bundle.js';
import { issueCertificate } from '../../core/pki/issue.js';
import { nextRoster, signRoster, verifyRoster } from '../../core/roster/index.js';
import { parseOrUsage, requiredOption, usageError } from '../args.js';
import { CliError } from '../cli-error.js';
import { checkTargets, writeOutputs } from '../output-files.js';
import { readCaPassword, readPassword } from '../password.js';
import {
  ROSTER_FILE,
  readRosterFile,
  replaceRosterFile,
  rosterLine,
  withRosterPath,
} from '../roster-file.js';
import { openCaBundle } from './ca-bundle.js';
import { nameProblem } from './names.js';
import { MIN_NEW_PASSWORD_CHARS, SHARED_HELP, SHARED_OPTIONS, issuingOptions } from './options.js';

const COMMAND = 'group add-member';

export const ADD_MEMBER_HELP = `usage: securechat-x group add-member --ca DIR/ca.p12 --name NAME [--out FILE] [options]

Issues a certificate for a new member (or, with --relay, a relay) from the group CA bundle,
writes it as a PKCS#12 bundle, and writes the next version of the group's roster listing it.
The new bundle's password comes from SECURECHAT_PASSWORD or --password-file; ca.p12 is opened
with SECURECHAT_CA_PASSWORD or --ca-password-file (without either, with the bundle password, and
a warning). The roster must verify with the group CA and must not already list NAME; the last
line on stdout is "roster vN: added NAME; ..." (docs/protocol.md, "Roster (protocol v2)").

options:
  --ca FILE                  the group CA bundle, ca.p12 (required)
  --name NAME                the new identity (required): 1-64 of letters, digits, '.', '_', '-'
  --out FILE                 where to write the bundle (default: NAME.p12 beside the CA bundle)
  --roster FILE              the group's roster (default: ${ROSTER_FILE} beside the CA bundle)
  --relay                    issue a relay (serverAuth) certificate and list it among the relays
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
        roster: { type: 'string' },
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
  const rosterPath = resolve(values.roster ?? join(dirname(caPath), ROSTER_FILE));
  if (out === caPath) throw usageError(COMMAND, '--out must not be the CA bundle itself');
  if (out === rosterPath) throw usageError(COMMAND, '--out must not be the roster');
  const opts = issuingOptions(COMMAND, values);
  await checkTargets([out], values.force);

  const password = await readPassword(values['password-file'], 'member bundle');
  if ([...password].length < MIN_NEW_PASSWORD_CHARS) {
    throw new CliError(`the bundle password must have at least ${MIN_NEW_PASSWORD_CHARS} characters`);
  }
  const caPassword = await readCaPassword(values['ca-password-file'], values['password-file']);
  const ca = await openCaBundle(caPath, caPassword);
  const roster = await readRosterFile(rosterPath, ca.certificate);
  // Names become file names: "Dave" beside "dave" collides on case-insensitive file systems.
  const clash = [...roster.memberNames, ...roster.relayNames].find(
    (n) => n !== name && n.toLowerCase() === name.toLowerCase(),
  );
  if (clash)
    throw new CliError(`"${name}" differs only in letter case from "${clash}", already in the roster`);

  const credential = issueCertificate(ca, {
    name,
    role,
    keyBits: opts.keyBits,
    validityDays: opts.validityDays,
  });
  // The roster change is checked before the slow bundle is written: a refusal writes nothing.
  const next = withRosterPath(rosterPath, () => {
    const body = nextRoster(roster, {
      kind: role === 'relay' ? 'add-relay' : 'add-member',
      certificate: credential.certificate,
    });
    return verifyRoster(signRoster(body, ca), ca.certificate);
  });
  const data = writeBundle(credential, ca.certificate, password, { kdfIterations: opts.kdfIterations });
  await writeOutputs([{ path: out, data, mode: 0o600 }], values.force);
  try {
    await replaceRosterFile(rosterPath, roster, next);
  } catch (err) {
    // A bundle whose certificate no roster lists is of no use; one written just now goes again.
    if (!values.force) await rm(out, { force: true });
    throw err;
  }
  if (caPassword.fromMemberPassword) process.stderr.write(caPassword.warning);

  const cert = credential.certificate;
  process.stdout.write(
    [
      `Added ${role} "${cert.name}" to group "${roster.name}"`,
      `  bundle:       ${out}`,
      `  fingerprint:  ${cert.fingerprintDisplay}`,
      `  valid to:     ${cert.notAfter.toISOString()}`,
      `  group id:     ${ca.certificate.fingerprintDisplay}`,
      `  roster:       ${rosterPath}`,
      '',
    ].join('\n') + rosterLine(next, role === 'relay' ? `added relay ${name}` : `added ${name}`),
  );
  return 0;
}
