/**
 * What the member-side benchmarks share (client.ts, durable.ts): a group with its CA-signed roster,
 * the relay CLI as a child process on its own data directory (relay-kit.ts), and in-process
 * ChatEngines, each optionally with its encrypted state store (history, epochs, roster) on a
 * temporary folder, as the CLI and the app run them.
 */
import { randomBytes } from 'node:crypto';
import { mkdtempSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { ChatEngine } from '../../src-main/client/engine.js';
import type { EngineEvent } from '../../src-main/client/engine-types.js';
import type { ChatEngineOptions } from '../../src-main/client/options.js';
import { MemberStateStore } from '../../src-main/client/state/member-store.js';
import { STATE_DB_FILE } from '../../src-main/client/state/store-key.js';
import type { Certificate } from '../../src-main/core/pki/certificate.js';
import {
  createGroupCa,
  issueCertificate,
  LocalIdentity,
  MIN_KDF_ITERATIONS,
  writeBundle,
  type Credential,
} from '../../src-main/core/pki/index.js';
import { buildRoster, signRoster, verifyRoster, type Roster } from '../../src-main/core/roster/index.js';
import { PASSWORD, startRelay, type Child } from './relay-kit.js';

export const WAIT_MS = 60_000;

export const sleep = (ms: number): Promise<void> => new Promise((r) => setTimeout(r, ms));

export interface BenchGroup {
  ca: Credential;
  identities: LocalIdentity[];
  relayCredential: Credential;
  /** A folder with relay.p12 and, beside it, roster.scx (what relay-kit's startRelay looks for). */
  dir: string;
  relayBundle: string;
  /** The roster v1 over the first `rosterSize` identities, verified as members verify it. */
  roster: Roster;
}

/** `n` member identities (m00, m01 …) under one CA; the roster lists the first `rosterSize`. */
export function makeGroup(n: number, parent: string, rosterSize = n): BenchGroup {
  const ca = createGroupCa({ name: 'Client Bench CA' });
  const relayCredential = issueCertificate(ca, { name: 'relay', role: 'relay' });
  const identities: LocalIdentity[] = [];
  const certificates: Certificate[] = [];
  for (let i = 0; i < n; i++) {
    const cred = issueCertificate(ca, { name: `m${String(i).padStart(2, '0')}`, role: 'member' });
    certificates.push(cred.certificate);
    identities.push(
      LocalIdentity.fromBundle({
        certificate: cred.certificate,
        ca: ca.certificate,
        privateKeyPem: cred.privateKeyPem,
      }),
    );
  }
  return {
    ca,
    identities,
    relayCredential,
    ...withRoster(ca, relayCredential, certificates.slice(0, rosterSize), parent),
  };
}

/** Another roster (v1, its own relay folder) over some members of the same CA. */
export function rosterFolder(
  group: BenchGroup,
  members: readonly LocalIdentity[],
  parent: string,
): { dir: string; relayBundle: string; roster: Roster } {
  return withRoster(
    group.ca,
    group.relayCredential,
    members.map((m) => m.certificate),
    parent,
  );
}

function withRoster(
  ca: Credential,
  relay: Credential,
  members: Certificate[],
  parent: string,
): { dir: string; relayBundle: string; roster: Roster } {
  const dir = mkdtempSync(join(parent, `roster-${members.length}-`));
  const relayBundle = join(dir, 'relay.p12');
  writeFileSync(
    relayBundle,
    writeBundle(relay, ca.certificate, PASSWORD, { kdfIterations: MIN_KDF_ITERATIONS }),
  );
  const bytes = signRoster(
    buildRoster({ ca: ca.certificate, name: 'Client Bench', members, relays: [relay.certificate] }),
    ca,
  );
  writeFileSync(join(dir, 'roster.scx'), bytes);
  return { dir, relayBundle, roster: verifyRoster(bytes, ca.certificate) };
}

/**
 * The relay CLI with its log on a fresh data directory under `dir` and the roster beside its
 * bundle. The relay's default limits, except the admission cap per address (50 members connecting
 * at once from this one host are not a flood) and `extra`. Heartbeats at the relay's defaults
 * (relay-kit pushes them away for raw clients): engines expect to hear from the relay every 15 s.
 */
export function startLoggingRelay(
  relayBundle: string,
  dir: string,
  extra: string[] = [],
  dataDir = mkdtempSync(join(dir, 'relay-data-')),
): Promise<Child> {
  return startRelay(relayBundle, dataDir, [
    '--max-pending-per-address',
    '128',
    '--heartbeat-interval-ms',
    '5000',
    '--heartbeat-timeout-ms',
    '15000',
    ...extra,
  ]);
}

/** A member's encrypted state store (a raw random key: the CLI's scrypt of the password is not timed). */
export class BenchStore {
  readonly path: string;
  private readonly key = randomBytes(32);

  constructor(
    readonly identity: LocalIdentity,
    parent: string,
  ) {
    this.path = join(mkdtempSync(join(parent, `state-${identity.name}-`)), STATE_DB_FILE);
  }

  open(): MemberStateStore {
    return MemberStateStore.open(this.path, this.key, {
      groupId: this.identity.groupId,
      member: this.identity.name,
    });
  }
}

/** One in-process member and a way to wait on its events. */
export class Member {
  readonly engine: ChatEngine;
  private readonly waiters = new Set<() => void>();
  onEvent: ((e: EngineEvent) => void) | undefined;

  constructor(
    readonly identity: LocalIdentity,
    port: number,
    options: Partial<ChatEngineOptions> & { store?: MemberStateStore } = {},
  ) {
    const { store, ...rest } = options;
    this.engine = new ChatEngine({
      identity,
      relay: { host: '127.0.0.1', port },
      keyEstablishmentTimeoutMs: 10_000,
      signPipelineDepth: 32,
      // As `chat` runs a member: prekeys too, so key set-up is sealed with HPKE (after the first
      // round, which may go before the others' prekeys arrive).
      ...(store ? { epochStore: store, history: store.history, rosterStore: store, prekeyStore: store } : {}),
      ...rest,
    });
    this.engine.on((e) => {
      this.onEvent?.(e);
      for (const w of this.waiters) w();
    });
  }

  until(predicate: () => boolean, what: string, timeoutMs = WAIT_MS): Promise<void> {
    return new Promise((resolve, reject) => {
      const check = () => {
        if (!predicate()) return;
        clearTimeout(timer);
        this.waiters.delete(check);
        resolve();
      };
      const timer = setTimeout(() => {
        this.waiters.delete(check);
        reject(new Error(`${this.identity.name}: no ${what} within ${timeoutMs} ms`));
      }, timeoutMs);
      this.waiters.add(check);
      check();
    });
  }

  /** Chatting under a key of at least epoch `min`. */
  chattingAt(min = 1): boolean {
    return this.engine.state === 'Chatting' && (this.engine.key?.epoch ?? 0) >= min;
  }
}

/** A member on its state store, with the roster; `close()` stops it and closes the store. */
export interface Running {
  member: Member;
  store: MemberStateStore;
  close(): Promise<void>;
}

/** Opens `store` and runs a member on it (started unless `start` is false). */
export function runMember(
  identity: LocalIdentity,
  port: number,
  roster: Roster,
  store: BenchStore,
  start = true,
): Running {
  const opened = store.open();
  const member = new Member(identity, port, { store: opened, roster });
  if (start) member.engine.start();
  return {
    member,
    store: opened,
    close: async () => {
      await member.engine.stop();
      opened.close();
    },
  };
}
