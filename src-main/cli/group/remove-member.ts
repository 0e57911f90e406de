/**
 * `securechat-x group remove-member`: writes the roster's next version without the member and
 * with a removed entry for its certificate. Needs only the CA bundle: no key is made, no bundle
 * written or deleted (the member's .p12 stays a valid certificate; the roster is what says it is
 * no longer in the group).
 */
import { dirname, join, resolve } from 'node:path';
import { parseArgs } from 'node:util';
import { nextRoster, signRoster, verifyRoster } from '../../core/roster/index.js';
import { LIMITS } from '../../core/protocol/schemas.js';
import { parseOrUsage, requiredOption, usageError } from '../args.js';
import { readCaPassword } from '../password.js';
import {
  ROSTER_FILE,
  readRosterFile,
  replaceRosterFile,
  rosterLine,
  withRosterPath,
} from '../roster-file.js';
import { openCaBundle } from './ca-bundle.js';
import { nameProblem } from './names.js';

const COMMAND = 'group remove-member';

export const REMOVE_MEMBER_HELP = `usage: securechat-x group remove-member --ca DIR/ca.p12 --name NAME [--reason TEXT] [options]

Writes the next version of the group's roster without member NAME: its certificate moves to the
roster's removed entries, with the time and the reason, and can never be listed again (NAME can,
with a new certificate from add-member). ca.p12 is opened with SECURECHAT_CA_PASSWORD or
--ca-password-file (without either, with SECURECHAT_PASSWORD / --password-file, and a warning).
Prints one line: "roster vN: removed NAME (REASON); ...".

Then publish it (group publish --roster FILE --bundle MEMBER.p12 --relay HOST:PORT): the relay
drops the removed member (Removed) and refuses its bundle from then on.

options:
  --ca FILE                  the group CA bundle, ca.p12 (required)
  --name NAME                the member to remove (required)
  --reason TEXT              why, kept in the roster (up to ${LIMITS.reasonChars} characters, one line)
  --roster FILE              the group's roster (default: ${ROSTER_FILE} beside the CA bundle)
  --password-file FILE       read the password for ca.p12 from FILE's first line, if no CA password
  --ca-password-file FILE    read the CA bundle's password from FILE's first line (else
                             SECURECHAT_CA_PASSWORD)
  -h, --help                 show this help
`;

export async function removeMember(argv: string[]): Promise<number> {
  const { values } = parseOrUsage(COMMAND, () =>
    parseArgs({
      args: argv,
      strict: true,
      allowPositionals: false,
      options: {
        ca: { type: 'string' },
        name: { type: 'string' },
        roster: { type: 'string' },
        reason: { type: 'string', default: '' },
        'password-file': { type: 'string' },
        'ca-password-file': { type: 'string' },
        help: { type: 'boolean', short: 'h', default: false },
      },
    }),
  );
  if (values.help) {
    process.stdout.write(REMOVE_MEMBER_HELP);
    return 0;
  }
  const caPath = resolve(requiredOption(COMMAND, 'ca', values.ca));
  const name = requiredOption(COMMAND, 'name', values.name);
  const problem = nameProblem(name, 'member');
  if (problem) throw usageError(COMMAND, `--name: ${problem}`);
  const reason = values.reason;
  if (reason.length > LIMITS.reasonChars || /\p{Cc}/u.test(reason)) {
    throw usageError(COMMAND, `--reason must be one line of at most ${LIMITS.reasonChars} characters`);
  }
  const rosterPath = resolve(values.roster ?? join(dirname(caPath), ROSTER_FILE));
  if (rosterPath === caPath) throw usageError(COMMAND, '--roster must not be the CA bundle');

  const caPassword = await readCaPassword(values['ca-password-file'], values['password-file']);
  const ca = await openCaBundle(caPath, caPassword);
  const roster = await readRosterFile(rosterPath, ca.certificate);
  const next = withRosterPath(rosterPath, () => {
    const body = nextRoster(roster, { kind: 'remove-member', name, reason });
    return verifyRoster(signRoster(body, ca), ca.certificate);
  });
  await replaceRosterFile(rosterPath, roster, next);
  if (caPassword.fromMemberPassword) process.stderr.write(caPassword.warning);
  process.stdout.write(rosterLine(next, `removed ${name}${reason ? ` (${reason})` : ''}`));
  return 0;
}
