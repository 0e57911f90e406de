export * from './bundle.js';
export * from './certificate.js';
export * from './errors.js';
export * from './fingerprint.js';
export * from './identity-name.js';
export * from './issue.js';
export * from './local-identity.js';
export * from './validate.js';
