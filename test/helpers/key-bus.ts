/**
 * An in-memory bus of key-establishment state machines (no relay): bodies travel JSON-encoded and
 * schema-decoded exactly as on the wire. Each machine gets a fake clock, a persistEpoch that
 * records, and a randomBytes that keeps every buffer it hands out (to check they are zeroed).
 *
 * Like the v2 relay, the bus knows who is online (`online`): a KEY_DISTRIBUTION for a member who
 * is not is stored (`stored`) until `deliverStored`; every other frame for it is dropped.
 */
import { randomBytes, timingSafeEqual } from 'node:crypto';
import {
  KeyEstablishment,
  type CurrentKeyInfo,
  type EstablishedKey,
  type KeyEstablishmentDeps,
} from '../../src-main/client/key-establishment.js';
import type { Roster } from '../../src-main/core/roster/index.js';
import { sortMembers } from '../../src-main/client/key-schedule.js';
import type { LocalIdentity } from '../../src-main/core/pki/local-identity.js';
import { decodeJsonBody, encodeJsonBody } from '../../src-main/core/protocol/json-body.js';
import { BODY_SCHEMAS } from '../../src-main/core/protocol/schemas.js';

export interface Wire {
  from: string;
  to: string;
  type: 'NONCE_REQUEST' | 'NONCE_RESPONSE' | 'KEY_DISTRIBUTION' | 'REKEY_REQUEST';
  bytes: Buffer;
}

export class Bus {
  queue: Wire[] = [];
  machines = new Map<string, KeyEstablishment>();
  keys = new Map<string, EstablishedKey[]>();
  problems: string[] = [];
  held = new Map<string, number>();
  /** Error code of each problem, in the order of `problems`. */
  codes: string[] = [];
  /** What each member's persistEpoch was called with (write-ahead order). */
  persisted = new Map<string, number[]>();
  now = 1_000_000;
  /** Every buffer a machine's randomBytes handed out (challenges and nonces), by member. */
  randoms = new Map<string, Buffer[]>();
  /** Return false to drop a frame in flight. */
  filter: (w: Wire) => boolean = () => true;
  /** Rewrites a frame's bytes in flight. */
  tamper: (w: Wire) => Buffer = (w) => w.bytes;
  /** Who is connected (undefined = everyone: the v1 tests that never say). */
  online: Set<string> | undefined;
  /** KEY_DISTRIBUTIONs kept for members who were offline, in arrival order. */
  stored = new Map<string, Wire[]>();
  /** The key each member chats under (the newest not read-only one). */
  current = new Map<string, CurrentKeyInfo>();
  private presenceVersion = 0;

  constructor(
    identities: LocalIdentity[],
    randomFor?: (name: string) => (n: number) => Buffer,
    extra: (name: string) => Partial<KeyEstablishmentDeps> = () => ({}),
  ) {
    const certs = new Map(identities.map((i) => [i.name, i.certificate]));
    for (const id of identities) {
      this.keys.set(id.name, []);
      this.held.set(id.name, 0);
      this.persisted.set(id.name, []);
      this.randoms.set(id.name, []);
      const source = randomFor ? randomFor(id.name) : (n: number) => randomBytes(n);
      const machine = new KeyEstablishment({
        identity: id,
        certificateOf: (n) => certs.get(n),
        send: (type, target, body) => {
          this.queue.push({ from: id.name, to: target, type, bytes: encodeJsonBody(body) });
        },
        heldEpoch: () => this.held.get(id.name) ?? 0,
        currentKey: () => this.current.get(id.name),
        heldKey: (epoch) => {
          const k = this.keys.get(id.name)?.find((x) => x.epoch === epoch);
          if (!k) return undefined;
          return {
            initiator: k.initiator,
            matches: (key: Buffer) => key.length === 32 && timingSafeEqual(key, k.derived.key),
          };
        },
        onKey: (k) => {
          this.keys.get(id.name)?.push(k);
          this.held.set(id.name, Math.max(this.held.get(id.name) ?? 0, k.epoch));
          const cur = this.current.get(id.name);
          if (!k.readOnly && (!cur || k.epoch > cur.epoch)) {
            this.current.set(id.name, {
              epoch: k.epoch,
              rosterVersion: k.rosterVersion,
              initiator: k.initiator,
              establishedAt: this.now,
              messages: 0,
            });
          }
        },
        onProblem: (m, code) => {
          this.problems.push(`${id.name}: ${m}`);
          this.codes.push(code);
        },
        randomBytes: (n) => {
          const b = source(n);
          this.randoms.get(id.name)?.push(b);
          return b;
        },
        persistEpoch: (e) => this.persisted.get(id.name)?.push(e),
        now: () => this.now,
        ...extra(id.name),
      });
      this.machines.set(id.name, machine);
    }
  }

  run(limit = 10_000): void {
    let steps = 0;
    while (this.queue.length > 0 && steps++ < limit) {
      const w = this.queue.shift() as Wire;
      if (!this.filter(w)) continue;
      const m = this.machines.get(w.to);
      if (!m) continue;
      if (this.online && !this.online.has(w.to)) {
        if (w.type === 'KEY_DISTRIBUTION') this.stored.set(w.to, [...(this.stored.get(w.to) ?? []), w]);
        continue;
      }
      this.deliver(m, w);
    }
  }

  /** Hands one frame to its target now, online or not (a frame that crosses a replay). */
  deliverNow(w: Wire): void {
    const m = this.machines.get(w.to);
    if (m) this.deliver(m, w);
  }

  private deliver(m: KeyEstablishment, w: Wire): void {
    const bytes = this.tamper(w);
    switch (w.type) {
      case 'NONCE_REQUEST':
        m.onNonceRequest(w.from, decodeJsonBody(BODY_SCHEMAS.NONCE_REQUEST, bytes, 'x'));
        break;
      case 'NONCE_RESPONSE':
        m.onNonceResponse(w.from, decodeJsonBody(BODY_SCHEMAS.NONCE_RESPONSE, bytes, 'x'));
        break;
      case 'KEY_DISTRIBUTION':
        m.onKeyDistribution(w.from, decodeJsonBody(BODY_SCHEMAS.KEY_DISTRIBUTION, bytes, 'x'));
        break;
      case 'REKEY_REQUEST':
        m.onRekeyRequest(w.from, decodeJsonBody(BODY_SCHEMAS.REKEY_REQUEST, bytes, 'x'));
        break;
    }
  }

  /** Gives every machine the roster (a member's own copy; `names` limits who gets it). */
  setRoster(roster: Roster, names: Iterable<string> = this.machines.keys()): void {
    for (const n of names) this.machines.get(n)?.setRoster(roster);
  }

  /**
   * A PRESENCE: exactly these are online now; each of them learns it. A member that just came online
   * first gets what was stored for it (the relay's replay), then goes live.
   */
  presence(...names: string[]): void {
    const before = this.online ?? new Set<string>();
    this.online = new Set(names);
    this.presenceVersion++;
    const sorted = sortMembers(names);
    for (const n of this.machines.keys()) {
      const m = this.machines.get(n) as KeyEstablishment;
      if (!this.online.has(n)) {
        if (before.has(n)) m.reset(); // its session ended
        continue;
      }
      m.setPresence(sorted, this.presenceVersion);
      if (m.isLive) {
        m.ensureKey();
        continue;
      }
      const kept = this.stored.get(n) ?? [];
      this.stored.set(n, []);
      for (const w of kept) this.deliver(m, w);
      m.goLive();
    }
  }

  /** Counts messages under a member's current key (rotation by count). */
  countMessages(name: string, n: number): void {
    const cur = this.current.get(name);
    if (cur) cur.messages += n;
  }

  setMembership(names: string[], version: number): void {
    const m = sortMembers(names);
    for (const n of names) this.machines.get(n)?.setMembership(m, version);
  }

  last(name: string): EstablishedKey | undefined {
    const k = this.keys.get(name) ?? [];
    return k[k.length - 1];
  }
}

/** A deterministic byte source: the same seed gives the same "random" nonces. */
export function seeded(seed: number): (n: number) => Buffer {
  let counter = 0;
  return (n) => {
    const out = Buffer.alloc(n);
    for (let i = 0; i < n; i++) out[i] = (seed * 131 + counter++ * 17 + i) & 0xff;
    return out;
  };
}

/**
 * heldEpoch / currentKey / heldKey over a plain list of installed keys, for tests that drive one
 * machine by hand (the newest key that is not read-only is the current one).
 */
export function keyListDeps(
  keys: EstablishedKey[],
): Pick<KeyEstablishmentDeps, 'heldEpoch' | 'currentKey' | 'heldKey'> {
  return {
    heldEpoch: () => keys.reduce((m, k) => Math.max(m, k.epoch), 0),
    currentKey: () => {
      const k = keys.filter((x) => !x.readOnly).at(-1);
      return k
        ? {
            epoch: k.epoch,
            rosterVersion: k.rosterVersion,
            initiator: k.initiator,
            establishedAt: 0,
            messages: 0,
          }
        : undefined;
    },
    heldKey: (epoch) => {
      const k = keys.find((x) => x.epoch === epoch);
      return k
        ? {
            initiator: k.initiator,
            matches: (key: Buffer) => key.length === 32 && timingSafeEqual(key, k.derived.key),
          }
        : undefined;
    },
  };
}
