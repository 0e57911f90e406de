/**
 * `npm run bench [-- --json FILE] [-- --only NAME[,NAME]]`: runs the suites, prints a table and,
 * with --json, writes {"machine": {...}, "results": [{name, value, unit}]}.
 */
import { writeFileSync } from 'node:fs';
import { arch, cpus, totalmem, platform, release } from 'node:os';
import { parseArgs } from 'node:util';
import type { BenchResult } from './harness.js';
import { SUITES } from './suites/index.js';

const { values } = parseArgs({
  options: { json: { type: 'string' }, only: { type: 'string' } },
  allowPositionals: false,
});
const only = values.only?.split(',').map((s) => s.trim());

const machine = {
  node: process.version,
  openssl: process.versions.openssl,
  platform: platform(),
  release: release(),
  arch: arch(),
  cpus: cpus().length,
  cpuModel: cpus()[0]?.model ?? 'unknown',
  memoryGiB: Math.round(totalmem() / 2 ** 30),
  date: new Date().toISOString(),
};

const results: BenchResult[] = [];
console.log(`SecureChat-X benchmarks — node ${machine.node}, ${machine.cpus} x ${machine.cpuModel}\n`);
for (const suite of SUITES) {
  if (only && !only.includes(suite.name)) continue;
  console.log(`## ${suite.name}: ${suite.description}`);
  const rows = await suite.run();
  for (const r of rows) {
    const value = Number.isInteger(r.value) ? String(r.value) : r.value.toPrecision(4);
    console.log(`  ${r.name.padEnd(44)} ${value.padStart(12)} ${r.unit}`);
  }
  console.log('');
  results.push(...rows);
}
if (values.json) {
  writeFileSync(values.json, JSON.stringify({ machine, results }, null, 2) + '\n');
  console.log(`wrote ${values.json}`);
}
