/**
 * Per (sender, epoch): a bound at or above every seq of that pair the history holds, so that
 * `MessageHistory.has` needs no query for a seq above it. Read from the table the first time a pair
 * is asked about, raised by every insert; rows are never renumbered, so it cannot go stale, and a
 * bound too high (an insert whose transaction rolled back) only costs a query. A sender's seqs only
 * go up, so nearly every new message is above it (one query per message was about 7% of a
 * catch-up, measured).
 */

/** Pairs kept: the map is cleared (and refilled on demand) beyond it. */
const MAX_ENTRIES = 4096;

export class SeqBounds {
  private readonly bounds = new Map<string, number>();

  /** `read`: the highest seq of the pair in the table (0: none), asked only when not known. */
  constructor(private readonly read: (from: string, epoch: number) => number) {}

  /** The bound for (from, epoch): no seq above it is held. */
  of(from: string, epoch: number): number {
    const key = `${from}\u0000${epoch}`;
    const known = this.bounds.get(key);
    if (known !== undefined) return known;
    const read = this.read(from, epoch);
    if (this.bounds.size >= MAX_ENTRIES) this.bounds.clear();
    this.bounds.set(key, read);
    return read;
  }

  /** A row of (from, epoch, seq) was inserted. */
  raise(from: string, epoch: number, seq: number): void {
    const key = `${from}\u0000${epoch}`;
    const known = this.bounds.get(key);
    if (known !== undefined && seq > known) this.bounds.set(key, seq);
  }
}
