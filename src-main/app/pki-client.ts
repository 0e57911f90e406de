/**
 * The app service's PKI port, backed by a node:worker_threads worker running pki-worker.js. Works
 * the same under plain Node (out/node) and in Electron's main process (out/main): the caller
 * passes the worker file's path, resolved next to its own module like the relay's child entry.
 *
 * One worker, started on first use and ended after a while without work; while idle it does not
 * keep the process alive. Requests are answered in order. PkiError crosses the boundary as
 * {code, message} and is rebuilt here, so toAppError maps it as before. The bundle bytes sent are
 * a transferred copy (the worker zeroes it); the private key comes back as the PEM string that
 * LocalIdentity needs and is never logged.
 */
import { Worker } from 'node:worker_threads';
import { z } from 'zod';
import type { LoadedBundle } from '../core/pki/bundle.js';
import { Certificate } from '../core/pki/certificate.js';
import { PkiError } from '../core/pki/errors.js';
import { RosterError } from '../core/roster/errors.js';
import type {
  NewGroupFiles,
  NewGroupOptions,
  PkiPort,
  RosterChangeOptions,
  RosterChangeResult,
} from './ports.js';
import {
  isPkiErrorCode,
  isRosterErrorCode,
  transferableCopy,
  type ChangeRosterRequest,
  type CreateGroupRequest,
  type ReadBundleRequest,
} from './pki-protocol.js';

/** The worker's file name next to the module that starts it (out/node/src-main/app, out/main). */
export const PKI_WORKER_FILE = 'pki-worker.js';

/** The worker itself failed (crashed, could not start, was closed): not a PKI verdict. */
export class PkiWorkerError extends Error {
  override readonly name = 'PkiWorkerError';
}

const Bytes = z.instanceof(Uint8Array);
const ErrorSchema = z.discriminatedUnion('kind', [
  z.object({ kind: z.literal('pki'), code: z.string(), message: z.string().max(4096) }),
  z.object({ kind: z.literal('roster'), code: z.string(), message: z.string().max(4096) }),
  z.object({ kind: z.literal('other'), message: z.string().max(4096) }),
]);
const ResponseSchema = z.union([
  z.object({ id: z.number().int(), ok: z.literal(true), value: z.unknown() }),
  z.object({ id: z.number().int(), ok: z.literal(false), error: ErrorSchema }),
]);
const BundleDataSchema = z.object({
  certificateDer: Bytes,
  caDer: Bytes.nullable(),
  privateKeyPem: z.string().max(64 * 1024),
});
const GroupDataSchema = z.object({
  caFingerprintHex: z.string().regex(/^[0-9a-f]{64}$/),
  files: z.array(z.object({ name: z.string().max(128), bytes: Bytes })).max(200),
});

const RosterChangeDataSchema = z.object({
  roster: Bytes,
  version: z.number().int().min(1),
  bundle: Bytes.nullable(),
  fingerprintHex: z
    .string()
    .regex(/^[0-9a-f]{64}$/)
    .nullable(),
});

interface Pending {
  resolve(value: unknown): void;
  reject(err: Error): void;
}

export interface PkiWorkerOptions {
  /** Ends the worker after this long without work (default 30 s). */
  idleMs?: number;
}

type Request =
  Omit<ReadBundleRequest, 'id'> | Omit<CreateGroupRequest, 'id'> | Omit<ChangeRosterRequest, 'id'>;

export class PkiWorkerClient implements PkiPort {
  readonly #entryPath: string;
  readonly #idleMs: number;
  readonly #pending = new Map<number, Pending>();
  #worker: Worker | undefined;
  #nextId = 1;
  #idleTimer: NodeJS.Timeout | undefined;

  constructor(entryPath: string, options: PkiWorkerOptions = {}) {
    this.#entryPath = entryPath;
    this.#idleMs = options.idleMs ?? 30_000;
  }

  /** The running worker's thread id (for tests); undefined while none runs. */
  get threadId(): number | undefined {
    return this.#worker?.threadId;
  }

  async readBundle(data: Uint8Array, password: string): Promise<LoadedBundle> {
    const bytes = transferableCopy(data);
    const raw = await this.#call({ op: 'readBundle', bytes, password }, [bytes.buffer as ArrayBuffer]);
    const value = BundleDataSchema.parse(raw);
    const certificate = Certificate.fromDer(value.certificateDer);
    const ca = value.caDer ? Certificate.fromDer(value.caDer) : certificate;
    return { certificate, ca, privateKeyPem: value.privateKeyPem };
  }

  async readCertificate(data: Uint8Array, password: string): Promise<Certificate> {
    const bytes = transferableCopy(data);
    const raw = await this.#call({ op: 'readBundle', bytes, password, withKey: false }, [
      bytes.buffer as ArrayBuffer,
    ]);
    return Certificate.fromDer(BundleDataSchema.parse(raw).certificateDer);
  }

  async createGroup(options: NewGroupOptions): Promise<NewGroupFiles> {
    const raw = await this.#call({
      op: 'createGroup',
      groupName: options.groupName,
      members: [...options.members],
      relayName: options.relayName,
      password: options.password,
      kdfIterations: options.kdfIterations,
    });
    return GroupDataSchema.parse(raw);
  }

  async changeRoster(options: RosterChangeOptions): Promise<RosterChangeResult> {
    const caBytes = transferableCopy(options.caBundle);
    const raw = await this.#call(
      {
        op: 'changeRoster',
        caBytes,
        caPassword: options.caPassword,
        groupId: options.groupId,
        roster: transferableCopy(options.roster),
        change: options.change,
      },
      [caBytes.buffer as ArrayBuffer],
    );
    const value = RosterChangeDataSchema.parse(raw);
    return {
      roster: Buffer.from(value.roster),
      version: value.version,
      ...(value.bundle && value.fingerprintHex
        ? { added: { bundle: value.bundle, fingerprintHex: value.fingerprintHex } }
        : {}),
    };
  }

  async close(): Promise<void> {
    this.#clearIdle();
    const worker = this.#worker;
    this.#worker = undefined;
    this.#rejectAll(new PkiWorkerError('the PKI worker was closed'));
    if (worker) await worker.terminate();
  }

  #start(): Worker {
    const worker = new Worker(this.#entryPath, { name: 'securechat-pki' });
    worker.on('message', (raw: unknown) => this.#onMessage(worker, raw));
    worker.on('messageerror', () =>
      this.#onFailure(worker, new PkiWorkerError('unreadable PKI worker answer')),
    );
    worker.on('error', (err) =>
      this.#onFailure(worker, new PkiWorkerError(`the PKI worker failed: ${err.message}`)),
    );
    worker.on('exit', (code) =>
      this.#onFailure(worker, new PkiWorkerError(`the PKI worker stopped (exit code ${code})`)),
    );
    worker.unref();
    return worker;
  }

  #call(request: Request, transfer: ArrayBuffer[] = []): Promise<unknown> {
    this.#clearIdle();
    this.#worker ??= this.#start();
    const worker = this.#worker;
    const id = this.#nextId++;
    return new Promise<unknown>((resolve, reject) => {
      this.#pending.set(id, { resolve, reject });
      worker.ref();
      try {
        worker.postMessage({ ...request, id }, transfer);
      } catch (err) {
        this.#settled(id);
        reject(new PkiWorkerError(`could not reach the PKI worker: ${(err as Error).message}`));
      }
    });
  }

  #onMessage(worker: Worker, raw: unknown): void {
    if (worker !== this.#worker) return;
    const parsed = ResponseSchema.safeParse(raw);
    if (!parsed.success) {
      this.#onFailure(worker, new PkiWorkerError('unexpected PKI worker answer'));
      return;
    }
    const response = parsed.data;
    const pending = this.#pending.get(response.id);
    if (!pending) return;
    this.#settled(response.id);
    if (response.ok) {
      pending.resolve(response.value);
    } else if (response.error.kind === 'pki' && isPkiErrorCode(response.error.code)) {
      pending.reject(new PkiError(response.error.code, response.error.message));
    } else if (response.error.kind === 'roster' && isRosterErrorCode(response.error.code)) {
      pending.reject(new RosterError(response.error.code, response.error.message));
    } else {
      pending.reject(new Error(response.error.message));
    }
  }

  /** The worker crashed, exited or answered nonsense: fail what it held; the next call starts a new one. */
  #onFailure(worker: Worker, err: Error): void {
    if (worker !== this.#worker) return;
    this.#worker = undefined;
    this.#clearIdle();
    this.#rejectAll(err);
    void worker.terminate();
  }

  #rejectAll(err: Error): void {
    const pending = [...this.#pending.values()];
    this.#pending.clear();
    for (const p of pending) p.reject(err);
  }

  #settled(id: number): void {
    this.#pending.delete(id);
    if (this.#pending.size > 0 || !this.#worker) return;
    this.#worker.unref();
    this.#clearIdle();
    const worker = this.#worker;
    this.#idleTimer = setTimeout(() => {
      if (this.#worker === worker && this.#pending.size === 0) {
        this.#worker = undefined;
        void worker.terminate();
      }
    }, this.#idleMs);
    this.#idleTimer.unref();
  }

  #clearIdle(): void {
    if (this.#idleTimer) clearTimeout(this.#idleTimer);
    this.#idleTimer = undefined;
  }
}
