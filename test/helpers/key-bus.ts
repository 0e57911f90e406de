/**
 * An in-memory bus of key-establishment state machines (no relay): bodies travel JSON-encoded and
 * schema-decoded exactly as on the wire. Each machine gets a fake clock, a persistEpoch that
 * records, and a randomBytes that keeps every buffer it hands out (to check they are zeroed).
 */
import { randomBytes } from 'node:crypto';
import {
  KeyEstablishment,
  type EstablishedKey,
  type KeyEstablishmentDeps,
} from '../../src-main/client/key-establishment.js';
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
        onKey: (k) => {
          this.keys.get(id.name)?.push(k);
          this.held.set(id.name, k.epoch);
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
