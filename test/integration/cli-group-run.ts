/**
 * Runs the built CLI (out/node, built once by test/global-setup.ts) as a real child process,
 * the way a user or a script runs it.
 */
import { execFile } from 'node:child_process';
import { join } from 'node:path';

export const CLI = join(process.cwd(), 'out', 'node', 'src-main', 'cli', 'main.js');
export const PASSWORD = 'integration test password';
/** The lowest allowed cost: node-forge derives bundle keys in JavaScript. */
export const FAST_KDF = ['--kdf-iterations', '10000'];

export interface RunResult {
  code: number;
  stdout: string;
  stderr: string;
}

/** `password` null = no SECURECHAT_PASSWORD in the child's environment at all. */
export function runCli(args: string[], password: string | null = PASSWORD): Promise<RunResult> {
  const env: NodeJS.ProcessEnv = { ...process.env, NO_COLOR: '1' };
  delete env.SECURECHAT_PASSWORD;
  if (password !== null) env.SECURECHAT_PASSWORD = password;
  return new Promise((resolve) => {
    execFile(process.execPath, [CLI, ...args], { env, timeout: 120_000 }, (err, stdout, stderr) => {
      const code = err ? (typeof err.code === 'number' ? err.code : -1) : 0;
      resolve({ code, stdout, stderr });
    });
  });
}

/** Error output must be one readable line, prefixed with the program's name, never a stack trace. */
export function oneLineError(result: RunResult): string {
  const lines = result.stderr.trimEnd().split('\n');
  if (lines.length !== 1 || !lines[0]?.startsWith('securechat-x: ') || /\n\s+at /.test(result.stderr)) {
    throw new Error(`expected a one-line error, got:\n${result.stderr}`);
  }
  return lines[0];
}
