/**
 * Worker-thread entry for group create: writes one PKCS#12 bundle per request. node-forge derives
 * the bundle keys in JavaScript (~1 s per bundle at the default cost), so this is where the time
 * of a large group goes; several of these threads use several cores. Gets a holder's key and
 * password, never the CA key. Answers one message per request; never logs.
 */
import { parentPort } from 'node:worker_threads';
import { writeBundle } from '../../core/pki/bundle.js';
import { Certificate } from '../../core/pki/certificate.js';
import { PkiError } from '../../core/pki/errors.js';
import type { BundleJob, BundleResult } from './bundle-job.js';

function write(job: BundleJob): { result: BundleResult; transfer: ArrayBuffer[] } {
  try {
    const certificate = Certificate.fromPem(job.certificatePem);
    const ca = Certificate.fromPem(job.caPem);
    const data = writeBundle({ certificate, privateKeyPem: job.privateKeyPem }, ca, job.password, {
      kdfIterations: job.kdfIterations,
    });
    const bytes = new Uint8Array(data.byteLength);
    bytes.set(data);
    return { result: { id: job.id, ok: true, bytes }, transfer: [bytes.buffer] };
  } catch (err) {
    const code = err instanceof PkiError ? err.code : undefined;
    const message = err instanceof Error ? err.message : String(err);
    return { result: { id: job.id, ok: false, ...(code ? { code } : {}), message }, transfer: [] };
  }
}

const port = parentPort;
if (!port) throw new Error('bundle-writer runs as a worker thread only');
port.on('message', (job: BundleJob) => {
  const { result, transfer } = write(job);
  port.postMessage(result, transfer);
});
