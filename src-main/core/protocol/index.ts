export * from './envelope.js';
export * from './errors.js';
export * from './framing.js';
export * from './json-body.js';
export * from './message-types.js';
export * from './schemas.js';
export * from './link-frames.js';
