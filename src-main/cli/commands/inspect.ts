/** `securechat-x inspect FILE [--json]`: what a .p12 bundle, a .pem certificate or a roster.scx holds. */
import { parseArgs } from 'node:util';
import { Certificate } from '../../core/pki/certificate.js';
import { formatFingerprint } from '../../core/pki/fingerprint.js';
import { PkiError } from '../../core/pki/errors.js';
import { MESSAGE_TYPES, PROTOCOL_VERSION } from '../../core/protocol/index.js';
import { MAX_ROSTER_BYTES, rosterSigner, verifyRoster, type Roster } from '../../core/roster/index.js';
import { parseOrUsage, usageError } from '../args.js';
import { readBundleFile, readInputFile } from '../bundle-file.js';
import { labelled, summarize, summaryLines, type CertificateSummary } from '../cert-summary.js';
import { CliError } from '../cli-error.js';
import { readPassword } from '../password.js';
import { withRosterPath } from '../roster-file.js';

const COMMAND = 'inspect';

export const INSPECT_HELP = `usage: securechat-x inspect FILE [--json] [--password-file FILE]

Shows identity, role, issuer, serial, validity, key size and SHA-256 fingerprint of a
certificate (.pem, every certificate in it) or of a PKCS#12 bundle (.p12, with its group CA).
A bundle needs its password: SECURECHAT_PASSWORD or --password-file. A bundle is also checked:
its MAC must verify, its key must be encrypted, its certificate must match its key and be issued
by the bundled CA, and every key must be RSA >= 2048 bits with e = 65537. The group CA's
fingerprint is shown: compare it with the one your organiser hands out (ca.pem). An expired or
not yet valid certificate is shown with its status (exit 0), like a .pem; other commands refuse it.
A roster (roster.scx, no password) is verified against the CA that signed it: its signature and
every certificate it lists; compare that CA's fingerprint too. Shown: group name and id, version,
issue time, members and relays with their fingerprints, and removed entries.

options:
  --json                  print JSON instead of text
  --password-file FILE    read the bundle password from FILE's first line
  -h, --help              show this help
`;

interface ListedSummary {
  name: string;
  fingerprint: string;
  fingerprintHex: string;
}

interface RosterReport {
  file: string;
  kind: 'roster';
  group: string;
  groupId: string;
  version: number;
  issuedAt: string;
  members: ListedSummary[];
  relays: ListedSummary[];
  removed: { name: string; fingerprint: string; fingerprintHex: string; removedAt: string; reason: string }[];
  ca: CertificateSummary;
}

type Report =
  | { file: string; kind: 'pkcs12'; certificate: CertificateSummary; ca: CertificateSummary }
  | { file: string; kind: 'pem'; certificates: CertificateSummary[] }
  | RosterReport;

const PEM_BLOCK = /-----BEGIN CERTIFICATE-----[\s\S]*?-----END CERTIFICATE-----/g;

function looksLikePem(data: Buffer): boolean {
  return /^\s*-----BEGIN /.test(data.subarray(0, 64).toString('latin1'));
}

/** A roster envelope starts with the protocol version and the ROSTER type; a PFX with 0x30. */
function looksLikeRoster(data: Buffer): boolean {
  return data[0] === PROTOCOL_VERSION && data[1] === MESSAGE_TYPES.ROSTER;
}

function rosterReport(file: string, roster: Roster): RosterReport {
  const listed = (e: Roster['members'][number]): ListedSummary => ({
    name: e.name,
    fingerprint: e.certificate.fingerprintDisplay,
    fingerprintHex: e.fingerprintHex,
  });
  const byName = <T extends { name: string }>(list: readonly T[]): T[] =>
    [...list].sort((a, b) => (a.name < b.name ? -1 : a.name > b.name ? 1 : 0));
  return {
    file,
    kind: 'roster',
    group: roster.name,
    groupId: roster.groupId,
    version: roster.version,
    issuedAt: new Date(roster.issuedAt).toISOString(),
    members: byName(roster.members).map(listed),
    relays: byName(roster.relays).map(listed),
    removed: roster.removed.map((r) => ({
      name: r.name,
      fingerprint: formatFingerprint(r.fingerprint),
      fingerprintHex: r.fingerprint,
      removedAt: new Date(r.removedAt).toISOString(),
      reason: r.reason,
    })),
    ca: summarize(roster.ca),
  };
}

function readPemCertificates(file: string, data: Buffer): CertificateSummary[] {
  const blocks = data.toString('latin1').match(PEM_BLOCK) ?? [];
  if (blocks.length === 0) throw new CliError(`${file} holds no certificate (only other PEM blocks)`);
  return blocks.map((pem, i) => {
    try {
      return summarize(Certificate.fromPem(pem));
    } catch (err) {
      if (err instanceof PkiError) throw new CliError(`${file}: certificate ${i + 1}: ${err.message}`);
      throw err;
    }
  });
}

export async function run(argv: string[]): Promise<number> {
  const { values, positionals } = parseOrUsage(COMMAND, () =>
    parseArgs({
      args: argv,
      strict: true,
      allowPositionals: true,
      options: {
        json: { type: 'boolean', default: false },
        'password-file': { type: 'string' },
        help: { type: 'boolean', short: 'h', default: false },
      },
    }),
  );
  if (values.help) {
    process.stdout.write(INSPECT_HELP);
    return 0;
  }
  if (positionals.length !== 1) throw usageError(COMMAND, 'give exactly one FILE to inspect');
  const file = positionals[0] as string;

  // A roster may be up to one frame; a bundle is held to its own, smaller bound by readBundleFile.
  const data = await readInputFile(file, MAX_ROSTER_BYTES);
  let report: Report;
  if (looksLikeRoster(data)) {
    // Verified against the CA it names: self-consistent, and that CA's fingerprint is shown for a
    // person to compare. A roster from another CA verifies as well; the fingerprint tells it apart.
    const roster = withRosterPath(file, () => verifyRoster(data, rosterSigner(data)));
    report = rosterReport(file, roster);
  } else if (looksLikePem(data)) {
    report = { file, kind: 'pem', certificates: readPemCertificates(file, data) };
  } else {
    const password = await readPassword(values['password-file'], 'bundle');
    // Showing when a bundle expired is the point of inspecting it: skip only the validity window.
    const bundle = await readBundleFile(file, password, { checkValidityPeriod: false });
    report = { file, kind: 'pkcs12', certificate: summarize(bundle.certificate), ca: summarize(bundle.ca) };
  }
  process.stdout.write(values.json ? `${JSON.stringify(report, null, 2)}\n` : formatReport(report));
  return 0;
}

/**
 * A bundle is only as trustworthy as its CA: the fingerprint is what a person compares with the
 * one the organiser hands out, out of band, to notice a bundle from another CA.
 */
const COMPARE_CA = 'compare the CA fingerprint with the one your organiser hands out (ca.pem)';

function formatReport(report: Report): string {
  const indent = (lines: string[]): string[] => lines.map((l) => `  ${l}`);
  if (report.kind === 'roster') return formatRoster(report, indent);
  if (report.kind === 'pem') {
    const parts = report.certificates.map((c, i) => [
      report.certificates.length > 1 ? `certificate ${i + 1}:` : 'certificate:',
      ...indent(summaryLines(c)),
      ...indent(
        c.role === 'ca' ? [labelled('CA fingerprint', c.fingerprint), labelled('check', COMPARE_CA)] : [],
      ),
    ]);
    return [`${report.file}: PEM certificate file`, ...parts.flat(), ''].join('\n');
  }
  return [
    `${report.file}: PKCS#12 bundle (certificate, private key${report.certificate.role === 'ca' ? '' : ', group CA'})`,
    ...indent(summaryLines(report.certificate)),
    ...indent([
      labelled('group CA', report.ca.identity),
      labelled('CA fingerprint', report.ca.fingerprint),
      labelled('CA raw', report.ca.fingerprintHex),
      labelled('check', COMPARE_CA),
    ]),
    '',
  ].join('\n');
}

function formatRoster(report: RosterReport, indent: (lines: string[]) => string[]): string {
  const width = Math.max(
    0,
    ...[...report.members, ...report.relays, ...report.removed].map((e) => e.name.length),
  );
  const rows = (entries: { name: string; fingerprint: string }[]): string[] =>
    entries.map((e) => `  ${e.name.padEnd(width)}  ${e.fingerprint}`);
  return [
    `${report.file}: group roster, signed by the group CA (signature and certificates verified)`,
    ...indent([
      labelled('group', report.group),
      labelled('group id', `${report.ca.fingerprint}  (CA fingerprint, SHA-256)`),
      labelled('CA raw', report.groupId),
      labelled('version', String(report.version)),
      labelled('issued', report.issuedAt),
      labelled('members', String(report.members.length)),
      ...rows(report.members),
      labelled('relays', String(report.relays.length)),
      ...rows(report.relays),
      labelled('removed', String(report.removed.length)),
      ...report.removed.map(
        (r) =>
          `  ${r.name.padEnd(width)}  ${r.fingerprint}  on ${r.removedAt}${r.reason ? `: ${r.reason}` : ''}`,
      ),
      labelled('check', COMPARE_CA),
    ]),
    '',
  ].join('\n');
}
