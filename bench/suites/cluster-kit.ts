/**
 * What the cluster benchmarks (cluster.ts) share: one group with a relay bundle per node and a
 * roster listing every node, the relay CLI as cluster nodes (`relay --cluster`, each on another
 * server of a 3-server NATS cluster, R3), and CPU readings of the nodes and the NATS servers.
 */
import { mkdtempSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import type { NatsCluster } from '../../test/helpers/nats-servers.js';
import {
  createGroupCa,
  issueCertificate,
  LocalIdentity,
  MIN_KDF_ITERATIONS,
  writeBundle,
  type Credential,
} from '../../src-main/core/pki/index.js';
import { buildRoster, signRoster, verifyRoster, type Roster } from '../../src-main/core/roster/index.js';
import { cpuSeconds, memberOf, PASSWORD, startRelay, type BenchMember, type Child } from './relay-kit.js';

export const NODES = 3;

export interface ClusterGroup {
  /** Raw protocol members (fan-out, latency): sender, m1, m2, m3. */
  raw: BenchMember[];
  /** Engine members (failover): alice, bob. */
  identities: LocalIdentity[];
  roster: Roster;
  /** relay1.p12 … relay3.p12, each node's own bundle, with roster.scx beside them. */
  bundles: string[];
}

/** One CA; members sender, m1-m3 (raw) and alice, bob (engines); relays relay1-relay3, all in the roster. */
export function makeClusterGroup(parent: string): ClusterGroup {
  const dir = mkdtempSync(join(parent, 'cluster-group-'));
  const ca = createGroupCa({ name: 'Cluster Bench CA' });
  const issue = (name: string): Credential => issueCertificate(ca, { name, role: 'member' });
  const rawCreds = ['sender', 'm1', 'm2', 'm3'].map(issue);
  const engineCreds = ['alice', 'bob'].map(issue);
  const relays = Array.from({ length: NODES }, (_, i) =>
    issueCertificate(ca, { name: `relay${i + 1}`, role: 'relay' }),
  );
  const bundles = relays.map((r, i) => {
    const path = join(dir, `relay${i + 1}.p12`);
    writeFileSync(path, writeBundle(r, ca.certificate, PASSWORD, { kdfIterations: MIN_KDF_ITERATIONS }));
    return path;
  });
  const bytes = signRoster(
    buildRoster({
      ca: ca.certificate,
      name: 'Cluster Bench',
      members: [...rawCreds, ...engineCreds].map((c) => c.certificate),
      relays: relays.map((r) => r.certificate),
    }),
    ca,
  );
  // relay-kit's startRelay passes --roster when roster.scx lies beside the bundle.
  writeFileSync(join(dir, 'roster.scx'), bytes);
  return {
    raw: rawCreds.map((c) => memberOf(c, ca)),
    identities: engineCreds.map((c) =>
      LocalIdentity.fromBundle({
        certificate: c.certificate,
        ca: ca.certificate,
        privateKeyPem: c.privateKeyPem,
      }),
    ),
    roster: verifyRoster(bytes, ca.certificate),
    bundles,
  };
}

/**
 * Node `i` (0-based) on NATS server `i`, R3, on its own data directory (a cluster node keeps no log
 * there). The presence TTL and everything else are the CLI's defaults unless `extra` says otherwise.
 */
export function startNode(
  group: ClusterGroup,
  nats: NatsCluster,
  i: number,
  parent: string,
  extra: string[],
): Promise<Child> {
  const url = nats.servers[i]?.url;
  const bundle = group.bundles[i];
  if (url === undefined || bundle === undefined) throw new RangeError(`no node ${i}`);
  return startRelay(bundle, mkdtempSync(join(parent, `node${i + 1}-data-`)), [
    '--cluster',
    url,
    '--replicas',
    String(NODES),
    ...extra,
  ]);
}

/** CPU seconds the NATS servers have used (those running now). */
export function natsCpuSeconds(nats: NatsCluster): number {
  let total = 0;
  for (const s of nats.servers) {
    const pid = s.pid();
    if (pid !== undefined) total += cpuSeconds(pid);
  }
  return total;
}
