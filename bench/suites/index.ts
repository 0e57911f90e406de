import type { BenchSuite } from '../harness.js';

/** Every suite `npm run bench` runs, in order. Add a suite by importing it here. */
export const SUITES: BenchSuite[] = [];
