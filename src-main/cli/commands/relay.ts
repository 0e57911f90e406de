import { CliError } from '../cli-error.js';

export async function run(_argv: string[]): Promise<number> {
  throw new CliError('the "relay" command is not implemented yet');
}
