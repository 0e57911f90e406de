/**
 * Writes frames to the socket in the order they were submitted, although their signatures are
 * computed in parallel on the thread pool (signPssAsync). This is how a busy sender uses both cores
 * and still keeps its messages in order: sign many at once, write strictly first-in first-out.
 *
 * An entry can be cancelled until it is written (key change, lost connection); its payload goes
 * back to the caller, so a message is never both dropped and reported sent.
 */
export interface WriteEntry<M> {
  readonly meta: M;
  frame: Buffer | undefined;
  error: unknown;
  cancelled: boolean;
}

export class OrderedWriter<M> {
  private queue: WriteEntry<M>[] = [];

  constructor(
    /** Hands one finished frame to the socket. */
    private readonly write: (frame: Buffer, meta: M) => void,
    /** A signature failed: nothing after it is written until the caller decides (it never should). */
    private readonly onError: (error: unknown, meta: M) => void,
  ) {}

  get length(): number {
    return this.queue.length;
  }

  count(predicate: (meta: M) => boolean): number {
    let n = 0;
    for (const e of this.queue) if (predicate(e.meta)) n++;
    return n;
  }

  enqueue(frame: Promise<Buffer>, meta: M): void {
    const entry: WriteEntry<M> = { meta, frame: undefined, error: undefined, cancelled: false };
    this.queue.push(entry);
    frame.then(
      (f) => {
        entry.frame = f;
        this.flush();
      },
      (err: unknown) => {
        entry.error = err ?? new Error('signing failed');
        this.flush();
      },
    );
  }

  /** Removes the not-yet-written entries the predicate selects; returns their metadata in order. */
  cancel(predicate: (meta: M) => boolean): M[] {
    const out: M[] = [];
    const keep: WriteEntry<M>[] = [];
    for (const e of this.queue) {
      if (predicate(e.meta)) {
        e.cancelled = true;
        out.push(e.meta);
      } else {
        keep.push(e);
      }
    }
    this.queue = keep;
    return out;
  }

  private flush(): void {
    while (this.queue.length > 0) {
      const head = this.queue[0] as WriteEntry<M>;
      if (head.error !== undefined) {
        this.queue.shift();
        this.onError(head.error, head.meta);
        continue;
      }
      if (!head.frame) return;
      this.queue.shift();
      this.write(head.frame, head.meta);
    }
  }
}
