/** The shell's first start: `npm start`'s check for the Electron runtime (src-main/launch) and the report of a failing start. */
import { spawnSync } from 'node:child_process';
import { chmodSync, mkdirSync, mkdtempSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join, resolve } from 'node:path';
import { describe, expect, it } from 'vitest';
import { startFailureReport } from '../../src-main/app/start-failure.js';
import { findElectronRuntime, missingRuntimeMessage } from '../../src-main/launch/electron-runtime.js';

const CHECK = resolve(import.meta.dirname, '../../out/node/src-main/launch/check-electron.js');

function project(binary: 'none' | 'path-only' | 'installed'): string {
  const root = mkdtempSync(join(tmpdir(), 'scx-launch-'));
  const pkg = join(root, 'node_modules/electron');
  mkdirSync(join(pkg, 'dist'), { recursive: true });
  if (binary === 'none') return root;
  writeFileSync(join(pkg, 'path.txt'), 'electron');
  if (binary === 'installed') {
    writeFileSync(join(pkg, 'dist/electron'), '#!/bin/sh\n');
    chmodSync(join(pkg, 'dist/electron'), 0o755);
  }
  return root;
}

describe('finding the Electron runtime', () => {
  it('finds the binary that path.txt names under dist/, and nothing where there is none', () => {
    const installed = project('installed');
    expect(findElectronRuntime(installed, {}).path).toBe(
      join(installed, 'node_modules/electron/dist/electron'),
    );
    // path.txt written, the download that should follow it failed: still no runtime.
    const half = project('path-only');
    expect(findElectronRuntime(half, {})).toEqual({
      looked: [
        join(half, 'node_modules/electron/path.txt'),
        join(half, 'node_modules/electron/dist/electron'),
      ],
    });
    expect(findElectronRuntime(project('none'), {}).path).toBeUndefined();
  });

  it('an environment variable it is told to read wins when its file exists, and is reported when not', () => {
    const installed = project('installed');
    const other = join(project('installed'), 'node_modules/electron/dist/electron');
    expect(findElectronRuntime(installed, { ELECTRON_EXEC_PATH: other }).path).toBe(other);
    const none = project('none');
    const found = findElectronRuntime(none, {
      ELECTRON_EXEC_PATH: '/nowhere/electron',
      ELECTRON_PATH: other,
    });
    expect(found.path).toBeUndefined(); // ELECTRON_PATH is the e2e suite's, not electron-vite's
    expect(found.looked[0]).toBe('ELECTRON_EXEC_PATH=/nowhere/electron');
    expect(findElectronRuntime(none, { ELECTRON_PATH: other }, ['ELECTRON_PATH']).path).toBe(other);
  });

  it('npm start’s check: one line on stderr and exit 1 without a runtime, silent exit 0 with one', () => {
    const none = spawnSync(process.execPath, [CHECK, '--root', project('none')], {
      encoding: 'utf8',
      env: {},
    });
    expect(none.status).toBe(1);
    expect(none.stdout).toBe('');
    expect(none.stderr.trimEnd().split('\n')).toHaveLength(1);
    expect(none.stderr).toMatch(
      /^securechat-x: the Electron runtime is not installed \(looked at .*path\.txt\)/,
    );
    expect(none.stderr).toContain('ELECTRON_EXEC_PATH');
    const ok = spawnSync(process.execPath, [CHECK, '--root', project('installed')], {
      encoding: 'utf8',
      env: {},
    });
    expect([ok.status, ok.stdout, ok.stderr]).toEqual([0, '', '']);
  });

  it('the message names every place looked at', () => {
    expect(missingRuntimeMessage({ looked: ['A', 'B'] })).toContain('(looked at A, B)');
  });
});

describe('a start that fails', () => {
  it('is reported in plain words with its code, never a stack trace', () => {
    const err = Object.assign(new Error('EACCES: permission denied, mkdir'), { code: 'EACCES' });
    const report = startFailureReport(err, '/home/u/.config/SecureChat-X');
    expect(report.title).toBe('SecureChat-X could not start');
    expect(report.message).toBe('Permission denied: the app cannot read or write there.');
    expect(report.detail).toBe(
      'Error code: FileError. The app keeps its data in /home/u/.config/SecureChat-X.',
    );
    const odd = startFailureReport(new TypeError('x is not a function'), '/d');
    expect(odd.message).toBe('Something went wrong: x is not a function');
    expect(`${odd.message}${odd.detail}`).not.toMatch(/\bat \S+ \(/);
  });
});
