/** `securechat-x group create`: a new group CA plus one bundle per member and one for the relay. */
import { join, resolve } from 'node:path';
import { parseArgs } from 'node:util';
import { writeBundle } from '../../core/pki/bundle.js';
import { createGroupCa, issueCertificate, type Credential } from '../../core/pki/issue.js';
import { CliError } from '../cli-error.js';
import { parseOrUsage, requiredOption, usageError } from '../args.js';
import { checkTargets, ensureDirectory, writeOutputs, type OutputFile } from '../output-files.js';
import { readPassword } from '../password.js';
import { checkGroupNames } from './names.js';
import { MIN_CA_VALIDITY_DAYS, SHARED_HELP, SHARED_OPTIONS, issuingOptions } from './options.js';

const COMMAND = 'group create';
/** A new password guards every private key of the group; refuse the trivially guessable. */
export const MIN_NEW_PASSWORD_CHARS = 8;
const DEFAULT_CA_NAME = 'SecureChat-X Group CA';

export const CREATE_HELP = `usage: securechat-x group create --out DIR --members NAME[,NAME...] [options]

Creates a group certificate authority and a password-protected PKCS#12 bundle for each member
and for the relay, all under one password (SECURECHAT_PASSWORD or --password-file):
  DIR/ca.p12        the CA certificate and key: keep it offline, it can issue new members
  DIR/ca.pem        the CA certificate (public)
  DIR/<name>.p12    one per member, and one for the relay
DIR is created if missing. Existing files are never replaced without --force, and a refusal
writes nothing.

options:
  --out DIR                  folder for the files (required)
  --members a,b,c            member identities (required): 1-64 of letters, digits, '.', '_', '-'
  --relay NAME               the relay's identity (default "relay")
  --group-name TEXT          the CA's name (default "${DEFAULT_CA_NAME}")
${SHARED_HELP}
`;

interface Planned {
  file: string;
  role: 'ca' | 'member' | 'relay';
  credential: Credential;
}

export async function createGroup(argv: string[]): Promise<number> {
  const { values } = parseOrUsage(COMMAND, () =>
    parseArgs({
      args: argv,
      strict: true,
      allowPositionals: false,
      options: {
        ...SHARED_OPTIONS,
        out: { type: 'string' },
        members: { type: 'string' },
        relay: { type: 'string', default: 'relay' },
        'group-name': { type: 'string', default: DEFAULT_CA_NAME },
      },
    }),
  );
  if (values.help) {
    process.stdout.write(CREATE_HELP);
    return 0;
  }
  const dir = resolve(requiredOption(COMMAND, 'out', values.out));
  const names = checkGroupNames(requiredOption(COMMAND, 'members', values.members), values.relay);
  if (names.problem !== undefined) throw usageError(COMMAND, names.problem);
  const caName = values['group-name'];
  if (caName.length < 1 || caName.length > 64 || /[\p{Cc}]/u.test(caName)) {
    throw usageError(COMMAND, '--group-name must be 1-64 printable characters');
  }
  const opts = issuingOptions(COMMAND, values);

  const password = await readPassword(values['password-file'], 'group');
  if ([...password].length < MIN_NEW_PASSWORD_CHARS) {
    throw new CliError(`the group password must have at least ${MIN_NEW_PASSWORD_CHARS} characters`);
  }

  const caP12 = join(dir, 'ca.p12');
  const caPem = join(dir, 'ca.pem');
  const bundlePath = (name: string): string => join(dir, `${name}.p12`);
  // Before any slow key generation: a refusal must be quick and must write nothing.
  await checkTargets(
    [caP12, caPem, ...names.members.map(bundlePath), bundlePath(values.relay)],
    values.force,
  );

  const ca = createGroupCa({
    name: caName,
    keyBits: opts.keyBits,
    validityDays: Math.max(opts.validityDays, MIN_CA_VALIDITY_DAYS),
  });
  const issue = (name: string, role: 'member' | 'relay'): Planned => ({
    file: bundlePath(name),
    role,
    credential: issueCertificate(ca, { name, role, keyBits: opts.keyBits, validityDays: opts.validityDays }),
  });
  const planned: Planned[] = [
    { file: caP12, role: 'ca', credential: ca },
    ...names.members.map((m) => issue(m, 'member')),
    issue(values.relay, 'relay'),
  ];
  const outputs: OutputFile[] = [
    ...planned.map((p) => ({
      path: p.file,
      data: writeBundle(p.credential, ca.certificate, password, { kdfIterations: opts.kdfIterations }),
      mode: 0o600,
    })),
    { path: caPem, data: ca.certificate.pem, mode: 0o644 },
  ];

  await ensureDirectory(dir);
  await writeOutputs(outputs, values.force);
  process.stdout.write(createSummary(dir, caPem, planned, opts.kdfIterations));
  return 0;
}

function createSummary(dir: string, caPem: string, planned: Planned[], kdfIterations: number): string {
  const ca = planned[0]?.credential.certificate;
  const rows = [
    ...planned.map((p) => [
      p.file,
      p.credential.certificate.name,
      p.role,
      p.credential.certificate.fingerprintDisplay,
    ]),
    [caPem, ca?.name ?? '', 'ca (certificate only)', ca?.fingerprintDisplay ?? ''],
  ];
  const width = (i: number): number => Math.max(...rows.map((r) => (r[i] ?? '').length));
  const lines = rows.map(
    (r) =>
      `  ${(r[0] ?? '').padEnd(width(0))}  ${(r[1] ?? '').padEnd(width(1))}  ${(r[2] ?? '').padEnd(width(2))}  ${r[3]}`,
  );
  return [
    `Created group "${ca?.name}" in ${dir}`,
    `Group id (CA fingerprint, SHA-256): ${ca?.fingerprintDisplay}`,
    `Bundles: RSA-${ca?.keyBits}, key encrypted with PBKDF2-HMAC-SHA256 x ${kdfIterations} and AES-256-CBC`,
    '',
    ...lines,
    '',
    'Give each member their own .p12 and tell them the password through another channel.',
    'Keep ca.p12 offline: whoever holds it can add members to the group.',
    '',
  ].join('\n');
}
