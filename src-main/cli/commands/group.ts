/** `securechat-x group <create|add-member|remove-member|publish>`: the organiser's side of the group PKI. */
import { usageError } from '../args.js';
import { addMember } from '../group/add-member.js';
import { createGroup } from '../group/create.js';
import { publish } from '../group/publish.js';
import { removeMember } from '../group/remove-member.js';

export const GROUP_HELP = `usage: securechat-x group <subcommand> [options]

subcommands:
  create          create a group CA, bundles for its members and relay, and roster v1
  add-member      issue a bundle for one more member (or relay) and list it in the roster
  remove-member   write the roster's next version without a member
  publish         upload the roster to a relay (it enforces it: who may log in, who is dropped)

Run securechat-x group <subcommand> --help for its options.
`;

export async function run(argv: string[]): Promise<number> {
  const [sub, ...rest] = argv;
  switch (sub) {
    case 'create':
      return createGroup(rest);
    case 'add-member':
      return addMember(rest);
    case 'remove-member':
      return removeMember(rest);
    case 'publish':
      return publish(rest);
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
