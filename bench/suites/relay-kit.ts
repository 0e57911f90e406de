/**
 * What the relay benchmarks share (relay.ts, relay-durable.ts): the relay and Redis as child
 * processes, bench identities and TLS links. The protocol clients and drivers: relay-clients.ts.
 */
import { spawn, spawnSync, type ChildProcess } from 'node:child_process';
import { createPrivateKey, sign as nodeSign, type KeyObject } from 'node:crypto';
import { once } from 'node:events';
import { existsSync, readFileSync } from 'node:fs';
import { dirname, join } from 'node:path';
import { connect, createServer, type Socket } from 'node:net';
import { connect as tlsConnect, type SecureContext } from 'node:tls';
import { groupSecureContext } from '../../src-main/core/link/tls.js';
import { fileURLToPath } from 'node:url';
import forge from 'node-forge';
import { fingerprintOf } from '../../src-main/core/pki/fingerprint.js';
import { Certificate, type Credential } from '../../src-main/core/pki/index.js';

export const CLI = fileURLToPath(new URL('../../src-main/cli/main.js', import.meta.url));
export const TLS_IDLE_SERVER = fileURLToPath(new URL('../tls-idle-server.js', import.meta.url));
export const PASSWORD = 'relay bench password';
export const PAYLOAD_BYTES = 1024;
export const RECEIVERS = 3;
/** Messages in flight (sent, not yet delivered to every receiver): ~4 MB. */
export const WINDOW = 4096;
/** Saturation time per server, split into alternating rounds. */
export const SATURATION_MS = 6000;
export const ROUNDS = 3;
export const PACED_MS = 3000;
export const IDLE_CONNECTIONS = 1000;

export const sleep = (ms: number): Promise<void> => new Promise((r) => setTimeout(r, ms));

// ---- processes ---------------------------------------------------------------------------------

export interface Child {
  proc: ChildProcess;
  port: number;
  cpu(): number;
  rssMiB(): number;
  stop(): Promise<void>;
}

export function rssMiB(pid: number | undefined): number {
  const status = readFileSync(`/proc/${pid}/status`, 'utf8');
  return Number(/VmRSS:\s+(\d+)\s+kB/.exec(status)?.[1]) / 1024;
}

/** CPU seconds (user + system) a process has used, from /proc. */
export function cpuSeconds(pid: number | undefined): number {
  const fields = readFileSync(`/proc/${pid}/stat`, 'utf8').split(') ')[1]?.split(' ') ?? [];
  return (Number(fields[11]) + Number(fields[12])) / 100;
}

export function ownCpuSeconds(): number {
  const u = process.cpuUsage();
  return (u.user + u.system) / 1e6;
}

export function stopper(proc: ChildProcess): () => Promise<void> {
  return async () => {
    if (proc.exitCode !== null || proc.signalCode !== null) return;
    const exited = once(proc, 'exit');
    proc.kill('SIGTERM');
    const timer = setTimeout(() => proc.kill('SIGKILL'), 10_000);
    await exited;
    clearTimeout(timer);
  };
}

/**
 * The relay CLI on its own data directory (its log: never the user's default one, and two relays
 * of one run never share it). Heartbeats are pushed out of the way (10 min / 1 h): the bench clients count
 * fixed-size frames and never send one, and what is measured is forwarding, not liveness.
 */
export function startRelay(bundle: string, dataDir: string, args: string[]): Promise<Child> {
  return startListener(CLI, [
    'relay',
    '--bundle',
    bundle,
    '--data-dir',
    dataDir,
    '--port',
    '0',
    '--log-level',
    'warn',
    '--heartbeat-interval-ms',
    '600000',
    '--heartbeat-timeout-ms',
    '3600000',
    // The relay admits only the roster's members: the one written beside the bundle, if any.
    ...(existsSync(join(dirname(bundle), 'roster.scx'))
      ? ['--roster', join(dirname(bundle), 'roster.scx')]
      : []),
    ...args,
  ]);
}

/** A Node child that prints `listening on HOST:PORT` (the relay CLI, the bare TLS server). */
export async function startListener(script: string, args: string[]): Promise<Child> {
  // RELAY_BENCH_PROFILE=DIR writes a V8 CPU profile of each relay process into DIR.
  const profile = process.env.RELAY_BENCH_PROFILE;
  const nodeArgs = profile ? ['--cpu-prof', `--cpu-prof-dir=${profile}`] : [];
  const proc = spawn(process.execPath, [...nodeArgs, script, ...args], {
    env: { ...process.env, SECURECHAT_PASSWORD: PASSWORD },
    stdio: ['ignore', 'pipe', 'pipe'],
  });
  let out = '';
  let err = '';
  proc.stderr?.setEncoding('utf8').on('data', (d: string) => (err = (err + d).slice(-4000)));
  const port = await new Promise<number>((resolve, reject) => {
    const timer = setTimeout(() => reject(new Error(`relay did not start: ${err}`)), 30_000);
    proc.stdout?.setEncoding('utf8').on('data', (d: string) => {
      out += d;
      const m = /^listening on \S+:(\d+)\n/.exec(out);
      if (m) {
        clearTimeout(timer);
        resolve(Number(m[1]));
      }
    });
    proc.once('exit', (code) => {
      clearTimeout(timer);
      reject(new Error(`relay exited (${code}): ${err}`));
    });
  });
  return { proc, port, rssMiB: () => rssMiB(proc.pid), cpu: () => cpuSeconds(proc.pid), stop: stopper(proc) };
}

export async function freePort(): Promise<number> {
  const server = createServer();
  server.listen(0, '127.0.0.1');
  await once(server, 'listening');
  const port = (server.address() as { port: number }).port;
  server.close();
  await once(server, 'close');
  return port;
}

export function hasRedis(): boolean {
  return spawnSync('redis-server', ['--version'], { stdio: 'ignore' }).status === 0;
}

export async function startRedis(): Promise<Child> {
  const port = await freePort();
  const proc = spawn(
    'redis-server',
    [
      '--port',
      String(port),
      '--bind',
      '127.0.0.1',
      '--save',
      '',
      '--appendonly',
      'no',
      '--protected-mode',
      'no',
      '--daemonize',
      'no',
      '--client-output-buffer-limit',
      'pubsub 0 0 0',
    ],
    { stdio: 'ignore' },
  );
  const deadline = Date.now() + 10_000;
  for (;;) {
    try {
      const s = await tcp(port);
      s.write('*1\r\n$4\r\nPING\r\n');
      const [reply] = (await once(s, 'data')) as [Buffer];
      s.destroy();
      if (reply.toString().startsWith('+PONG')) break;
    } catch {
      // not up yet
    }
    if (Date.now() > deadline) throw new Error('redis-server did not start');
    await sleep(50);
  }
  return { proc, port, rssMiB: () => rssMiB(proc.pid), cpu: () => cpuSeconds(proc.pid), stop: stopper(proc) };
}

export async function tcp(port: number): Promise<Socket> {
  const s = connect({ host: '127.0.0.1', port });
  s.setNoDelay(true);
  await once(s, 'connect');
  return s;
}

// ---- identities --------------------------------------------------------------------------------

export interface BenchMember {
  name: string;
  der: Buffer;
  fingerprint: Buffer;
  key: KeyObject;
  /** The member's side of the TLS link (its certificate and key, the group CA). */
  link: () => SecureContext;
}

export function lazyContext(keyPem: string, der: Buffer, caPem: string): () => SecureContext {
  let context: SecureContext | undefined;
  return () => (context ??= groupSecureContext({ keyPem, certPem: Certificate.fromDer(der).pem, caPem }));
}

export function memberOf(cred: Credential, ca: Credential): BenchMember {
  return {
    name: cred.certificate.name,
    der: cred.certificate.der,
    fingerprint: cred.certificate.fingerprint,
    key: createPrivateKey(cred.privateKeyPem),
    link: lazyContext(cred.privateKeyPem, cred.certificate.der, ca.certificate.pem),
  };
}

/** A TLS link as `m`; the relay's certificate is checked by OpenSSL against the group CA only. */
export async function tlsLink(port: number, m: BenchMember): Promise<Socket> {
  const s = tlsConnect({
    host: '127.0.0.1',
    port,
    secureContext: m.link(),
    checkServerIdentity: () => undefined,
  });
  s.setNoDelay(true);
  await once(s, 'secureConnect');
  return s;
}

/**
 * Many member certificates sharing one key pair, signed with Node's RSA (forge only builds the
 * ASN.1): 1,000 identities in a few seconds instead of generating 1,000 RSA keys.
 */
export function issueMany(ca: Credential, names: string[], holder: Credential): BenchMember[] {
  const caCert = forge.pki.certificateFromPem(ca.certificate.pem);
  const caKey = createPrivateKey(ca.privateKeyPem);
  const publicKey = forge.pki.certificateFromPem(holder.certificate.pem).publicKey;
  const key = createPrivateKey(holder.privateKeyPem);
  const authorityKeyId = caCert.generateSubjectKeyIdentifier().getBytes();
  return names.map((name, i) => {
    const cert = forge.pki.createCertificate();
    cert.publicKey = publicKey;
    cert.serialNumber = (0x100000 + i).toString(16);
    cert.validity.notBefore = new Date(Date.now() - 300_000);
    cert.validity.notAfter = new Date(Date.now() + 86_400_000);
    cert.setSubject([{ name: 'commonName', value: name }]);
    cert.setIssuer(caCert.subject.attributes);
    cert.setExtensions([
      { name: 'basicConstraints', cA: false, critical: true },
      { name: 'keyUsage', digitalSignature: true, keyEncipherment: true, critical: true },
      { name: 'extKeyUsage', clientAuth: true },
      { name: 'authorityKeyIdentifier', keyIdentifier: authorityKeyId },
    ]);
    let tbs = '';
    const md = { algorithm: 'sha256', update: (bytes: string) => void (tbs = bytes) };
    const signer = { sign: () => nodeSign('sha256', Buffer.from(tbs, 'binary'), caKey).toString('binary') };
    cert.sign(signer as unknown as forge.pki.rsa.PrivateKey, md as unknown as forge.md.MessageDigest);
    const der = Buffer.from(forge.asn1.toDer(forge.pki.certificateToAsn1(cert)).getBytes(), 'binary');
    return {
      name,
      der,
      fingerprint: fingerprintOf(der),
      key,
      link: lazyContext(holder.privateKeyPem, der, ca.certificate.pem),
    };
  });
}
