export * from './errors.js';
export * from './limits.js';
export type { PresenceMember } from './relay-frames.js';
export * from './server.js';
