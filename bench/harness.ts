/** Shared shapes for `npm run bench`: every suite returns named numbers; run.ts prints and saves them. */
export interface BenchResult {
  /** Dotted metric name, stable across runs (e.g. `relay.msgs_per_s`). */
  name: string;
  value: number;
  unit: string;
}

export interface BenchSuite {
  name: string;
  /** A few words printed above the suite's rows. */
  description: string;
  run(): Promise<BenchResult[]>;
}

/** Percentile of an unsorted sample (nearest-rank). */
export function percentile(samples: readonly number[], p: number): number {
  if (samples.length === 0) return Number.NaN;
  const sorted = [...samples].sort((a, b) => a - b);
  const rank = Math.min(sorted.length - 1, Math.max(0, Math.ceil((p / 100) * sorted.length) - 1));
  return sorted[rank] as number;
}

/** Runs `fn` repeatedly for about `ms` milliseconds (after a short warm-up); returns operations per second. */
export async function opsPerSecond(fn: () => unknown, ms = 1000): Promise<number> {
  const warmUntil = performance.now() + Math.min(200, ms / 5);
  while (performance.now() < warmUntil) await fn();
  let ops = 0;
  const start = performance.now();
  let now = start;
  while (now - start < ms) {
    await fn();
    ops++;
    now = performance.now();
  }
  return (ops * 1000) / (now - start);
}
