/**
 * Runs the built CLI (out/node, built once by test/global-setup.ts) as a real child process,
 * the way a user or a script runs it.
 */
import { execFile, execFileSync } from 'node:child_process';
import { cpSync, mkdtempSync, symlinkSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';

const BUILT = join(process.cwd(), 'out', 'node');

/**
 * A private copy of the build under test. Other suites (and people) rebuild out/node while these
 * tests run; a child process that loads a file mid-rewrite fails for reasons unrelated to the CLI.
 * The copy is checked by loading every module the tests use, and taken again if it was torn.
 */
function snapshotBuild(): string {
  let lastError: unknown;
  for (let attempt = 0; attempt < 5; attempt++) {
    const dir = mkdtempSync(join(tmpdir(), 'scx-cli-build-'));
    cpSync(BUILT, dir, { recursive: true });
    // ESM scope and package resolution, as the build has inside the project.
    writeFileSync(join(dir, 'package.json'), '{"type":"module"}\n');
    symlinkSync(join(process.cwd(), 'node_modules'), join(dir, 'node_modules'), 'dir');
    const main = join(dir, 'src-main', 'cli', 'main.js');
    try {
      for (const args of [
        ['group', 'create', '--help'],
        ['group', 'add-member', '--help'],
        ['group', 'remove-member', '--help'],
        ['inspect', '--help'],
      ]) {
        execFileSync(process.execPath, [main, ...args], { stdio: 'pipe' });
      }
      return main;
    } catch (err) {
      lastError = err;
      execFileSync('sleep', ['1']);
    }
  }
  throw new Error(`cannot get a working copy of the CLI build: ${String(lastError)}`);
}

export const CLI = snapshotBuild();
export const PASSWORD = 'integration test password';
/** The lowest allowed cost: node-forge derives bundle keys in JavaScript. */
export const FAST_KDF = ['--kdf-iterations', '10000'];

export interface RunResult {
  code: number;
  stdout: string;
  stderr: string;
}

/**
 * `password` null = no SECURECHAT_PASSWORD in the child's environment at all. SECURECHAT_CA_PASSWORD
 * is never inherited; `extraEnv` sets it (or anything else) for one run. `prefix` runs the CLI
 * under another program (e.g. setpriv), which then gets node and the CLI as its arguments. The
 * child's stdin is closed at once.
 */
export function runCli(
  args: string[],
  password: string | null = PASSWORD,
  extraEnv: Record<string, string> = {},
  prefix: string[] = [],
): Promise<RunResult> {
  const env: NodeJS.ProcessEnv = { ...process.env, NO_COLOR: '1' };
  delete env.SECURECHAT_PASSWORD;
  delete env.SECURECHAT_CA_PASSWORD;
  if (password !== null) env.SECURECHAT_PASSWORD = password;
  Object.assign(env, extraEnv);
  const [file, ...before] = prefix.length > 0 ? prefix : [process.execPath];
  const argv = prefix.length > 0 ? [...before, process.execPath, CLI, ...args] : [CLI, ...args];
  return new Promise((resolve) => {
    const child = execFile(file as string, argv, { env, timeout: 120_000 }, (err, stdout, stderr) => {
      const code = err ? (typeof err.code === 'number' ? err.code : -1) : 0;
      resolve({ code, stdout, stderr });
    });
    // No input: `chat` reads messages from stdin and leaves at its end.
    child.stdin?.end();
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
