/**
 * Promises that resolve once a condition over an event log holds: `notify()` after every new
 * event re-checks them; each rejects after its timeout with a message that shows what was seen.
 */
export class Waiters {
  private readonly checks = new Set<() => void>();

  notify(): void {
    for (const check of this.checks) check();
  }

  until(condition: () => boolean, timeoutMs: number, describeTimeout: () => string): Promise<void> {
    return new Promise((resolve, reject) => {
      const check = () => {
        if (condition()) {
          clearTimeout(timer);
          this.checks.delete(check);
          resolve();
        }
      };
      const timer = setTimeout(() => {
        this.checks.delete(check);
        reject(new Error(describeTimeout()));
      }, timeoutMs);
      this.checks.add(check);
      check();
    });
  }
}
