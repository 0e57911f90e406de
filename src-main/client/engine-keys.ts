/**
 * The engine's epoch keys across restarts: restoring the stored keys into the keyring at start,
 * saving and installing each key as it is established, erasing keys past their time, and the
 * message counts rotation looks at. Kept out of
 * engine.ts so the driver only says when, not how.
 */
import type { EngineParts } from './engine-core.js';
import type { HeldFrames } from './engine-held.js';
import type { GroupView } from './engine-presence.js';
import type { SendPipeline } from './engine-send.js';
import type { EpochKeyring } from './epoch-keyring.js';
import type { EstablishedKey } from './key-establishment.js';
import type { EpochStore } from './options.js';

/** Message counts are saved every this many messages (and when the engine stops). */
export const MESSAGE_COUNT_SAVE_EVERY = 1_000;

/**
 * Our own sequence numbers are reserved this far ahead in the store, so a restarted member never
 * reuses one under a restored key (receivers would refuse it as a Replay) without a write per
 * message. Far below the receivers' window (10,000): the jump after a restart is always accepted.
 */
export const SENT_SEQ_RESERVE = 1_000;

/**
 * Puts the stored keys back: the newest key stored as current becomes the current key again (a
 * restarted member chats on without re-keying), every other one is read-only. Returns what it
 * restored; a store without keys restores nothing.
 */
export function restoreKeys(keyring: EpochKeyring, store: EpochStore): number {
  const stored = store.loadKeys?.() ?? [];
  if (stored.length === 0) return 0;
  const current = [...stored].reverse().find((k) => !k.readOnly);
  const facts = (k: (typeof stored)[number]) => ({
    contributors: k.contributors,
    rosterVersion: k.rosterVersion,
    establishedAt: k.establishedAt,
    messages: k.messages,
    sentSeq: k.sentSeq,
    ...(store.receivedSeqs ? { received: store.receivedSeqs(k.epoch) } : {}),
  });
  // The current one first: install() wants an epoch above every one held.
  if (current) {
    keyring.install(
      current.epoch,
      { key: current.key, safetyNumber: current.safetyNumber },
      current.members,
      current.initiator,
      facts(current),
    );
  }
  for (const k of stored) {
    if (k === current) continue;
    keyring.installReadOnly(
      k.epoch,
      { key: k.key, safetyNumber: k.safetyNumber },
      k.members,
      k.initiator,
      facts(k),
    );
  }
  return stored.length;
}

/** Saves a newly installed key; the copy handed to the store is zeroed here afterwards. */
export function persistKey(
  store: EpochStore,
  k: EstablishedKey,
  readOnly: boolean,
  establishedAt: number,
): void {
  if (!store.saveKey) return;
  const key = Buffer.from(k.derived.key);
  try {
    store.saveKey({
      epoch: k.epoch,
      key,
      rosterVersion: k.rosterVersion,
      members: [...k.members],
      contributors: [...k.contributors],
      initiator: k.initiator,
      safetyNumber: k.derived.safetyNumber,
      readOnly,
      establishedAt,
      messages: 0,
      sentSeq: 0,
    });
  } finally {
    key.fill(0);
  }
}

/**
 * Epoch-key erasure (DESIGN.md §10.8): a key is erased, from the store and the keyring, once a newer
 * key has been established for `retentionMs` (the relay's retention): no frame under it can still
 * be stored for this member by then, and what it read is in the history under the history's own
 * key. The current key is never erased. Returns the erased epochs.
 */
export function eraseRetiredKeys(
  keyring: EpochKeyring,
  store: EpochStore,
  now: number,
  retentionMs: number,
): number[] {
  if (!store.loadKeys || !store.eraseKey) return [];
  const stored = store.loadKeys().sort((a, b) => a.epoch - b.epoch);
  for (const k of stored) k.key.fill(0); // only the facts are needed here
  const erased: number[] = [];
  for (let i = 0; i < stored.length - 1; i++) {
    const k = stored[i] as (typeof stored)[number];
    const successor = stored[i + 1] as (typeof stored)[number];
    if (k.epoch === keyring.currentEpoch || now < successor.establishedAt + retentionMs) continue;
    store.eraseKey(k.epoch);
    keyring.erase(k.epoch);
    erased.push(k.epoch);
  }
  return erased;
}

/** What a new key releases in the driver: what was held or queued for it, the group's view. */
export interface KeyInstallSteps {
  sender: Pick<SendPipeline, 'saveMessageCount' | 'requeueUnwritten'>;
  held: Pick<HeldFrames, 'releaseForKey'>;
  group: Pick<GroupView, 'changed'>;
}

/**
 * A key the handshake established: saved (a failure is reported, the key still serves this
 * session), then installed, current or read-only (an older roster's, or below the current epoch:
 * it may decrypt, it never sends).
 */
export function installKey(k: EstablishedKey, parts: EngineParts, steps: KeyInstallSteps): void {
  const { keyring, o, host } = parts;
  if (keyring.lookup(k.epoch)) return; // held already (the handshake compared them)
  const hook = o.unsafeTestHooks?.onGroupKey;
  if (hook) hook(k.epoch, Buffer.from(k.derived.key));
  const establishedAt = o.now();
  const facts = { contributors: k.contributors, rosterVersion: k.rosterVersion, establishedAt };
  const readOnly = k.readOnly || k.epoch <= keyring.highestEpoch;
  try {
    persistKey(o.epochStore, k, readOnly, establishedAt);
  } catch (err) {
    // The key is still good for this session; a restart would have to re-key.
    host.emitError('StateStoreFailed', `epoch ${k.epoch}'s key not stored: ${(err as Error).message}`);
  }
  if (readOnly) {
    keyring.installReadOnly(k.epoch, k.derived, k.members, k.initiator, facts);
    steps.held.releaseForKey(false);
    return;
  }
  steps.sender.saveMessageCount();
  const view = keyring.install(k.epoch, k.derived, k.members, k.initiator, facts);
  // Anything signed under an older epoch but not yet written goes out again under this one.
  steps.sender.requeueUnwritten((m) => m.kind === 'chat' && m.epoch < k.epoch);
  host.emit({ event: 'key', ...view });
  steps.held.releaseForKey(false);
  steps.group.changed();
}

/** Forward secrecy: epoch keys whose erasure time came go (with a prekey store only). */
export function eraseDueKeys(parts: EngineParts, retentionMs: number): void {
  try {
    eraseRetiredKeys(parts.keyring, parts.o.epochStore, parts.o.now(), retentionMs);
  } catch (err) {
    parts.host.emitError('StateStoreFailed', `an epoch key could not be erased: ${(err as Error).message}`);
  }
}
