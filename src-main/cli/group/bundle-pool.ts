/**
 * A small pool of worker threads writing bundles (bundle-writer.ts), one job per thread at a time,
 * so `group create` uses every core for node-forge's JavaScript key derivation. Results come back
 * in whatever order the threads finish; callers keep their own order.
 */
import { availableParallelism } from 'node:os';
import { Worker } from 'node:worker_threads';
import { isPkiErrorCode } from '../../app/pki-protocol.js';
import { PkiError } from '../../core/pki/errors.js';
import { CliError } from '../cli-error.js';
import type { BundleJob, BundleResult } from './bundle-job.js';

/** One thread per core, at most this many: each holds a copy of node-forge and little else. */
const MAX_THREADS = 8;
const WORKER_URL = new URL('./bundle-writer.js', import.meta.url);

export type BundleRequest = Omit<BundleJob, 'id'>;

interface Pending {
  job: BundleJob;
  resolve(bytes: Buffer): void;
  reject(err: Error): void;
}

export class BundlePool {
  readonly #idle: Worker[] = [];
  readonly #queue: Pending[] = [];
  readonly #running = new Map<Worker, Pending>();
  readonly #workers: Worker[] = [];
  #nextId = 1;
  #failed: Error | undefined;

  constructor(size = Math.min(availableParallelism(), MAX_THREADS)) {
    for (let i = 0; i < Math.max(1, size); i++) {
      const worker = new Worker(WORKER_URL, { name: `securechat-bundle-${i}` });
      worker.on('message', (result: BundleResult) => this.#done(worker, result));
      worker.on('error', (err) => this.#fail(new CliError(`a bundle-writing thread failed: ${err.message}`)));
      worker.on('exit', (code) => {
        if (this.#workers.includes(worker))
          this.#fail(new CliError(`a bundle-writing thread stopped (${code})`));
      });
      this.#workers.push(worker);
      this.#idle.push(worker);
    }
  }

  get size(): number {
    return this.#workers.length;
  }

  write(request: BundleRequest): Promise<Buffer> {
    if (this.#failed) return Promise.reject(this.#failed);
    return new Promise<Buffer>((resolve, reject) => {
      this.#queue.push({ job: { ...request, id: this.#nextId++ }, resolve, reject });
      this.#pump();
    });
  }

  async close(): Promise<void> {
    const workers = this.#workers.splice(0);
    await Promise.all(workers.map((w) => w.terminate()));
  }

  #pump(): void {
    while (this.#idle.length > 0 && this.#queue.length > 0) {
      const worker = this.#idle.pop() as Worker;
      const next = this.#queue.shift() as Pending;
      this.#running.set(worker, next);
      worker.postMessage(next.job);
    }
  }

  #done(worker: Worker, result: BundleResult): void {
    const pending = this.#running.get(worker);
    this.#running.delete(worker);
    this.#idle.push(worker);
    if (pending) {
      if (result.ok)
        pending.resolve(Buffer.from(result.bytes.buffer, result.bytes.byteOffset, result.bytes.byteLength));
      else if (result.code !== undefined && isPkiErrorCode(result.code))
        pending.reject(new PkiError(result.code, result.message));
      else pending.reject(new Error(result.message));
    }
    this.#pump();
  }

  #fail(err: Error): void {
    this.#failed ??= err;
    for (const p of [...this.#running.values(), ...this.#queue.splice(0)]) p.reject(err);
    this.#running.clear();
  }
}
