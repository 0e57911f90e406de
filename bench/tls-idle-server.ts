/**
 * The baseline for the relay's per-connection memory: a bare Node TLS server with the relay's
 * certificate and the same link policy (TLS 1.3, mutual authentication against the group CA) that
 * accepts connections and discards what they send. Run as a child of the relay bench:
 * `node tls-idle-server.js CREDENTIALS.json`; prints `listening on HOST:PORT`.
 */
import { readFileSync } from 'node:fs';
import type { AddressInfo } from 'node:net';
import { createServer } from 'node:tls';
import { TLS_CIPHER_SUITES, TLS_VERSION, type TlsCredentials } from '../src-main/core/link/tls.js';

const file = process.argv[2];
if (!file) throw new Error('usage: tls-idle-server CREDENTIALS.json');
const credentials = JSON.parse(readFileSync(file, 'utf8')) as TlsCredentials;
const server = createServer({
  key: credentials.keyPem,
  cert: credentials.certPem,
  ca: credentials.caPem,
  requestCert: true,
  rejectUnauthorized: true,
  minVersion: TLS_VERSION,
  maxVersion: TLS_VERSION,
  ciphers: TLS_CIPHER_SUITES,
});
server.on('secureConnection', (socket) => {
  socket.on('data', () => undefined);
  socket.on('error', () => undefined);
});
server.listen(0, '127.0.0.1', () => {
  const a = server.address() as AddressInfo;
  process.stdout.write(`listening on ${a.address}:${a.port}\n`);
});
process.on('SIGTERM', () => process.exit(0));
