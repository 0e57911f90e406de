/**
 * `securechat-x` entry point: picks the command and hands it the remaining arguments.
 * Each command lives in commands/ and parses its own flags with node:util parseArgs.
 */
import { CliError } from './cli-error.js';
import { describeError } from './describe-error.js';
import { refusePasswordArguments } from './password.js';

type Command = (argv: string[]) => Promise<number>;

const COMMANDS: Record<string, { summary: string; load: () => Promise<Command> }> = {
  group: {
    summary: 'create a group (CA, bundles, roster), add or remove a member, publish the roster',
    load: async () => (await import('./commands/group.js')).run,
  },
  inspect: {
    summary: 'show a .p12 bundle, .pem certificate or roster.scx',
    load: async () => (await import('./commands/inspect.js')).run,
  },
  relay: {
    summary: 'run the relay server headless',
    load: async () => (await import('./commands/relay.js')).run,
  },
  chat: { summary: 'terminal chat client', load: async () => (await import('./commands/chat.js')).run },
  history: {
    summary: 'print the messages kept in your encrypted local store',
    load: async () => (await import('./commands/history.js')).run,
  },
};

export const USAGE = `usage: securechat-x <command> [options]

commands:
${Object.entries(COMMANDS)
  .map(([name, c]) => `  ${name.padEnd(9)} ${c.summary}`)
  .join('\n')}

Run securechat-x <command> --help for a command's options.
Passwords are read from SECURECHAT_PASSWORD or --password-file FILE, never from arguments.
The group CA bundle's password: SECURECHAT_CA_PASSWORD or --ca-password-file FILE.
`;

async function main(argv: string[]): Promise<number> {
  const [name, ...rest] = argv;
  if (name === undefined || name === '--help' || name === '-h' || name === 'help') {
    process.stdout.write(USAGE);
    return name === undefined ? 2 : 0;
  }
  if (name === '--version') {
    process.stdout.write('securechat-x 0.1.0\n');
    return 0;
  }
  const command = COMMANDS[name];
  if (!command) throw new CliError(`unknown command "${name}"\n\n${USAGE}`, 2);
  refusePasswordArguments(rest);
  return (await command.load())(rest);
}

main(process.argv.slice(2)).then(
  (code) => {
    process.exitCode = code;
  },
  (err: unknown) => {
    process.stderr.write(`securechat-x: ${describeError(err)}\n`);
    // A flag parseArgs refused is a usage error like any other (exit 2), whichever command threw it.
    const usage = err instanceof Error && 'code' in err && String(err.code).startsWith('ERR_PARSE_ARGS');
    process.exitCode = err instanceof CliError ? err.exitCode : usage ? 2 : 1;
  },
);
