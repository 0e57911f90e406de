/** Loaded member identities of a fresh test group, for in-process client tests. */
import { readFileSync } from 'node:fs';
import { LocalIdentity } from '../../src-main/core/pki/local-identity.js';
import { makeTestGroup, TEST_PASSWORD, type TestGroup } from './group.js';
import type { RelayHostKeys } from './recording-proxy.js';

export interface LoadedGroup {
  group: TestGroup;
  identities: Record<string, LocalIdentity>;
  /** Loads one more member into the same group. */
  add(name: string): LocalIdentity;
  /** The relay's keys and every member's: what RecordingProxy needs to sit on the relay's host. */
  relayHost(): RelayHostKeys;
}

export function loadIdentity(path: string): LocalIdentity {
  return LocalIdentity.fromBundleFile(readFileSync(path), TEST_PASSWORD, 'member');
}

export function makeLoadedGroup(names: string[]): LoadedGroup {
  const group = makeTestGroup(names);
  const identities: Record<string, LocalIdentity> = {};
  for (const n of names) identities[n] = loadIdentity(group.bundles[n] as string);
  let relay: LocalIdentity | undefined;
  return {
    group,
    identities,
    relayHost() {
      relay ??= LocalIdentity.fromBundleFile(readFileSync(group.relayBundle), TEST_PASSWORD, 'relay');
      return { relay, members: identities };
    },
    add(name) {
      const id = loadIdentity(group.addMember(name));
      identities[name] = id;
      return id;
    },
  };
}
