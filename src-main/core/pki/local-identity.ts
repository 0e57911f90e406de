/**
 * The participant's own identity: certificate, group CA and the private key, which never leaves
 * this object. Callers get operations (sign, decrypt, open an envelope), never key material.
 */
import { createPrivateKey, type KeyObject } from 'node:crypto';
import type { SecureContext } from 'node:tls';
import { groupSecureContext } from '../link/tls.js';
import { openEnvelope, type DigitalEnvelope } from '../crypto/digital-envelope.js';
import { oaepDecrypt, signPss, signPssAsync } from '../crypto/primitives.js';
import { readBundle, type LoadedBundle } from './bundle.js';
import type { Certificate } from './certificate.js';
import { PkiError } from './errors.js';
import { CertificateValidator } from './validate.js';

export class LocalIdentity {
  readonly #privateKey: KeyObject;
  #linkContext: SecureContext | undefined;
  readonly validator: CertificateValidator;

  private constructor(
    readonly certificate: Certificate,
    readonly ca: Certificate,
    privateKeyPem: string,
  ) {
    this.#privateKey = createPrivateKey(privateKeyPem);
    this.validator = new CertificateValidator(ca);
  }

  static fromBundle(loaded: LoadedBundle, role?: 'member' | 'relay'): LocalIdentity {
    if (role === 'member' && !loaded.certificate.clientAuth) {
      throw new PkiError('WrongRole', `"${loaded.certificate.name}" is not a member bundle`);
    }
    if (role === 'relay' && !loaded.certificate.serverAuth) {
      throw new PkiError('WrongRole', `"${loaded.certificate.name}" is not a relay bundle`);
    }
    return new LocalIdentity(loaded.certificate, loaded.ca, loaded.privateKeyPem);
  }

  static fromBundleFile(data: Uint8Array, password: string, role?: 'member' | 'relay'): LocalIdentity {
    return LocalIdentity.fromBundle(readBundle(data, password), role);
  }

  get name(): string {
    return this.certificate.name;
  }

  /** The group is identified by its CA certificate. */
  get groupId(): string {
    return this.ca.fingerprintHex;
  }

  sign(data: Uint8Array): Buffer {
    return signPss(this.#privateKey, data);
  }

  signAsync(data: Uint8Array): Promise<Buffer> {
    return signPssAsync(this.#privateKey, data);
  }

  decrypt(ciphertext: Uint8Array, label?: Uint8Array): Buffer {
    return oaepDecrypt(this.#privateKey, ciphertext, label);
  }

  openEnvelope(envelope: DigitalEnvelope, aad: Uint8Array): Buffer {
    return openEnvelope(this.#privateKey, envelope, aad);
  }

  /**
   * The TLS context of the member↔relay link: this certificate, the group CA as the only trust
   * anchor, and the key, which goes into OpenSSL and is not readable back out of the context.
   */
  get linkContext(): SecureContext {
    this.#linkContext ??= groupSecureContext({
      keyPem: this.#privateKey.export({ type: 'pkcs8', format: 'pem' }).toString(),
      certPem: this.certificate.pem,
      caPem: this.ca.pem,
    });
    return this.#linkContext;
  }

  /** Keeps the key out of logs and accidental JSON. */
  toJSON(): { name: string; fingerprint: string } {
    return { name: this.name, fingerprint: this.certificate.fingerprintHex };
  }
}
