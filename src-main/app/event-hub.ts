/**
 * The service's events for the window (`scx:event`): every part of the service emits through one
 * hub; the shell and the browser tests register listeners with AppService.on().
 */
import type { AppEvent, AppEventListener } from '../../src-shared/ipc-contract.js';

export class EventHub {
  readonly #listeners = new Set<AppEventListener>();

  on(listener: AppEventListener): () => void {
    this.#listeners.add(listener);
    return () => this.#listeners.delete(listener);
  }

  emit(event: AppEvent): void {
    for (const listener of [...this.#listeners]) {
      try {
        listener(event);
      } catch {
        // A broken listener (closed window) must not stop the others.
      }
    }
  }

  clear(): void {
    this.#listeners.clear();
  }
}
