/**
 * Own lines written but not yet STORED by the relay, by epoch/seq: the relay's ack names those,
 * not the line. Bounded: past MAX_AWAITING_ACK the oldest are forgotten and stay "sending" (a
 * relay that never acks must not grow the app's memory).
 */

/** Own messages awaiting the relay's ack that are tracked. */
export const MAX_AWAITING_ACK = 4096;

export class AwaitingAcks {
  readonly #lines = new Map<string, string>();

  /** The own line `lineId` went out as epoch/seq. */
  wrote(epoch: number, seq: number, lineId: string): void {
    this.#lines.set(`${epoch}:${seq}`, lineId);
    if (this.#lines.size > MAX_AWAITING_ACK) this.#lines.delete(this.#lines.keys().next().value as string);
  }

  /** The relay stored epoch/seq: the line it was, if still tracked (then no longer). */
  stored(epoch: number, seq: number): string | undefined {
    const key = `${epoch}:${seq}`;
    const id = this.#lines.get(key);
    this.#lines.delete(key);
    return id;
  }
}
