/** `securechat-x inspect FILE [--json]`: what a .p12 bundle or .pem certificate holds. */
import { parseArgs } from 'node:util';
import { Certificate } from '../../core/pki/certificate.js';
import { PkiError } from '../../core/pki/errors.js';
import { parseOrUsage, usageError } from '../args.js';
import { readBundleFile, readInputFile } from '../bundle-file.js';
import { labelled, summarize, summaryLines, type CertificateSummary } from '../cert-summary.js';
import { CliError } from '../cli-error.js';
import { readPassword } from '../password.js';

const COMMAND = 'inspect';

export const INSPECT_HELP = `usage: securechat-x inspect FILE [--json] [--password-file FILE]

Shows identity, role, issuer, serial, validity, key size and SHA-256 fingerprint of a
certificate (.pem, every certificate in it) or of a PKCS#12 bundle (.p12, with its group CA).
A bundle needs its password: SECURECHAT_PASSWORD or --password-file. A bundle is also checked:
its MAC must verify, its key must be encrypted, its certificate must match its key and be issued
by the bundled CA, and every key must be RSA >= 2048 bits with e = 65537. The group CA's
fingerprint is shown: compare it with the one your organiser hands out (ca.pem). An expired or
not yet valid certificate is shown with its status (exit 0), like a .pem; other commands refuse it.

options:
  --json                  print JSON instead of text
  --password-file FILE    read the bundle password from FILE's first line
  -h, --help              show this help
`;

type Report =
  | { file: string; kind: 'pkcs12'; certificate: CertificateSummary; ca: CertificateSummary }
  | { file: string; kind: 'pem'; certificates: CertificateSummary[] };

const PEM_BLOCK = /-----BEGIN CERTIFICATE-----[\s\S]*?-----END CERTIFICATE-----/g;

function looksLikePem(data: Buffer): boolean {
  return /^\s*-----BEGIN /.test(data.subarray(0, 64).toString('latin1'));
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

  const data = await readInputFile(file);
  let report: Report;
  if (looksLikePem(data)) {
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
