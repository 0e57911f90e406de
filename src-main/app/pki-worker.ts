/**
 * Worker-thread entry for the app's CPU-heavy PKI work: opening a PKCS#12 bundle (node-forge
 * derives its keys in JavaScript, ~1 s at the default 200,000 PBKDF2 iterations) and creating a
 * group (RSA keys, several bundles and the CA-signed roster), and the organiser's roster changes
 * (pki-roster-change.ts). Run by pki-client.ts with
 * node:worker_threads, so the main process's event loop (IPC, the chat engine's sockets, the
 * bundled relay's supervision) keeps running meanwhile.
 *
 * Built twice: by tsc to out/node/src-main/app/pki-worker.js and by electron-vite as the main
 * entry out/main/pki-worker.js. Answers one message per request; never logs.
 */
import { parentPort } from 'node:worker_threads';
import { readBundle, writeBundle } from '../core/pki/bundle.js';
import type { Certificate } from '../core/pki/certificate.js';
import { PkiError } from '../core/pki/errors.js';
import { createGroupCa, issueCertificate } from '../core/pki/issue.js';
import { ROSTER_FILE, RosterError, buildRoster, signRoster } from '../core/roster/index.js';
import { changeRosterOp } from './pki-roster-change.js';
import {
  transferableCopy,
  type BundleData,
  type CreateGroupRequest,
  type GroupData,
  type PkiRequest,
  type PkiResponse,
  type WorkerError,
} from './pki-protocol.js';

function readBundleOp(bytes: Uint8Array, password: string, withKey: boolean): BundleData {
  try {
    const loaded = readBundle(bytes, password);
    const certificateDer = transferableCopy(loaded.certificate.der);
    const caDer = loaded.ca === loaded.certificate ? null : transferableCopy(loaded.ca.der);
    return { certificateDer, caDer, privateKeyPem: withKey ? loaded.privateKeyPem : '' };
  } finally {
    bytes.fill(0);
  }
}

function createGroupOp(request: CreateGroupRequest): GroupData {
  const { password, kdfIterations } = request;
  const ca = createGroupCa({ name: request.groupName });
  const files: GroupData['files'] = [
    { name: 'ca.pem', bytes: transferableCopy(Buffer.from(ca.certificate.pem, 'utf8')) },
    { name: 'ca.p12', bytes: transferableCopy(writeBundle(ca, ca.certificate, password, { kdfIterations })) },
  ];
  const memberCertificates: Certificate[] = [];
  for (const name of request.members) {
    const credential = issueCertificate(ca, { name, role: 'member' });
    memberCertificates.push(credential.certificate);
    files.push({
      name: `${name}.p12`,
      bytes: transferableCopy(writeBundle(credential, ca.certificate, password, { kdfIterations })),
    });
  }
  const relay = issueCertificate(ca, { name: request.relayName, role: 'relay' });
  files.push({
    name: `${request.relayName}.p12`,
    bytes: transferableCopy(writeBundle(relay, ca.certificate, password, { kdfIterations })),
  });
  // Roster v1, built and signed as `group create` does: signed here because the CA key exists in
  // this thread only; without it a group made in the app would be refused once rosters are enforced.
  const roster = signRoster(
    buildRoster({
      ca: ca.certificate,
      name: request.groupName,
      members: memberCertificates,
      relays: [relay.certificate],
    }),
    ca,
  );
  files.push({ name: ROSTER_FILE, bytes: transferableCopy(roster) });
  return { caFingerprintHex: ca.certificate.fingerprintHex, files };
}

function toWorkerError(err: unknown): WorkerError {
  if (err instanceof PkiError) return { kind: 'pki', code: err.code, message: err.message };
  if (err instanceof RosterError) return { kind: 'roster', code: err.code, message: err.message };
  return { kind: 'other', message: err instanceof Error ? err.message : String(err) };
}

function handle(request: PkiRequest): { response: PkiResponse; transfer: ArrayBuffer[] } {
  try {
    switch (request.op) {
      case 'readBundle': {
        const value = readBundleOp(request.bytes, request.password, request.withKey !== false);
        const transfer = [value.certificateDer, ...(value.caDer ? [value.caDer] : [])].map(
          (b) => b.buffer as ArrayBuffer,
        );
        return { response: { id: request.id, ok: true, value }, transfer };
      }
      case 'createGroup': {
        const value = createGroupOp(request);
        return {
          response: { id: request.id, ok: true, value },
          transfer: value.files.map((f) => f.bytes.buffer as ArrayBuffer),
        };
      }
      case 'changeRoster': {
        const value = changeRosterOp(request);
        const transfer = [value.roster, ...(value.bundle ? [value.bundle] : [])].map(
          (b) => b.buffer as ArrayBuffer,
        );
        return { response: { id: request.id, ok: true, value }, transfer };
      }
      default:
        return {
          response: {
            id: (request as { id: number }).id,
            ok: false,
            error: { kind: 'other', message: 'unknown PKI worker request' },
          },
          transfer: [],
        };
    }
  } catch (err) {
    return { response: { id: request.id, ok: false, error: toWorkerError(err) }, transfer: [] };
  }
}

const port = parentPort;
if (!port) throw new Error('pki-worker runs as a worker thread only');
port.on('message', (request: PkiRequest) => {
  const { response, transfer } = handle(request);
  port.postMessage(response, transfer);
});
