/**
 * The organiser part of the service (src-main/app/organiser.ts) on its own, over real parts: the
 * identity's encrypted store (AppMemberState in a temporary folder), the real PKI worker (out/node)
 * opening a real ca.p12, rosters signed by the test group's CA. What the end-to-end tests do not
 * reach easily: which roster a change starts from (the store's or roster.scx beside ca.p12, the
 * newer; a fork of one version refused), and "last seen" as members come and go.
 */
import { mkdtempSync, readFileSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, describe, expect, it } from 'vitest';
import { EventHub } from '../../src-main/app/event-hub.js';
import { FileChoices } from '../../src-main/app/file-choices.js';
import { HistoryReader } from '../../src-main/app/history-reader.js';
import { AppMemberState } from '../../src-main/app/member-state.js';
import { noSecretStorage } from '../../src-main/app/node-ports.js';
import { Organiser } from '../../src-main/app/organiser.js';
import { PkiWorkerClient } from '../../src-main/app/pki-client.js';
import type { SettingsStore } from '../../src-main/app/ports.js';
import { Settings } from '../../src-main/app/settings.js';
import { issueCertificate, LocalIdentity, readBundle, writeBundle } from '../../src-main/core/pki/index.js';
import { nextRoster, signRoster } from '../../src-main/core/roster/index.js';
import { presenceWords } from '../../src-renderer/src/lib/format.js';
import type { AppEvent } from '../../src-shared/ipc-contract.js';
import { makeTestGroup, TEST_KDF_ITERATIONS, TEST_PASSWORD } from '../helpers/group.js';
import { PKI_WORKER_ENTRY } from '../integration/app-harness.js';

const CA_PASSWORD = 'the organiser keeps this one';
const pki = new PkiWorkerClient(PKI_WORKER_ENTRY);
afterAll(() => pki.close());

function memorySettings(): Settings {
  const data = new Map<string, unknown>();
  const store: SettingsStore = {
    get: (key) => structuredClone(data.get(key)),
    set: (key, value) => void data.set(key, structuredClone(value)),
    delete: (key) => void data.delete(key),
  };
  return new Settings(store);
}

async function setup() {
  const group = makeTestGroup(['alice', 'bob', 'carol']);
  const caPath = join(group.dir, 'ca.p12');
  writeFileSync(
    caPath,
    writeBundle(group.ca, group.ca.certificate, CA_PASSWORD, { kdfIterations: TEST_KDF_ITERATIONS }),
  );
  const identity = LocalIdentity.fromBundle(
    readBundle(readFileSync(group.bundles.alice as string), TEST_PASSWORD),
  );
  const settings = memorySettings();
  const memberState = new AppMemberState({
    dataDir: mkdtempSync(join(tmpdir(), 'scx-organiser-')),
    settings,
    secrets: noSecretStorage,
  });
  await memberState.unlock({ groupId: identity.groupId, member: identity.name }, TEST_PASSWORD);
  const stores = new HistoryReader({ memberState, openSession: () => undefined });
  const hub = new EventHub();
  const events: AppEvent[] = [];
  hub.on((e) => events.push(e));
  const choices = new FileChoices();
  let now = 1_000;
  const organiser = new Organiser({
    ports: { pki, kdfIterations: TEST_KDF_ITERATIONS },
    settings,
    hub,
    choices,
    stores,
    identity: () => identity,
    offerRoster: () => undefined,
    linkUp: () => false,
    now: () => now,
  });
  const open = () =>
    organiser.open({ token: choices.remember(caPath, 'bundle').token, password: CA_PASSWORD });
  const store = (bytes: Buffer, version: number) =>
    stores.withState(identity, (state) => state.saveRoster(bytes, version));
  return { group, organiser, events, open, store, setNow: (t: number) => (now = t) };
}

describe('organiser: the roster a change starts from', () => {
  it('is the newer of the store’s and roster.scx beside ca.p12', async () => {
    const { group, organiser, open, store } = await setup();
    // Only roster.scx (v1): never connected.
    expect((await open()).rosterVersion).toBe(1);
    // The store holds v2 (the relay handed it out), the file is older: v2.
    const dave = issueCertificate(group.ca, { name: 'dave', role: 'member' }).certificate;
    const v2 = signRoster(nextRoster(group.roster(), { kind: 'add-member', certificate: dave }), group.ca);
    store(v2, 2);
    expect(organiser.view()?.rosterVersion).toBe(2);
    expect(organiser.view()?.members.map((m) => m.name)).toEqual(['alice', 'bob', 'carol', 'dave']);
    // The CLI wrote v3 into the file: v3.
    group.changeRoster({ kind: 'add-member', certificate: dave });
    group.changeRoster({ kind: 'remove-member', name: 'carol', reason: 'lost laptop' });
    expect(organiser.view()).toMatchObject({
      rosterVersion: 3,
      removed: [{ name: 'carol', reason: 'lost laptop' }],
    });
  }, 60_000);

  it('refuses a fork: the file and the store differ at one version', async () => {
    const { group, organiser, open, store } = await setup();
    await open();
    const erin = issueCertificate(group.ca, { name: 'erin', role: 'member' }).certificate;
    const dave = issueCertificate(group.ca, { name: 'dave', role: 'member' }).certificate;
    store(signRoster(nextRoster(group.roster(), { kind: 'add-member', certificate: erin }), group.ca), 2);
    group.changeRoster({ kind: 'add-member', certificate: dave });
    expect(() => organiser.view()).toThrow(/two changes were signed from one version/);
    await expect(
      organiser.removeMember({ name: 'bob', reason: '', caPassword: CA_PASSWORD }),
    ).rejects.toMatchObject({ code: 'RosterRefused', details: ['RosterConflict'] });
  }, 60_000);
});

describe('organiser: who is online, and last seen', () => {
  it('marks who is online; who goes offline was last seen then; events follow while open', async () => {
    const { organiser, open, events, setNow } = await setup();
    organiser.membersOnline(['alice', 'bob']);
    await open();
    setNow(5_000);
    organiser.membersOnline(['alice']);
    const view = organiser.view();
    expect(view?.members.map((m) => [m.name, m.online, m.lastSeen])).toEqual([
      ['alice', true, 5_000],
      ['bob', false, 5_000],
      ['carol', false, undefined],
    ]);
    expect(events.filter((e) => e.type === 'organiser').length).toBeGreaterThanOrEqual(2);
    // The same people again (a members event for a mark): nothing is written, no view is sent.
    const sent = events.length;
    setNow(9_000);
    organiser.membersOnline(['alice']);
    expect(events.length).toBe(sent);
    expect(organiser.view()?.members.map((m) => m.lastSeen)).toEqual([5_000, 5_000, undefined]);
    organiser.close();
    expect(organiser.view()).toBeUndefined();
    expect(events.at(-1)).toEqual({ type: 'organiser', organiser: null });
  }, 60_000);

  it('says presence in words', () => {
    const now = Date.UTC(2026, 11, 4, 12);
    expect(presenceWords(true, undefined, now)).toBe('Online');
    expect(presenceWords(false, undefined, now)).toBe('Not seen yet');
    expect(presenceWords(false, now - 20_000, now)).toBe('Last seen just now');
    expect(presenceWords(false, now - 5 * 60_000, now)).toBe('Last seen 5 min ago');
    expect(presenceWords(false, now - 3 * 3_600_000, now)).toBe('Last seen 3 h ago');
    expect(presenceWords(false, now - 3 * 86_400_000, now)).toMatch(/^Last seen .*2026/);
    // A clock set back never says "in the future".
    expect(presenceWords(false, now + 60_000, now)).toBe('Last seen just now');
  });
});
