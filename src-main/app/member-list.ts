/**
 * The members the window shows, with verification: marks (`name → fingerprint`, kept per group)
 * and, for the session, which verified members came back with another certificate. A verified
 * member who presents another certificate loses the mark and raises a `fingerprint-changed`
 * warning until the user verifies the new fingerprint.
 */
import { formatFingerprint } from '../core/pki/fingerprint.js';
import type { Args } from '../../src-shared/ipc-contract.js';
import type { FingerprintWarning, MemberEntry, MemberView } from '../../src-shared/model.js';
import { AppFailure } from './errors.js';
import type { EventHub } from './event-hub.js';
import type { Timeline } from './timeline.js';

function withoutKey(record: Record<string, string>, key: string): Record<string, string> {
  return Object.fromEntries(Object.entries(record).filter(([k]) => k !== key));
}

/** The group's verified marks (name → fingerprint), kept with its identity (kept-identities.ts). */
export interface VerifiedMarks {
  get(): Record<string, string>;
  set(marks: Record<string, string>): void;
}

export interface MemberListDeps {
  marks: VerifiedMarks;
  hub: EventHub;
  timeline: Timeline;
  /** The name of the identity in use (never flagged as changed). */
  selfName: () => string | undefined;
}

export class MemberList {
  readonly #deps: MemberListDeps;
  /** As the engine reports them. */
  #raw: MemberView[] = [];
  #entries: MemberEntry[] = [];
  /** Session memory of verified members whose certificate changed: name → previously verified fingerprint. */
  readonly #changed = new Map<string, string>();
  #warnings: FingerprintWarning[] = [];

  constructor(deps: MemberListDeps) {
    this.#deps = deps;
  }

  get entries(): MemberEntry[] {
    return this.#entries;
  }

  get warnings(): FingerprintWarning[] {
    return this.#warnings;
  }

  /** The members the engine reports now: checked against the marks, then shown. */
  update(members: MemberView[]): void {
    this.#raw = members;
    this.#refresh(true);
  }

  /** A new connect: nobody yet (shown with the next update). */
  reset(): void {
    this.#raw = [];
    this.#entries = [];
  }

  /** The engine stopped: nobody, shown at once. */
  clear(): void {
    this.reset();
    this.#deps.hub.emit({ type: 'members', members: [] });
  }

  setVerified(arg: Args<'setVerified'>): MemberEntry[] {
    const { marks: kept } = this.#deps;
    const member = this.#raw.find((m) => m.name === arg.name);
    if (arg.verified) {
      if (!member) throw new AppFailure('InvalidArgument', `${arg.name} is not in the chat right now.`);
      if (member.fingerprint !== arg.fingerprint)
        throw new AppFailure(
          'InvalidArgument',
          `${arg.name}’s certificate changed while you were comparing. Compare the new fingerprint.`,
        );
    }
    const marks = withoutKey(kept.get(), arg.name);
    if (arg.verified) marks[arg.name] = arg.fingerprint;
    kept.set(marks);
    if (arg.verified) {
      this.#changed.delete(arg.name);
      this.#warnings = this.#warnings.filter((w) => w.name !== arg.name);
    }
    this.#refresh(false);
    return this.#entries;
  }

  #refresh(detectChanges: boolean): void {
    const { marks: kept, hub, timeline } = this.#deps;
    let marks = kept.get();
    const self = this.#deps.selfName();
    let marksChanged = false;
    for (const member of this.#raw) {
      const verified = marks[member.name];
      if (
        detectChanges &&
        verified !== undefined &&
        verified !== member.fingerprint &&
        member.name !== self
      ) {
        // A verified member presents another certificate: clear the mark, warn loudly.
        marks = withoutKey(marks, member.name);
        marksChanged = true;
        this.#changed.set(member.name, verified);
        const warning: FingerprintWarning = {
          name: member.name,
          previousFingerprint: verified,
          currentFingerprint: member.fingerprint,
          at: Date.now(),
        };
        this.#warnings = [...this.#warnings.filter((w) => w.name !== member.name), warning];
        hub.emit({ type: 'fingerprint-changed', ...warning });
        timeline.addSystem(
          'warning',
          `${member.name}’s certificate changed since you verified it (was ${formatFingerprint(verified).slice(0, 19)}…). Verify it again before trusting it.`,
          { name: member.name },
        );
      }
    }
    if (marksChanged) kept.set(marks);
    this.#entries = this.#raw.map((m) => {
      const previous = this.#changed.get(m.name);
      const changed = previous !== undefined && previous !== m.fingerprint;
      return {
        name: m.name,
        fingerprint: m.fingerprint,
        self: m.name === self,
        verified: marks[m.name] === m.fingerprint,
        fingerprintChanged: changed,
        ...(changed ? { previousFingerprint: previous } : {}),
      };
    });
    hub.emit({ type: 'members', members: this.#entries });
  }
}
