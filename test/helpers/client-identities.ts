/** Loaded member identities of a fresh test group, for in-process client tests. */
import { readFileSync } from 'node:fs';
import { LocalIdentity } from '../../src-main/core/pki/local-identity.js';
import { makeTestGroup, TEST_PASSWORD, type TestGroup } from './group.js';

export interface LoadedGroup {
  group: TestGroup;
  identities: Record<string, LocalIdentity>;
  /** Loads one more member into the same group. */
  add(name: string): LocalIdentity;
}

export function loadIdentity(path: string): LocalIdentity {
  return LocalIdentity.fromBundleFile(readFileSync(path), TEST_PASSWORD, 'member');
}

export function makeLoadedGroup(names: string[]): LoadedGroup {
  const group = makeTestGroup(names);
  const identities: Record<string, LocalIdentity> = {};
  for (const n of names) identities[n] = loadIdentity(group.bundles[n] as string);
  return {
    group,
    identities,
    add(name) {
      const id = loadIdentity(group.addMember(name));
      identities[name] = id;
      return id;
    },
  };
}
