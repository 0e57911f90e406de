/**
 * The kept identities, one per group, in the settings (`identities`): which bundle file, the
 * password wrapped by the keystore, and the group's own preferences (verified marks, the relay it
 * last connected to). An identity is its group id and its name (`<group id>/<name>`, the owner of
 * its state store). An app from before several groups kept one (`identity`, `verified`,
 * `relayAddress`): migrate() moves it into the list once.
 */
import { createHash } from 'node:crypto';
import { AppFailure } from './errors.js';
import { MAX_GROUPS, type KeptIdentity, type Settings } from './settings.js';

export const ownerKey = (kept: Pick<KeptIdentity, 'groupId' | 'name'>): string =>
  `${kept.groupId}/${kept.name}`;

/** The data-folder file name of an identity's kept bundle (names may hold dots: hashed). */
export function bundleFileOf(owner: string): string {
  return `identity-${createHash('sha256').update(owner).digest('hex').slice(0, 24)}.p12`;
}

export class KeptIdentities {
  constructor(private readonly settings: Settings) {}

  list(): KeptIdentity[] {
    return this.settings.get('identities') ?? [];
  }

  get(owner: string): KeptIdentity | undefined {
    return this.list().find((k) => ownerKey(k) === owner);
  }

  /** Keeps `kept` (replacing the same identity's record); a new one only below MAX_GROUPS. */
  put(kept: KeptIdentity): void {
    const owner = ownerKey(kept);
    const list = this.list();
    const index = list.findIndex((k) => ownerKey(k) === owner);
    if (index < 0 && list.length >= MAX_GROUPS)
      throw new AppFailure(
        'InvalidArgument',
        `This app holds at most ${MAX_GROUPS} groups. Remove one first.`,
      );
    this.settings.set(
      'identities',
      index < 0 ? [...list, kept] : list.map((k, i) => (i === index ? kept : k)),
    );
  }

  update(
    owner: string,
    patch: Partial<Pick<KeptIdentity, 'verified' | 'relayAddress' | 'relayFallbacks'>>,
  ): void {
    const kept = this.get(owner);
    if (kept) this.put({ ...kept, ...patch });
  }

  remove(owner: string): void {
    this.settings.set(
      'identities',
      this.list().filter((k) => ownerKey(k) !== owner),
    );
  }

  /** The one identity of an older app, with its marks and relay, becomes the first of the list. */
  migrate(): void {
    const single = this.settings.get('identity');
    if (!single) return;
    if (!this.get(ownerKey(single))) {
      const verified = this.settings.get('verified');
      const relayAddress = this.settings.get('relayAddress');
      this.put({
        ...single,
        ...(verified ? { verified } : {}),
        ...(relayAddress ? { relayAddress } : {}),
      });
    }
    this.settings.delete('identity');
    this.settings.delete('verified');
  }
}
