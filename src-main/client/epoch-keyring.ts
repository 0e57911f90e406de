/**
 * The group keys this member holds: the current epoch's K_e and, for a short grace period after a
 * re-key, the previous one (messages already in flight when the key changed still decrypt), plus
 * read-only keys: historic keys of older roster versions received while catching up, and keys
 * restored from the member store. Read-only keys decrypt, they never seal. At most
 * MAX_READ_ONLY_KEYS of them are kept (oldest epoch dropped first, zeroed).
 * Keys never leave this object: callers seal and open chat messages through it.
 */
import { timingSafeEqual } from 'node:crypto';
import { aesGcmDecrypt, aesGcmEncrypt } from '../core/crypto/primitives.js';
import type { GroupKeyInfo } from './types.js';
import type { RejectCode } from './errors.js';
import { chatAad, type EpochKey } from './key-schedule.js';
import { SequenceWindow } from './sequence-window.js';

interface EpochEntry {
  epoch: number;
  key: Buffer;
  view: GroupKeyInfo;
  initiator: string;
  rosterVersion: number;
  /** When it was installed (ms, engine clock) and how many messages it carried (rotation). */
  establishedAt: number;
  messages: number;
  window: SequenceWindow;
  /** Our own last sequence number under this epoch. */
  lastSentSeq: number;
  /** When it stopped being current (ms, engine clock). */
  retiredAt?: number;
}

export interface SealedChat {
  epoch: number;
  seq: number;
  iv: Buffer;
  ciphertext: Buffer;
}

export type OpenResult = { ok: true; plaintext: Buffer } | { ok: false; code: RejectCode; message: string };

/** How many retired epoch numbers are remembered to tell "retired" from "never known". */
const REMEMBERED_RETIRED = 1024;

/** Read-only keys kept (historic and restored); the member store keeps as many (state/epoch-keys.ts). */
export const MAX_READ_ONLY_KEYS = 64;

/** What install() records besides the key (defaults: no roster, contributors = members, now, 0). */
export interface InstallFacts {
  contributors?: readonly string[];
  rosterVersion?: number;
  establishedAt?: number;
  messages?: number;
  /** Our own sequence numbers under this epoch continue above this (a restored key). */
  sentSeq?: number;
  /**
   * The highest sequence number already received per sender (a restored key): the replay window
   * resumes there, so a sender far ahead is not refused as out of window and an old frame is a Replay.
   */
  received?: ReadonlyMap<string, number>;
}

/** What the engine and the handshake may know of a held key (never the key itself). */
export interface KeyInfo {
  epoch: number;
  initiator: string;
  rosterVersion: number;
  members: string[];
  contributors: string[];
  safetyNumber: string;
  establishedAt: number;
  messages: number;
  /** Our own last sequence number under it. */
  lastSentSeq: number;
  readOnly: boolean;
}

export class EpochKeyring {
  #current: EpochEntry | undefined;
  #previous: EpochEntry | undefined;
  /** Read-only keys by epoch (historic, restored); never the current or previous one. */
  readonly #readOnly = new Map<number, EpochEntry>();
  readonly #retired = new Set<number>();
  /** Never goes down: retiring or clearing keys must not let an epoch number be used twice. */
  #highest = 0;

  constructor(
    private readonly groupId: string,
    private readonly graceMs: number,
    private readonly now: () => number = Date.now,
    private readonly sequenceWindow?: number,
  ) {}

  get current(): GroupKeyInfo | undefined {
    return this.#current?.view;
  }

  get currentEpoch(): number | undefined {
    return this.#current?.epoch;
  }

  get currentInitiator(): string | undefined {
    return this.#current?.initiator;
  }

  /** Every epoch ever held (current, previous, retired, cleared) is below or equal to this. */
  get highestEpoch(): number {
    return this.#highest;
  }

  install(
    epoch: number,
    derived: EpochKey,
    members: readonly string[],
    initiator: string,
    facts: InstallFacts = {},
  ): GroupKeyInfo {
    if (epoch <= this.#highest) {
      throw new RangeError(`epoch ${epoch} is not newer than epoch ${this.#highest}, held before`);
    }
    this.#highest = epoch;
    this.retireCurrent();
    this.#current = this.entry(epoch, derived, members, initiator, facts);
    return this.#current.view;
  }

  /**
   * A key that decrypts but never seals: a historic key of an older roster version, an epoch below
   * the current one, or a key restored from the store. Its epoch counts as held (never reused).
   */
  installReadOnly(
    epoch: number,
    derived: EpochKey,
    members: readonly string[],
    initiator: string,
    facts: InstallFacts = {},
  ): GroupKeyInfo {
    if (this.knows(epoch)) throw new RangeError(`epoch ${epoch} is held already`);
    this.#highest = Math.max(this.#highest, epoch);
    const entry = this.entry(epoch, derived, members, initiator, facts);
    this.#readOnly.set(epoch, entry);
    while (this.#readOnly.size > MAX_READ_ONLY_KEYS) {
      const oldest = Math.min(...this.#readOnly.keys());
      this.#readOnly.get(oldest)?.key.fill(0);
      this.#readOnly.delete(oldest);
      this.rememberRetired(oldest);
    }
    return entry.view;
  }

  /** The key held for `epoch` (current, previous in grace, read-only), for a constant-time compare. */
  lookup(epoch: number): { initiator: string; matches(key: Buffer): boolean } | undefined {
    const e =
      this.#current?.epoch === epoch
        ? this.#current
        : this.#previous?.epoch === epoch
          ? this.#previous
          : this.#readOnly.get(epoch);
    if (!e) return undefined;
    return {
      initiator: e.initiator,
      matches: (key) => key.length === e.key.length && timingSafeEqual(key, e.key),
    };
  }

  /** The current key's facts (no key material). */
  get currentInfo(): KeyInfo | undefined {
    const e = this.#current;
    return e ? this.info(e, false) : undefined;
  }

  /** Counts one message (sent or received) under the current epoch; returns the new count. */
  countMessage(epoch: number): number {
    const e = this.#current;
    if (!e || e.epoch !== epoch) return 0;
    return ++e.messages;
  }

  private info(e: EpochEntry, readOnly: boolean): KeyInfo {
    return {
      epoch: e.epoch,
      initiator: e.initiator,
      rosterVersion: e.rosterVersion,
      members: [...e.view.members],
      contributors: [...e.view.contributors],
      safetyNumber: e.view.safetyNumber,
      establishedAt: e.establishedAt,
      messages: e.messages,
      lastSentSeq: e.lastSentSeq,
      readOnly,
    };
  }

  private entry(
    epoch: number,
    derived: EpochKey,
    members: readonly string[],
    initiator: string,
    facts: InstallFacts,
  ): EpochEntry {
    const view: GroupKeyInfo = {
      epoch,
      safetyNumber: derived.safetyNumber,
      members: [...members],
      contributors: [...(facts.contributors ?? members)],
    };
    return {
      epoch,
      key: derived.key,
      view,
      initiator,
      rosterVersion: facts.rosterVersion ?? 0,
      establishedAt: facts.establishedAt ?? this.now(),
      messages: facts.messages ?? 0,
      window: SequenceWindow.resuming(this.sequenceWindow, facts.received),
      lastSentSeq: facts.sentSeq ?? 0,
    };
  }

  /** The current key becomes the previous one (accepted for the grace period, never used to send). */
  retireCurrent(): void {
    if (!this.#current) return;
    this.dropPrevious();
    this.#current.retiredAt = this.now();
    this.#previous = this.#current;
    this.#current = undefined;
  }

  /** Encrypts one of our messages under the current epoch with the next sequence number. */
  seal(sender: string, plaintext: Uint8Array): SealedChat {
    const entry = this.#current;
    if (!entry) throw new Error('no current group key');
    const seq = ++entry.lastSentSeq;
    const { iv, ciphertext } = aesGcmEncrypt(
      entry.key,
      plaintext,
      chatAad(this.groupId, entry.epoch, sender, seq),
    );
    return { epoch: entry.epoch, seq, iv, ciphertext };
  }

  /** Checks epoch and sequence window, decrypts, and only then records the sequence number. */
  open(epoch: number, sender: string, seq: number, iv: Buffer, ciphertext: Buffer): OpenResult {
    const found = this.entryFor(epoch);
    if ('code' in found) return { ok: false, ...found };
    const entry = found.entry;
    const windowReject = entry.window.check(sender, seq);
    if (windowReject) {
      return {
        ok: false,
        code: windowReject,
        message:
          windowReject === 'Replay'
            ? `${sender} seq ${seq} in epoch ${epoch} is not above the last accepted (${entry.window.last(sender)})`
            : `${sender} seq ${seq} in epoch ${epoch} is too far ahead of ${entry.window.last(sender)}`,
      };
    }
    let plaintext: Buffer;
    try {
      plaintext = aesGcmDecrypt(entry.key, iv, ciphertext, chatAad(this.groupId, epoch, sender, seq));
    } catch {
      return {
        ok: false,
        code: 'DecryptFailed',
        message: `message ${seq} from ${sender} does not decrypt under epoch ${epoch}`,
      };
    }
    entry.window.commit(sender, seq);
    return { ok: true, plaintext };
  }

  /** Whether an epoch is one we hold or held (as opposed to a future one we may be about to get). */
  knows(epoch: number): boolean {
    return (
      this.#current?.epoch === epoch ||
      this.#previous?.epoch === epoch ||
      this.#readOnly.has(epoch) ||
      this.#retired.has(epoch)
    );
  }

  /**
   * Forgets one key that is not the current one (zeroed): its erasure time came
   * (engine-keys.ts). Messages under it are then refused as RetiredEpoch.
   */
  erase(epoch: number): boolean {
    if (this.#current?.epoch === epoch) return false;
    if (this.#previous?.epoch === epoch) {
      this.dropPrevious();
      return true;
    }
    const e = this.#readOnly.get(epoch);
    if (!e) return false;
    e.key.fill(0);
    this.#readOnly.delete(epoch);
    this.rememberRetired(epoch);
    return true;
  }

  /** Forgets every key (zeroed), e.g. when the engine stops for good. */
  clear(): void {
    this.dropPrevious();
    this.retireCurrent();
    this.dropPrevious();
    for (const [epoch, e] of this.#readOnly) {
      e.key.fill(0);
      this.rememberRetired(epoch);
    }
    this.#readOnly.clear();
  }

  private entryFor(epoch: number): { entry: EpochEntry } | { code: RejectCode; message: string } {
    if (this.#current?.epoch === epoch) return { entry: this.#current };
    const prev = this.#previous;
    if (prev?.epoch === epoch) {
      if (this.now() - (prev.retiredAt ?? 0) <= this.graceMs) return { entry: prev };
      this.dropPrevious();
      return { code: 'RetiredEpoch', message: `epoch ${epoch} was retired after a re-key` };
    }
    const readOnly = this.#readOnly.get(epoch);
    if (readOnly) return { entry: readOnly };
    if (this.#retired.has(epoch)) {
      return { code: 'RetiredEpoch', message: `epoch ${epoch} was retired after a re-key` };
    }
    return { code: 'UnknownEpoch', message: `epoch ${epoch} was never established with this member` };
  }

  private dropPrevious(): void {
    const prev = this.#previous;
    if (!prev) return;
    prev.key.fill(0);
    this.rememberRetired(prev.epoch);
    this.#previous = undefined;
  }

  private rememberRetired(epoch: number): void {
    this.#retired.add(epoch);
    if (this.#retired.size > REMEMBERED_RETIRED) {
      const oldest = this.#retired.values().next().value;
      if (oldest !== undefined) this.#retired.delete(oldest);
    }
  }
}
