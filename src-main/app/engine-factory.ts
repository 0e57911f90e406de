/**
 * The one place that knows the concrete chat engine. Everything else codes against
 * ChatEngineApi (engine-types.ts).
 */
import { ChatEngine, type ChatEngineOptions } from '../client/engine.js';
import type { EngineFactory } from './ports.js';

/**
 * Options other than identity, relay and the session's state (tests shorten timeouts; the app
 * uses the defaults). The state stores come from the service per connect, never from tuning.
 */
export type EngineTuning = Omit<
  ChatEngineOptions,
  'identity' | 'relay' | 'epochStore' | 'history' | 'rosterStore' | 'prekeyStore' | 'unsafeTestHooks'
>;

export function defaultEngineFactory(tuning: EngineTuning = {}): EngineFactory {
  return (identity, relays, session) =>
    new ChatEngine({
      ...tuning,
      identity,
      relay: relays,
      epochStore: session.epochStore,
      ...(session.history ? { history: session.history } : {}),
      ...(session.rosterStore ? { rosterStore: session.rosterStore } : {}),
      ...(session.prekeyStore ? { prekeyStore: session.prekeyStore } : {}),
    });
}
