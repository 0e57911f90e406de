/**
 * A connection flood for relay admission tests: many TCP connections from other loopback addresses
 * (127.0.0.2 … ) that never finish a TLS handshake. Half stay silent, half trickle the first bytes
 * of a TLS record (a ClientHello that never completes) every second. A connection the relay closes
 * is opened again after `reopenMs`, so the flood keeps pressing for as long as it runs. The flood
 * itself does no TLS and no cryptography: its CPU cost stays small on a shared machine.
 */
import { connect, type Socket } from 'node:net';
import { Waiters } from './waiters.js';

export interface FloodOptions {
  port: number;
  /** Source addresses, e.g. 127.0.0.2 … 127.0.0.101 (all of 127/8 is loopback on Linux). */
  addresses: string[];
  perAddress: number;
  /** Wait before reopening a connection the relay closed. */
  reopenMs?: number;
}

/** A TLS handshake record header announcing 512 bytes, then bytes that look like a ClientHello. */
const CLIENT_HELLO_START = Buffer.concat([
  Buffer.from([0x16, 0x03, 0x01, 0x02, 0x00, 0x01, 0x00, 0x01, 0xfc, 0x03, 0x03]),
  Buffer.alloc(512, 0x2a),
]);
const TRICKLE_BYTES = 3;

interface Slot {
  address: string;
  trickle: boolean;
  socket: Socket | undefined;
  sent: number;
  /** Connected (or refused) at least once: the relay has seen this slot. */
  settled: boolean;
}

export class ConnectionFlood {
  private readonly slots: Slot[] = [];
  private readonly waiters = new Waiters();
  private readonly timers = new Set<NodeJS.Timeout>();
  private trickleTimer: NodeJS.Timeout | undefined;
  private stopped = false;
  /** Connections the relay (not the flood) closed. */
  closedByRelay = 0;
  opened = 0;

  constructor(private readonly options: FloodOptions) {
    for (const address of options.addresses) {
      for (let i = 0; i < options.perAddress; i++) {
        this.slots.push({ address, trickle: i % 2 === 1, socket: undefined, sent: 0, settled: false });
      }
    }
  }

  get size(): number {
    return this.slots.length;
  }

  /** Connections open right now, as the flood sees them. */
  get open(): number {
    return this.slots.filter((s) => s.socket !== undefined).length;
  }

  /** Opens every connection, `batch` at a time (so the listen backlog never overflows). */
  async start(batch = 50): Promise<void> {
    this.trickleTimer = setInterval(() => this.trickle(), 1000);
    for (let i = 0; i < this.slots.length; i += batch) {
      const part = this.slots.slice(i, i + batch);
      for (const s of part) this.openSlot(s);
      await this.waiters.until(
        () => part.every((s) => s.settled),
        30_000,
        () => `flood: ${part.filter((s) => !s.settled).length} connections of a batch never connected`,
      );
    }
  }

  /** Resolves once the relay has closed at least `n` flood connections (it has dealt with them). */
  relayClosed(n: number, timeoutMs = 30_000): Promise<void> {
    return this.waiters.until(
      () => this.closedByRelay >= n,
      timeoutMs,
      () => `flood: the relay closed only ${this.closedByRelay} of ${n} connections`,
    );
  }

  stop(): void {
    this.stopped = true;
    clearInterval(this.trickleTimer);
    for (const t of this.timers) clearTimeout(t);
    for (const s of this.slots) s.socket?.destroy();
  }

  private openSlot(slot: Slot): void {
    if (this.stopped) return;
    const socket = connect({ host: '127.0.0.1', port: this.options.port, localAddress: slot.address });
    slot.socket = socket;
    slot.sent = 0;
    this.opened++;
    socket.on('connect', () => {
      slot.settled = true;
      this.waiters.notify();
    });
    socket.on('error', () => {
      // ECONNRESET from a relay that closed at once: 'close' follows.
    });
    socket.on('close', () => {
      slot.socket = undefined;
      slot.settled = true;
      if (this.stopped) return;
      this.closedByRelay++;
      this.waiters.notify();
      const t = setTimeout(() => {
        this.timers.delete(t);
        this.openSlot(slot);
      }, this.options.reopenMs ?? 1000);
      this.timers.add(t);
    });
  }

  private trickle(): void {
    for (const s of this.slots) {
      if (!s.trickle || !s.socket || s.socket.connecting || s.socket.destroyed) continue;
      if (s.sent >= CLIENT_HELLO_START.length) continue;
      s.socket.write(CLIENT_HELLO_START.subarray(s.sent, s.sent + TRICKLE_BYTES));
      s.sent += TRICKLE_BYTES;
    }
  }
}

/** 127.0.0.2 … 127.0.0.(n+1). */
export function loopbackAddresses(n: number, first = 2): string[] {
  return Array.from({ length: n }, (_, i) => `127.0.${Math.floor((first + i) / 256)}.${(first + i) % 256}`);
}
