/**
 * Packaging, offline: electron-builder `--linux dir` with a placeholder Electron distribution
 * (the real binary cannot be downloaded here). The placeholder carries an Electron fuse wire
 * (sentinel + version + 8 fuses at Electron's defaults) so the configured fuses are really
 * flipped and can be checked. Then app.asar is read with @electron/asar: the built app and its
 * runtime dependencies are in, sources, tests, benchmarks and docs are not; the PKI worker entry
 * ships with what it imports; the preload holds no zod; the SQLite driver's .node file is unpacked
 * beside the archive.
 *
 * `npmRebuild` is off here: rebuilding native modules for Electron's ABI needs Electron's headers
 * (a download), and @electron/rebuild rebuilds in place in this project's node_modules, which would
 * leave a .node file that plain Node (the CLI, every other test) cannot load. So the packed
 * better_sqlite3.node is the Node build: that it loads inside Electron is not checked here.
 */
import { execFileSync } from 'node:child_process';
import { chmodSync, existsSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join, resolve } from 'node:path';
import asar from '@electron/asar';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';

const ROOT = resolve(import.meta.dirname, '../..');
const SENTINEL = 'dL7pKGdnNz796PbbjQWNKmHXBZaB9tsX';
// Electron's defaults, in fuse order: RunAsNode, EnableCookieEncryption, EnableNodeOptionsEnvironmentVariable,
// EnableNodeCliInspectArguments, EnableEmbeddedAsarIntegrityValidation, OnlyLoadAppFromAsar,
// LoadBrowserProcessSpecificV8Snapshot, GrantFileProtocolExtraPrivileges.
const DEFAULT_WIRE = '10110001';
const EXPECTED_WIRE = '01001100';

let work: string;
let entries: string[];
let asarPath: string;

beforeAll(() => {
  if (!existsSync(join(ROOT, 'out/main/index.js')) || !existsSync(join(ROOT, 'out/renderer/index.html'))) {
    execFileSync(process.execPath, [join(ROOT, 'node_modules/electron-vite/bin/electron-vite.js'), 'build'], {
      cwd: ROOT,
      stdio: 'pipe',
    });
  }
  work = mkdtempSync(join(tmpdir(), 'scx-pack-'));
  const electronDist = join(work, 'electron-dist');
  execFileSync('mkdir', ['-p', electronDist]);
  const placeholder = join(electronDist, 'electron');
  writeFileSync(
    placeholder,
    Buffer.concat([
      Buffer.from('placeholder, not Electron\n'),
      Buffer.from(SENTINEL),
      Buffer.from([1, DEFAULT_WIRE.length]),
      Buffer.from(DEFAULT_WIRE),
      Buffer.from('\n'),
    ]),
  );
  chmodSync(placeholder, 0o755);
  execFileSync(
    process.execPath,
    [
      join(ROOT, 'node_modules/electron-builder/cli.js'),
      '--linux',
      'dir',
      `-c.electronDist=${electronDist}`,
      `-c.directories.output=${join(work, 'dist')}`,
      '-c.npmRebuild=false',
      '--publish',
      'never',
    ],
    { cwd: ROOT, stdio: 'pipe', env: { ...process.env, NO_COLOR: '1', CI: '1' } },
  );
  asarPath = join(work, 'dist/linux-unpacked/resources/app.asar');
  entries = asar.listPackage(asarPath, { isPack: false });
}, 240_000);

afterAll(() => {
  if (work) rmSync(work, { recursive: true, force: true });
});

describe('electron-builder --linux dir (offline, placeholder Electron)', () => {
  it('packs the built main, preload and renderer and package.json', () => {
    for (const file of [
      '/package.json',
      '/out/main/index.js',
      '/out/main/relay-child.js',
      '/out/main/pki-worker.js',
      '/out/preload/index.cjs',
      '/out/renderer/index.html',
    ]) {
      expect(entries, file).toContain(file);
    }
    expect(entries.some((e) => /^\/out\/renderer\/assets\/index-[\w-]+\.js$/.test(e))).toBe(true);
    expect(entries.some((e) => /^\/out\/renderer\/assets\/index-[\w-]+\.css$/.test(e))).toBe(true);
    const pkg = JSON.parse(asar.extractFile(asarPath, 'package.json').toString('utf8')) as { main: string };
    expect(pkg.main).toBe('out/main/index.js');
  });

  it('packs the runtime dependencies and no development tools', () => {
    for (const dep of ['node-forge', 'zod', 'pino', 'electron-store', 'better-sqlite3-multiple-ciphers']) {
      expect(entries, dep).toContain(`/node_modules/${dep}/package.json`);
    }
    for (const dev of [
      'electron',
      'vitest',
      '@playwright',
      'svelte',
      'vite',
      'typescript',
      'electron-builder',
    ]) {
      expect(
        entries.some((e) => e === `/node_modules/${dev}` || e.startsWith(`/node_modules/${dev}/`)),
        dev,
      ).toBe(false);
    }
  });

  it('keeps the native SQLite module outside the archive (asarUnpack), without its C sources', () => {
    const module = 'node_modules/better-sqlite3-multiple-ciphers';
    const unpacked = join(work, 'dist/linux-unpacked/resources/app.asar.unpacked');
    // A .node file cannot be loaded from inside app.asar; Electron redirects its require here.
    expect(existsSync(join(unpacked, module, 'build/Release/better_sqlite3.node'))).toBe(true);
    expect(entries).toContain(`/${module}/lib/index.js`);
    expect(entries).toContain('/node_modules/bindings/package.json');
    const nodeFiles = entries.filter((e) => e.endsWith('.node'));
    expect(nodeFiles).toEqual([`/${module}/build/Release/better_sqlite3.node`]);
    for (const e of nodeFiles) expect(existsSync(join(unpacked, e))).toBe(true);
    expect(entries.some((e) => /\.(c|cpp|hpp|a)$/.test(e) || e.includes(`${module}/deps/`))).toBe(false);
  });

  it('holds nothing of the sources, tests, benchmarks, docs or the Node build', () => {
    const outsideModules = entries.filter((e) => !e.startsWith('/node_modules'));
    for (const e of outsideModules) {
      expect(e).not.toMatch(
        /^\/(src-main|src-shared|src-renderer|test|bench|docs|resources|out\/node)(\/|$)/,
      );
      expect(e).not.toMatch(/\.(ts|svelte|map|md)$/);
    }
    expect(outsideModules.every((e) => e === '/package.json' || e.startsWith('/out'))).toBe(true);
  });

  it('the sandboxed preload requires nothing but electron (everything else is bundled)', () => {
    const preload = asar.extractFile(asarPath, 'out/preload/index.cjs').toString('utf8');
    const requires = [...preload.matchAll(/require\(["']([^"']+)["']\)/g)].map((m) => m[1]);
    expect(new Set(requires)).toEqual(new Set(['electron']));
  });

  it('the preload bundles the zod-free channel list only: no zod, a few KB', () => {
    const preload = asar.extractFile(asarPath, 'out/preload/index.cjs');
    const text = preload.toString('utf8');
    expect(text).toContain('scx:identity:import');
    expect(text).not.toMatch(/zod/i);
    // With zod inlined it was ~173 KB.
    expect(preload.length).toBeLessThan(16 * 1024);
  });

  it('the PKI worker entry imports its code from the built main output (chunks), not from sources', () => {
    const worker = asar.extractFile(asarPath, 'out/main/pki-worker.js').toString('utf8');
    const imports = [...worker.matchAll(/(?:from|import)\s*\(?\s*["']([^"']+)["']/g)].map((m) => m[1] ?? '');
    for (const spec of imports) {
      if (spec.startsWith('.')) {
        const target = join('out/main', spec).replaceAll('\\', '/');
        expect(entries, spec).toContain(`/${target}`);
      } else {
        expect(spec, 'a runtime dependency or a Node built-in').toMatch(/^(node:|node-forge|zod|pino)/);
      }
    }
    expect(worker).not.toMatch(/from\s*["']electron["']/);
  });

  it('sets every Electron fuse as configured', () => {
    const binary = readFileSync(join(work, 'dist/linux-unpacked/securechat-x'));
    const at = binary.indexOf(SENTINEL) + SENTINEL.length;
    expect(binary[at]).toBe(1);
    expect(binary.subarray(at + 2, at + 2 + 8).toString('latin1')).toBe(EXPECTED_WIRE);
  });
});
