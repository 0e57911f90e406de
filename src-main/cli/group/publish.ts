/**
 * `securechat-x group publish --roster FILE --bundle MEMBER.p12 --relay HOST:PORT`: hands the
 * group's roster to a relay, logged in as a member (any member may: a roster's validity is the CA's
 * signature). Prints exactly `published roster vN` (N = the version the relay then holds, at least
 * the file's) and exits 0; any refusal, an unreachable relay or no answer is one line and exit 1.
 */
import { readFile } from 'node:fs/promises';
import { parseArgs } from 'node:util';
import { PublishError, publishRoster } from '../../client/roster-publish.js';
import { LocalIdentity } from '../../core/pki/local-identity.js';
import { integerOption, parseOrUsage, requiredOption } from '../args.js';
import { CliError } from '../cli-error.js';
import { parseRelayAddress } from '../commands/chat.js';
import { checkExpectedCa, parseExpectedCa } from '../expect-ca.js';
import { fileProblem } from '../fs-errors.js';
import { readPassword } from '../password.js';
import { ROSTER_FILE, readRosterFile } from '../roster-file.js';

const COMMAND = 'group publish';

export const PUBLISH_HELP = `usage: securechat-x group publish --roster FILE --bundle MEMBER.p12 --relay HOST:PORT [options]

Uploads the group's roster (${ROSTER_FILE}, after group create, add-member or remove-member) to a
relay, logged in as a member. The relay keeps it if it is newer than its own, sends it to every
member and drops those it no longer lists. Also starts a relay that holds no roster yet.
Prints "published roster vN", N being the version the relay then holds. The bundle password
comes from SECURECHAT_PASSWORD or --password-file FILE. Use a bundle that is not chatting on that
relay right now: a second login of one identity replaces the first (its chat ends, Replaced).

options:
  --roster FILE          the roster to publish (required)
  --bundle FILE          a member bundle of the group (.p12) to log in with (required)
  --relay HOST:PORT      the relay (required)
  --password-file FILE   read the bundle password from the first line of FILE
  --expect-ca SHA256HEX  refuse the bundle unless its group CA has this SHA-256 fingerprint
  --timeout-ms N         give up after N ms without the relay's confirmation (default 30000)
  -h, --help             show this help

exit codes: 0 published, 1 refused (RosterRejected, RosterConflict, the login) or no answer,
2 usage error.
`;

export async function publish(argv: string[]): Promise<number> {
  const { values } = parseOrUsage(COMMAND, () =>
    parseArgs({
      args: argv,
      strict: true,
      allowPositionals: false,
      options: {
        roster: { type: 'string' },
        bundle: { type: 'string' },
        relay: { type: 'string' },
        'password-file': { type: 'string' },
        'expect-ca': { type: 'string' },
        'timeout-ms': { type: 'string' },
        help: { type: 'boolean', short: 'h', default: false },
      },
    }),
  );
  if (values.help) {
    process.stdout.write(PUBLISH_HELP);
    return 0;
  }
  const rosterPath = requiredOption(COMMAND, 'roster', values.roster);
  const bundlePath = requiredOption(COMMAND, 'bundle', values.bundle);
  const relay = parseRelayAddress(requiredOption(COMMAND, 'relay', values.relay));
  const timeoutMs = integerOption(COMMAND, 'timeout-ms', values['timeout-ms'], {
    min: 100,
    max: 3_600_000,
    fallback: 30_000,
  });
  const expectedCa = parseExpectedCa(COMMAND, values['expect-ca']);
  const password = await readPassword(values['password-file']);
  let data: Buffer;
  try {
    data = await readFile(bundlePath);
  } catch (err) {
    throw new CliError(fileProblem(bundlePath, err));
  }
  const identity = LocalIdentity.fromBundleFile(data, password, 'member');
  checkExpectedCa(identity.ca, expectedCa);
  const roster = await readRosterFile(rosterPath, identity.ca);
  try {
    const { version } = await publishRoster({ identity, relay, roster, timeoutMs });
    process.stdout.write(`published roster v${version}\n`);
    return 0;
  } catch (err) {
    if (err instanceof PublishError) {
      throw new CliError(
        `cannot publish roster v${roster.version}: ${err.message} [${err.relayCode ?? err.code}]`,
      );
    }
    throw err;
  }
}
