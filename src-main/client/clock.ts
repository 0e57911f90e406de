/**
 * Time as the engine sees it: wall-clock and monotonic readings and timers, injected so that
 * timer behaviour (auth timeout, backoff, key-establishment timeouts, heartbeats) is tested with
 * fake time in milliseconds rather than by waiting.
 */
export type TimerHandle = { readonly id: number };

export interface Clock {
  /** ms since the Unix epoch (message timestamps, rate limits). */
  now(): number;
  /** Monotonic ms (durations: heartbeats, held frames). */
  monotonic(): number;
  setTimeout(fn: () => void, ms: number): TimerHandle;
  setInterval(fn: () => void, ms: number): TimerHandle;
  /** Cancels either kind; undefined and spent handles are ignored. */
  clear(handle: TimerHandle | undefined): void;
}

/** The real clock: Date.now, performance.now and Node's timers. */
export function systemClock(): Clock {
  let next = 1;
  const live = new Map<number, { timer: NodeJS.Timeout; repeat: boolean }>();
  const add = (timer: NodeJS.Timeout, repeat: boolean): TimerHandle => {
    const id = next++;
    live.set(id, { timer, repeat });
    return { id };
  };
  return {
    now: () => Date.now(),
    monotonic: () => performance.now(),
    setTimeout(fn, ms) {
      const handle: TimerHandle = add(
        setTimeout(() => {
          live.delete(handle.id);
          fn();
        }, ms),
        false,
      );
      return handle;
    },
    setInterval(fn, ms) {
      return add(setInterval(fn, ms), true);
    },
    clear(handle) {
      if (!handle) return;
      const t = live.get(handle.id);
      if (!t) return;
      live.delete(handle.id);
      if (t.repeat) clearInterval(t.timer);
      else clearTimeout(t.timer);
    },
  };
}

/**
 * A clock that moves only when told (tests): `advance(ms)` runs every timer that falls due, in
 * time order, with `now()` reading each timer's due time while it runs.
 */
export class ManualClock implements Clock {
  private at: number;
  private nextId = 1;
  private readonly timers = new Map<number, { due: number; fn: () => void; every?: number }>();

  constructor(start = 1_700_000_000_000) {
    this.at = start;
  }

  now(): number {
    return this.at;
  }

  monotonic(): number {
    return this.at;
  }

  setTimeout(fn: () => void, ms: number): TimerHandle {
    const id = this.nextId++;
    this.timers.set(id, { due: this.at + Math.max(0, ms), fn });
    return { id };
  }

  setInterval(fn: () => void, ms: number): TimerHandle {
    const every = Math.max(1, ms);
    const id = this.nextId++;
    this.timers.set(id, { due: this.at + every, fn, every });
    return { id };
  }

  clear(handle: TimerHandle | undefined): void {
    if (handle) this.timers.delete(handle.id);
  }

  /** Timers waiting to fire. */
  get pending(): number {
    return this.timers.size;
  }

  /** Ms until the next timer is due, or undefined when none is set. */
  get nextDueIn(): number | undefined {
    let min: number | undefined;
    for (const t of this.timers.values()) min = min === undefined ? t.due : Math.min(min, t.due);
    return min === undefined ? undefined : min - this.at;
  }

  advance(ms: number): void {
    const until = this.at + ms;
    for (;;) {
      let id: number | undefined;
      let due = Infinity;
      for (const [k, t] of this.timers) {
        if (t.due <= until && (t.due < due || (t.due === due && k < (id ?? Infinity)))) {
          id = k;
          due = t.due;
        }
      }
      if (id === undefined) break;
      const t = this.timers.get(id) as { due: number; fn: () => void; every?: number };
      this.at = t.due;
      if (t.every !== undefined) t.due += t.every;
      else this.timers.delete(id);
      t.fn();
    }
    this.at = until;
  }
}
