/**
 * An in-process ChatEngine for tests that must look inside a member: it is constructed with the
 * TEST-ONLY `unsafeTestHooks` option (never used by the CLI or the app) to keep copies of the group
 * keys it installs, so a test can show what an old key can and cannot decrypt.
 */
import { Waiters } from './waiters.js';
import { ChatEngine } from '../../src-main/client/engine.js';
import type { EngineEvent } from '../../src-main/client/engine-types.js';
import type { ChatEngineOptions } from '../../src-main/client/options.js';
import type { LocalIdentity } from '../../src-main/core/pki/local-identity.js';

export class TestMember {
  readonly events: EngineEvent[] = [];
  /** TEST ONLY: copies of every group key this member installed, by epoch. */
  readonly keys = new Map<number, Buffer>();
  readonly engine: ChatEngine;
  private readonly waiters = new Waiters();

  constructor(identity: LocalIdentity, port: number, options: Partial<ChatEngineOptions> = {}) {
    this.engine = new ChatEngine({
      identity,
      relay: { host: '127.0.0.1', port },
      keyEstablishmentTimeoutMs: 2000,
      backoff: { initialMs: 100, maxMs: 1000 },
      ...options,
      unsafeTestHooks: { onGroupKey: (epoch, key) => this.keys.set(epoch, key) },
    });
    this.engine.on((e) => {
      this.events.push(e);
      this.waiters.notify();
    });
  }

  get name(): string {
    return this.engine.name;
  }

  of<K extends EngineEvent['event']>(kind: K): Extract<EngineEvent, { event: K }>[] {
    return this.events.filter((e): e is Extract<EngineEvent, { event: K }> => e.event === kind);
  }

  waitFor(predicate: () => boolean, what: string, timeoutMs = 20_000): Promise<void> {
    return this.waiters.until(
      predicate,
      timeoutMs,
      () =>
        `${this.name}: timed out waiting for ${what}; last events ${JSON.stringify(this.events.slice(-10))}`,
    );
  }

  waitForKey(members: string[], timeoutMs = 20_000): Promise<void> {
    const want = [...members].sort().join(',');
    return this.waitFor(
      () =>
        this.engine.state === 'Chatting' &&
        members.every((m) => (this.engine.key?.members ?? []).includes(m)),
      `a key over ${want}`,
      timeoutMs,
    );
  }

  async kill(): Promise<void> {
    await this.engine.stop('test over');
  }
}

/**
 * Waits until `predicate` over several members holds: it is checked again on any member's event,
 * since the member that gets there last need not be the one a single waitFor watches.
 */
export async function waitForMembers(
  members: readonly TestMember[],
  predicate: () => boolean,
  what: string,
  timeoutMs = 20_000,
): Promise<void> {
  const waiters = new Waiters();
  const unsubscribe = members.map((m) => m.engine.on(() => waiters.notify()));
  try {
    await waiters.until(predicate, timeoutMs, () => {
      const states = members.map((m) => `${m.name}: ${JSON.stringify(m.events.slice(-5))}`).join('\n');
      return `timed out waiting for ${what}\n${states}`;
    });
  } finally {
    for (const off of unsubscribe) off();
  }
}
