export * from './errors.js';
export * from './limits.js';
export type { PresenceMember } from './relay-frames.js';
export * from './server.js';
export { NO_ROSTER_MESSAGE } from './roster-gate.js';
export { RelayRosterError, ROSTER_META_KEY } from './roster-keeper.js';
