/**
 * The organiser's tools (issue 12, item 3), for whoever holds the group's CA bundle (ca.p12):
 * open it (its password checked in the PKI worker; only the certificate comes back), add a member
 * (a bundle written beside ca.p12 and the roster's next version), remove one, and the roster shown
 * beside who is online now ("last seen" for the others, as this app saw them).
 *
 * The CA's private key exists only inside the PKI worker, for one change at a time: every change
 * asks for the CA password again, and the key never reaches this thread or the renderer.
 *
 * The base of a change is the newest roster known: the identity's store (what the relay last
 * handed out, kept by the engine) or roster.scx beside ca.p12 (what the CLI writes), whichever is
 * newer. The result goes to both, so the CLI's `group add-member` never forks from an older file,
 * and to the running engine, which takes it as a roster from the relay would be taken and hands it
 * to the relay at once (otherwise at the next connect).
 */
import { createHash } from 'node:crypto';
import { existsSync, readFileSync, statSync } from 'node:fs';
import { rename, rm, writeFile } from 'node:fs/promises';
import { basename, dirname, join } from 'node:path';
import type { Certificate } from '../core/pki/certificate.js';
import type { LocalIdentity } from '../core/pki/local-identity.js';
import { DEFAULT_KDF_ITERATIONS } from '../core/pki/bundle.js';
import {
  compareRoster,
  MAX_ROSTER_BYTES,
  ROSTER_FILE,
  RosterError,
  verifyRoster,
  type Roster,
} from '../core/roster/index.js';
import type { RosterOffer } from '../client/engine-types.js';
import type { Args } from '../../src-shared/ipc-contract.js';
import type { AddedMember, OrganiserView, RemovedMember } from '../../src-shared/model.js';
import { readBundleFile } from './bundle-files.js';
import { AppFailure } from './errors.js';
import type { EventHub } from './event-hub.js';
import type { FileChoices } from './file-choices.js';
import type { HistoryReader } from './history-reader.js';
import type { AppServicePorts, RosterChangeOptions } from './ports.js';
import type { Settings } from './settings.js';

export interface OrganiserDeps {
  ports: Pick<AppServicePorts, 'pki' | 'kdfIterations'>;
  settings: Settings;
  hub: EventHub;
  choices: FileChoices;
  /** The identity's store (the running engine's, or opened for the call). */
  stores: Pick<HistoryReader, 'withState'>;
  /** The identity in use (the organiser is a member of the group too). */
  identity: () => LocalIdentity;
  /** Hands a newer roster to the running engine; undefined when no engine runs. */
  offerRoster: (bytes: Buffer) => RosterOffer | undefined;
  /** The link to the relay is up (an accepted roster reaches the relay now). */
  linkUp: () => boolean;
  now?: () => number;
}

interface OpenCa {
  path: string;
}

/**
 * Rosters verified once per distinct bytes: the view is recomputed on every presence change, and
 * verifying is a signature check per listed member. Holds the few rosters in play (the store's,
 * roster.scx's, the one just signed).
 */
class VerifiedRosters {
  static readonly #MAX = 4;
  readonly #rosters = new Map<string, Roster>();

  verify(bytes: Uint8Array, ca: Certificate): Roster {
    const key = `${ca.fingerprintHex}:${createHash('sha256').update(bytes).digest('hex')}`;
    const known = this.#rosters.get(key);
    if (known) return known;
    const roster = verifyRoster(bytes, ca);
    this.#rosters.set(key, roster);
    if (this.#rosters.size > VerifiedRosters.#MAX)
      this.#rosters.delete(this.#rosters.keys().next().value as string);
    return roster;
  }
}

export class Organiser {
  readonly #deps: OrganiserDeps;
  #ca: OpenCa | undefined;
  #online: string[] = [];
  readonly #rosters = new VerifiedRosters();

  constructor(deps: OrganiserDeps) {
    this.#deps = deps;
  }

  /** The organiser's view while the CA bundle of the identity's group is open. */
  view(): OrganiserView | undefined {
    const ca = this.#openCa();
    if (!ca) return undefined;
    const identity = this.#deps.identity();
    const roster = this.#newestRoster(identity, ca);
    const seen = this.#deps.settings.get('lastSeen') ?? {};
    return {
      groupName: roster?.name ?? identity.ca.name,
      caFile: basename(ca.path),
      rosterVersion: roster?.version ?? 0,
      members: (roster?.members ?? []).map((m) => {
        const lastSeen = seen[`${identity.groupId}/${m.name}`];
        return {
          name: m.name,
          fingerprint: m.fingerprintHex,
          online: this.#online.includes(m.name),
          ...(lastSeen !== undefined ? { lastSeen } : {}),
        };
      }),
      relays: [...(roster?.relayNames ?? [])],
      removed: (roster?.removed ?? []).map((r) => ({
        name: r.name,
        removedAt: r.removedAt,
        reason: r.reason,
      })),
    };
  }

  /** Opens ca.p12 (chosen in the dialog): this group's CA, or NotGroupCa. */
  async open(arg: Args<'openGroupCa'>): Promise<OrganiserView> {
    const identity = this.#deps.identity();
    const path = this.#deps.choices.resolve(arg.token, 'bundle');
    const certificate = await this.#deps.ports.pki.readCertificate(await readBundleFile(path), arg.password);
    if (!certificate.isCa) {
      throw new AppFailure(
        'NotGroupCa',
        `This is the bundle of “${certificate.name}”, not the group’s CA bundle (ca.p12).`,
      );
    }
    if (certificate.fingerprintHex !== identity.ca.fingerprintHex) {
      throw new AppFailure('NotGroupCa', `“${certificate.name}” is the CA of another group, not of yours.`);
    }
    this.#ca = { path };
    return this.#emit() ?? this.#missing();
  }

  close(): void {
    this.#ca = undefined;
    this.#deps.hub.emit({ type: 'organiser', organiser: null });
  }

  async addMember(arg: Args<'addMember'>): Promise<AddedMember> {
    const { ca, identity, roster } = this.#base();
    const clash = [...roster.memberNames, ...roster.relayNames].find(
      (n) => n.toLowerCase() === arg.name.toLowerCase(),
    );
    if (clash !== undefined) {
      throw new AppFailure(
        'RosterRefused',
        clash === arg.name
          ? `“${arg.name}” is in the group already.`
          : `“${arg.name}” differs only in letter case from “${clash}”, already in the group.`,
        ['RosterDuplicate'],
      );
    }
    const bundlePath = join(dirname(ca.path), `${arg.name}.p12`);
    if (existsSync(bundlePath)) {
      throw new AppFailure(
        'WouldOverwrite',
        `${basename(bundlePath)} exists beside the CA bundle already; move it away first.`,
        [basename(bundlePath)],
      );
    }
    const result = await this.#change(ca, identity, roster, arg.caPassword, {
      kind: 'add-member',
      name: arg.name,
      password: arg.password,
      kdfIterations: this.#deps.ports.kdfIterations ?? DEFAULT_KDF_ITERATIONS,
    });
    const added = result.added;
    if (!added)
      throw new AppFailure('Internal', 'Something went wrong: no bundle came back for the new member.');
    try {
      await writeFile(bundlePath, added.bundle, { flag: 'wx', mode: 0o600 });
    } finally {
      added.bundle.fill(0);
    }
    const next = this.#rosters.verify(result.roster, identity.ca);
    let published: boolean;
    try {
      published = await this.#keep(ca, identity, next);
    } catch (err) {
      // A bundle no roster lists is of no use: the one written just now goes again.
      await rm(bundlePath, { force: true });
      throw err;
    }
    return {
      name: arg.name,
      fingerprint: added.fingerprintHex,
      bundlePath,
      rosterVersion: next.version,
      published,
    };
  }

  async removeMember(arg: Args<'removeMember'>): Promise<RemovedMember> {
    const { ca, identity, roster } = this.#base();
    if (arg.name === identity.name) {
      throw new AppFailure(
        'RosterRefused',
        'You cannot remove yourself here: another organiser’s app or the CLI can.',
        ['RosterUnknownMember'],
      );
    }
    const result = await this.#change(ca, identity, roster, arg.caPassword, {
      kind: 'remove-member',
      name: arg.name,
      reason: arg.reason,
    });
    const next = this.#rosters.verify(result.roster, identity.ca);
    const published = await this.#keep(ca, identity, next);
    return { name: arg.name, rosterVersion: next.version, published };
  }

  /**
   * Who is online now (the members event, also sent when only a mark changed); when that changed,
   * those who came or went were last seen now.
   */
  membersOnline(names: readonly string[]): void {
    const same = names.length === this.#online.length && names.every((n) => this.#online.includes(n));
    if (same) return;
    const groupId = this.#currentGroupId();
    if (groupId !== undefined) {
      const now = (this.#deps.now ?? Date.now)();
      const seen = { ...(this.#deps.settings.get('lastSeen') ?? {}) };
      for (const name of new Set([...this.#online, ...names])) seen[`${groupId}/${name}`] = now;
      this.#deps.settings.set('lastSeen', seen);
    }
    this.#online = [...names];
    if (this.#openCa()) this.#emit();
  }

  /** The roster or the identity changed (locked, unlocked): the view follows. */
  refresh(): void {
    if (this.#ca) this.#emit();
  }

  #currentGroupId(): string | undefined {
    try {
      return this.#deps.identity().groupId;
    } catch {
      return undefined;
    }
  }

  /** The open CA while this group's identity is open (one organiser per group: group-session.ts). */
  #openCa(): OpenCa | undefined {
    return this.#currentGroupId() !== undefined ? this.#ca : undefined;
  }

  #emit(): OrganiserView | undefined {
    const view = this.view();
    this.#deps.hub.emit({ type: 'organiser', organiser: view ?? null });
    return view;
  }

  #missing(): never {
    throw new AppFailure('NoGroupCa', 'Open the group’s CA bundle (ca.p12) first.');
  }

  #base(): { ca: OpenCa; identity: LocalIdentity; roster: Roster } {
    const ca = this.#openCa() ?? this.#missing();
    const identity = this.#deps.identity();
    const roster = this.#newestRoster(identity, ca);
    if (!roster) {
      throw new AppFailure(
        'RosterRefused',
        `No roster of this group is known yet: connect once, or keep ${ROSTER_FILE} beside the CA bundle.`,
        ['RosterUnknownMember'],
      );
    }
    return { ca, identity, roster };
  }

  /** The newer of the store's roster and roster.scx beside ca.p12 (a fork of one version: refused). */
  #newestRoster(identity: LocalIdentity, ca: OpenCa): Roster | undefined {
    const held = this.#deps.stores.withState(identity, (state) => state.loadRoster());
    const stored = held ? this.#rosters.verify(held, identity.ca) : undefined;
    const file = readRosterFile(join(dirname(ca.path), ROSTER_FILE), (bytes) =>
      this.#rosters.verify(bytes, identity.ca),
    );
    if (!stored || !file) return stored ?? file;
    const order = compareRoster(stored, file);
    if (order === 'conflict') {
      throw new AppFailure(
        'RosterRefused',
        `${ROSTER_FILE} beside the CA bundle and the group’s roster differ at version ${stored.version}: two changes were signed from one version.`,
        ['RosterConflict'],
      );
    }
    return order === 'newer' ? file : stored;
  }

  async #change(
    ca: OpenCa,
    identity: LocalIdentity,
    roster: Roster,
    caPassword: string,
    change: RosterChangeOptions['change'],
  ): Promise<{ roster: Buffer; added?: { bundle: Uint8Array; fingerprintHex: string } }> {
    try {
      return await this.#deps.ports.pki.changeRoster({
        caBundle: await readBundleFile(ca.path),
        caPassword,
        groupId: identity.groupId,
        roster: roster.bytes,
        change,
      });
    } catch (err) {
      if (err instanceof RosterError)
        throw new AppFailure('RosterRefused', `The group cannot be changed: ${err.message}.`, [err.code]);
      throw err;
    }
  }

  /**
   * roster.scx first (so the CLI works from it), then the running engine (which hands it to the
   * relay) or the store (the next connect does). Returns whether it reached the relay now.
   */
  async #keep(ca: OpenCa, identity: LocalIdentity, next: Roster): Promise<boolean> {
    const file = join(dirname(ca.path), ROSTER_FILE);
    const temporary = `${file}.${process.pid}.tmp`;
    await writeFile(temporary, next.bytes, { mode: 0o644 });
    await rename(temporary, file);
    const offer = this.#deps.offerRoster(next.bytes);
    if (offer === undefined) {
      this.#deps.stores.withState(identity, (state) => state.saveRoster(next.bytes, next.version));
    } else if (!offer.accepted) {
      throw new AppFailure(
        'RosterRefused',
        `Roster v${next.version} was written to ${ROSTER_FILE} but not taken: ${offer.message}.`,
        [offer.code],
      );
    }
    this.#emit();
    return offer !== undefined && this.#deps.linkUp();
  }
}

/** roster.scx beside ca.p12, if there and this group's; one that does not verify is not a base. */
function readRosterFile(path: string, verify: (bytes: Uint8Array) => Roster): Roster | undefined {
  // Synchronous: the view is computed on events, and the file is small (bounded below).
  if (!existsSync(path) || statSync(path).size > MAX_ROSTER_BYTES) return undefined;
  try {
    return verify(readFileSync(path));
  } catch {
    return undefined;
  }
}
