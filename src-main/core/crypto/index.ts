export * from './digital-envelope.js';
export * from './errors.js';
// Named, not `export *`: hpke.ts's *ForTesting functions (fixed ephemeral keys) stay out of reach.
export {
  HPKE_AEAD_ID,
  HPKE_ENC_BYTES,
  HPKE_KDF_ID,
  HPKE_KEM_ID,
  HPKE_MAX_EXPORTER_CONTEXT_BYTES,
  HPKE_MAX_EXPORT_BYTES,
  HPKE_MAX_INFO_BYTES,
  HPKE_MODE_BASE,
  HpkeRecipientContext,
  HpkeSenderContext,
  X25519_KEY_BYTES,
  deriveX25519KeyPair,
  generatePrekeyPair,
  hpkeOpen,
  hpkeSeal,
  setupBaseR,
  setupBaseS,
  x25519PublicKeyOf,
  type HpkeKeySchedule,
  type HpkeSealed,
  type PrekeyPair,
} from './hpke.js';
export * from './primitives.js';
