/**
 * The group keys this member holds: the current epoch's K_e and, for a short grace period after a
 * re-key, the previous one (messages already in flight when the key changed still decrypt).
 * Keys never leave this object: callers seal and open chat messages through it.
 */
import { aesGcmDecrypt, aesGcmEncrypt } from '../core/crypto/primitives.js';
import type { KeyView } from '../../src-shared/model.js';
import type { RejectCode } from './errors.js';
import { chatAad, type EpochKey } from './key-schedule.js';
import { SequenceWindow } from './sequence-window.js';

interface EpochEntry {
  epoch: number;
  key: Buffer;
  view: KeyView;
  initiator: string;
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

export class EpochKeyring {
  #current: EpochEntry | undefined;
  #previous: EpochEntry | undefined;
  readonly #retired = new Set<number>();
  /** Never goes down: retiring or clearing keys must not let an epoch number be used twice. */
  #highest = 0;

  constructor(
    private readonly groupId: string,
    private readonly graceMs: number,
    private readonly now: () => number = Date.now,
    private readonly sequenceWindow?: number,
  ) {}

  get current(): KeyView | undefined {
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

  install(epoch: number, derived: EpochKey, members: readonly string[], initiator: string): KeyView {
    if (epoch <= this.#highest) {
      throw new RangeError(`epoch ${epoch} is not newer than epoch ${this.#highest}, held before`);
    }
    this.#highest = epoch;
    this.retireCurrent();
    const view: KeyView = { epoch, safetyNumber: derived.safetyNumber, members: [...members] };
    this.#current = {
      epoch,
      key: derived.key,
      view,
      initiator,
      window: new SequenceWindow(this.sequenceWindow),
      lastSentSeq: 0,
    };
    return view;
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
    return this.#current?.epoch === epoch || this.#previous?.epoch === epoch || this.#retired.has(epoch);
  }

  /** Forgets every key (zeroed), e.g. when the engine stops for good. */
  clear(): void {
    this.dropPrevious();
    this.retireCurrent();
    this.dropPrevious();
  }

  private entryFor(epoch: number): { entry: EpochEntry } | { code: RejectCode; message: string } {
    if (this.#current?.epoch === epoch) return { entry: this.#current };
    const prev = this.#previous;
    if (prev?.epoch === epoch) {
      if (this.now() - (prev.retiredAt ?? 0) <= this.graceMs) return { entry: prev };
      this.dropPrevious();
      return { code: 'RetiredEpoch', message: `epoch ${epoch} was retired after a re-key` };
    }
    if (this.#retired.has(epoch)) {
      return { code: 'RetiredEpoch', message: `epoch ${epoch} was retired after a re-key` };
    }
    return { code: 'UnknownEpoch', message: `epoch ${epoch} was never established with this member` };
  }

  private dropPrevious(): void {
    const prev = this.#previous;
    if (!prev) return;
    prev.key.fill(0);
    this.#retired.add(prev.epoch);
    if (this.#retired.size > REMEMBERED_RETIRED) {
      const oldest = this.#retired.values().next().value;
      if (oldest !== undefined) this.#retired.delete(oldest);
    }
    this.#previous = undefined;
  }
}
