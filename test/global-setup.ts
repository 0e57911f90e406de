import { execFileSync } from 'node:child_process';

/**
 * Integration tests run the real CLI (out/node), as users do. Build it once per test run so
 * the processes under test are always the current source.
 */
export default function setup(): void {
  execFileSync(process.execPath, ['node_modules/typescript/bin/tsc', '-p', 'tsconfig.node.json'], {
    stdio: 'inherit',
  });
}
