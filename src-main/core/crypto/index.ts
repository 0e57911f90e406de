export * from './digital-envelope.js';
export * from './errors.js';
export * from './primitives.js';
