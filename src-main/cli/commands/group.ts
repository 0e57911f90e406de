/** `securechat-x group <create|add-member>`: the organiser's side of the group PKI. */
import { usageError } from '../args.js';
import { addMember } from '../group/add-member.js';
import { createGroup } from '../group/create.js';

export const GROUP_HELP = `usage: securechat-x group <subcommand> [options]

subcommands:
  create       create a group CA and bundles for its members and relay
  add-member   issue a bundle for one more member (or relay) from the CA bundle

Run securechat-x group <subcommand> --help for its options.
`;

export async function run(argv: string[]): Promise<number> {
  const [sub, ...rest] = argv;
  switch (sub) {
    case 'create':
      return createGroup(rest);
    case 'add-member':
      return addMember(rest);
    case '--help':
    case '-h':
    case 'help':
      process.stdout.write(GROUP_HELP);
      return 0;
    case undefined:
      process.stderr.write(GROUP_HELP);
      return 2;
    default:
      throw usageError('group', `unknown subcommand "${sub}"`);
  }
}
