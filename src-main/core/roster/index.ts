export * from './change.js';
export * from './errors.js';
export { Roster, type RemovedEntry, type RosterBody, type RosterEntry } from './roster.js';
export { buildRoster, signRoster, type NewRoster } from './sign.js';
export { MAX_ROSTER_BYTES, ROSTER_FILE, rosterSigner, verifyRoster } from './verify.js';
