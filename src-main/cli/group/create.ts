/**
 * `securechat-x group create`: a new group CA, one bundle per member and one for the relay, and
 * roster v1 listing them all.
 */
import { join, resolve } from 'node:path';
import { parseArgs } from 'node:util';
import { writeBundle } from '../../core/pki/bundle.js';
import {
  createGroupCa,
  generateKeyPairPem,
  issueCertificate,
  type Credential,
  type KeyPairPem,
} from '../../core/pki/issue.js';
import { buildRoster, signRoster, verifyRoster } from '../../core/roster/index.js';
import { CliError } from '../cli-error.js';
import { parseOrUsage, requiredOption, usageError } from '../args.js';
import { checkTargets, ensureDirectory, writeOutputs, type OutputFile } from '../output-files.js';
import { CA_PASSWORD_ENV, readCaPassword, readPassword } from '../password.js';
import { ROSTER_FILE, ROSTER_MODE, rosterLine, withRosterPath } from '../roster-file.js';
import { BundlePool } from './bundle-pool.js';
import { checkGroupNames } from './names.js';
import {
  MIN_CA_VALIDITY_DAYS,
  MIN_NEW_PASSWORD_CHARS,
  SHARED_HELP,
  SHARED_OPTIONS,
  issuingOptions,
} from './options.js';
import { PASSPHRASE_BITS, generatePassphrase } from './passphrase.js';
import { Progress } from './progress.js';

const COMMAND = 'group create';
const DEFAULT_CA_NAME = 'SecureChat-X Group CA';
export const PASSWORDS_FILE = 'passwords.txt';

export const CREATE_HELP = `usage: securechat-x group create --out DIR --members NAME[,NAME...] [options]

Creates a group certificate authority and a password-protected PKCS#12 bundle for each member
and for the relay. The member and relay bundles share one password (SECURECHAT_PASSWORD or
--password-file) unless --generate-passwords gives each its own; the CA bundle has its own
(SECURECHAT_CA_PASSWORD or --ca-password-file; without one it gets the bundle password, with a
warning):
  DIR/ca.p12          the CA certificate and key: keep it offline, it can issue new members
  DIR/ca.pem          the CA certificate (public): hand it out, members compare its fingerprint
  DIR/${ROSTER_FILE}      the group's roster v1, signed by the CA: every member and the relay
  DIR/<name>.p12      one per member, and one for the relay
  DIR/${PASSWORDS_FILE}    with --generate-passwords: "name<TAB>password" per bundle (mode 0600)
DIR is created if missing. Existing files are never replaced without --force, and a refusal
writes nothing.

options:
  --out DIR                  folder for the files (required)
  --members a,b,c            member identities (required): 1-64 of letters, digits, '.', '_', '-'
  --relay NAME               the relay's identity (default "relay")
  --name TEXT                the group's name (default "${DEFAULT_CA_NAME}"), any language,
                             1-64 characters: the CA's name and the roster's
  --group-name TEXT          the same as --name (its older spelling)
  --generate-passwords       a random password per member and relay bundle (${PASSPHRASE_BITS} bits, 8 groups
                             of 4 letters and digits), written to DIR/${PASSWORDS_FILE}; then
                             SECURECHAT_PASSWORD is not needed
${SHARED_HELP}
`;

interface Planned {
  file: string;
  role: 'ca' | 'member' | 'relay';
  credential: Credential;
}

function checkNewPassword(password: string, what: string): void {
  if ([...password].length < MIN_NEW_PASSWORD_CHARS) {
    throw new CliError(`${what} must have at least ${MIN_NEW_PASSWORD_CHARS} characters`);
  }
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
        name: { type: 'string' },
        'group-name': { type: 'string' },
        'generate-passwords': { type: 'boolean', default: false },
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
  if (
    values.name !== undefined &&
    values['group-name'] !== undefined &&
    values.name !== values['group-name']
  ) {
    throw usageError(COMMAND, '--name and --group-name name the group twice, differently; give one');
  }
  const flag = values.name !== undefined ? '--name' : '--group-name';
  const caName = values.name ?? values['group-name'] ?? DEFAULT_CA_NAME;
  // Counted in UTF-16 units, as createGroupCa and the roster schema count them.
  if (caName.length < 1 || caName.length > 64 || /[\p{Cc}]/u.test(caName)) {
    throw usageError(COMMAND, `${flag} must be 1-64 printable characters`);
  }
  const opts = issuingOptions(COMMAND, values);
  const generate = values['generate-passwords'];
  if (generate && values['password-file'] !== undefined) {
    throw usageError(
      COMMAND,
      `--generate-passwords makes the bundle passwords, so --password-file has nothing to do; give the CA password with ${CA_PASSWORD_ENV} or --ca-password-file`,
    );
  }

  const sharedPassword = generate ? undefined : await readPassword(values['password-file'], 'group');
  if (sharedPassword !== undefined) checkNewPassword(sharedPassword, 'the group password');
  const caPassword = await readCaPassword(values['ca-password-file'], values['password-file']);
  checkNewPassword(caPassword.password, 'the CA password');

  const caP12 = join(dir, 'ca.p12');
  const caPem = join(dir, 'ca.pem');
  const passwordsFile = join(dir, PASSWORDS_FILE);
  const rosterPath = join(dir, ROSTER_FILE);
  const bundlePath = (name: string): string => join(dir, `${name}.p12`);
  const holders = [
    ...names.members.map((name) => ({ name, role: 'member' as const })),
    { name: values.relay, role: 'relay' as const },
  ];
  // Before any slow key generation: a refusal must be quick and must write nothing.
  await checkTargets(
    [
      caP12,
      caPem,
      rosterPath,
      ...holders.map((h) => bundlePath(h.name)),
      ...(generate ? [passwordsFile] : []),
    ],
    values.force,
  );
  const passwords = holders.map(() => sharedPassword ?? generatePassphrase());

  const made = await makeBundles(caName, holders, passwords, caPassword.password, opts);
  const planned: Planned[] = [
    { file: caP12, role: 'ca', credential: made.ca },
    ...holders.map((h, i) => ({
      file: bundlePath(h.name),
      role: h.role,
      credential: made.holders[i] as Credential,
    })),
  ];
  const certificatesOf = (role: 'member' | 'relay') =>
    planned.filter((p) => p.role === role).map((p) => p.credential.certificate);
  const rosterBytes = withRosterPath(rosterPath, () =>
    signRoster(
      buildRoster({
        ca: made.ca.certificate,
        name: caName,
        members: certificatesOf('member'),
        relays: certificatesOf('relay'),
      }),
      made.ca,
    ),
  );
  const outputs: OutputFile[] = [
    ...planned.map((p, i) => ({ path: p.file, data: made.bundles[i] as Buffer, mode: 0o600 })),
    { path: caPem, data: made.ca.certificate.pem, mode: 0o644 },
    { path: rosterPath, data: rosterBytes, mode: ROSTER_MODE },
    ...(generate
      ? [
          {
            path: passwordsFile,
            data: holders.map((h, i) => `${h.name}\t${passwords[i]}\n`).join(''),
            mode: 0o600,
          },
        ]
      : []),
  ];

  await ensureDirectory(dir);
  await writeOutputs(outputs, values.force);
  const roster = withRosterPath(rosterPath, () => verifyRoster(rosterBytes, made.ca.certificate));
  process.stdout.write(
    createSummary(dir, caPem, planned, opts.kdfIterations, generate ? passwordsFile : undefined) +
      `Roster: ${rosterPath}, signed by the CA; add-member and remove-member write its next versions.\n` +
      rosterLine(roster, 'created'),
  );
  if (caPassword.fromMemberPassword) process.stderr.write(caPassword.warning);
  return 0;
}

/**
 * Keys on libuv's thread pool, certificates signed here (the CA key never leaves this thread),
 * member and relay bundles written by a pool of worker threads, the CA bundle here meanwhile.
 * Returns the bundles in the order [CA, ...holders] whatever order they finished in.
 */
async function makeBundles(
  caName: string,
  holders: { name: string; role: 'member' | 'relay' }[],
  passwords: string[],
  caPassword: string,
  opts: ReturnType<typeof issuingOptions>,
): Promise<{ ca: Credential; holders: Credential[]; bundles: Buffer[] }> {
  const caKey = generateKeyPairPem(opts.keyBits);
  const holderKeys = holders.map(() => generateKeyPairPem(opts.keyBits));
  // Each is awaited below, but maybe after another failed: never an unhandled rejection.
  for (const key of [caKey, ...holderKeys]) key.catch(() => undefined);
  const progress = new Progress(holders.length + 1);
  const pool = new BundlePool();
  try {
    const ca = createGroupCa({
      name: caName,
      keyBits: opts.keyBits,
      validityDays: Math.max(opts.validityDays, MIN_CA_VALIDITY_DAYS),
      keyPair: await caKey,
    });
    const credentials: Credential[] = [];
    const written: Promise<Buffer>[] = [];
    for (const [i, holder] of holders.entries()) {
      const credential = issueCertificate(ca, {
        ...holder,
        keyBits: opts.keyBits,
        validityDays: opts.validityDays,
        keyPair: await (holderKeys[i] as Promise<KeyPairPem>),
      });
      credentials.push(credential);
      const bundle = pool.write({
        certificatePem: credential.certificate.pem,
        privateKeyPem: credential.privateKeyPem,
        caPem: ca.certificate.pem,
        password: passwords[i] as string,
        kdfIterations: opts.kdfIterations,
      });
      bundle.then(
        () => progress.tick(),
        () => undefined,
      );
      written.push(bundle);
    }
    const caBundle = writeBundle(ca, ca.certificate, caPassword, { kdfIterations: opts.kdfIterations });
    progress.tick();
    const bundles = [caBundle, ...(await Promise.all(written))];
    return { ca, holders: credentials, bundles };
  } finally {
    progress.end();
    await pool.close();
  }
}

function createSummary(
  dir: string,
  caPem: string,
  planned: Planned[],
  kdfIterations: number,
  passwordsFile: string | undefined,
): string {
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
    ...(passwordsFile
      ? [
          `Each bundle has its own password, listed in ${passwordsFile} (mode 0600):`,
          'hand each one over separately, then delete that file.',
        ]
      : []),
    'Give everyone ca.pem or its fingerprint: they compare it with what their bundle shows.',
    'Keep ca.p12 offline: whoever holds it can add members to the group.',
    '',
  ].join('\n');
}
