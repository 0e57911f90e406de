/**
 * The one place that knows the concrete chat engine. Everything else codes against
 * ChatEngineApi (engine-types.ts).
 */
import { ChatEngine, type ChatEngineOptions } from '../client/engine.js';
import type { EngineFactory } from './ports.js';

/** Options other than identity and relay (tests shorten timeouts; the app uses the defaults). */
export type EngineTuning = Omit<ChatEngineOptions, 'identity' | 'relay' | 'unsafeTestHooks'>;

export function defaultEngineFactory(tuning: EngineTuning = {}): EngineFactory {
  return (identity, relay) => new ChatEngine({ ...tuning, identity, relay });
}
