/**
 * CONNECTION checking: the member certificate against the group CA (role member), then the
 * signature with that certificate's key (verify before parse), then the body: the challenge must
 * be this connection's HELLO challenge and the relay fingerprint our own.
 */
import { timingSafeEqual } from 'node:crypto';
import type { Certificate } from '../core/pki/certificate.js';
import { PkiError } from '../core/pki/errors.js';
import type { LocalIdentity } from '../core/pki/local-identity.js';
import { decodeBody, ProtocolError, verifyHeader, type EnvelopeHeader } from '../core/protocol/index.js';
import { RelayRefusal } from './errors.js';

export function authenticate(
  header: EnvelopeHeader,
  challenge: Buffer,
  identity: LocalIdentity,
): Certificate {
  if (header.type !== 'CONNECTION') {
    throw new RelayRefusal('NotAuthenticated', `${header.type} before authentication: send CONNECTION first`);
  }
  if (header.sender.kind !== 'certificate') {
    throw new RelayRefusal('AuthFailed', 'CONNECTION must carry the member certificate, not a fingerprint');
  }
  if (header.target.length > 0) throw new RelayRefusal('AuthFailed', 'CONNECTION must not name a target');
  let cert: Certificate;
  try {
    cert = identity.validator.validateDer(header.sender.der, { role: 'member' });
  } catch (err) {
    if (err instanceof PkiError) {
      throw new RelayRefusal('CertificateRejected', `certificate refused: ${err.message} (${err.code})`);
    }
    throw err;
  }
  try {
    verifyHeader(header, cert.publicKey);
  } catch (err) {
    if (err instanceof ProtocolError) {
      throw new RelayRefusal(
        'AuthFailed',
        'CONNECTION signature does not verify with the presented certificate',
      );
    }
    throw err;
  }
  let body;
  try {
    body = decodeBody('CONNECTION', header.body);
  } catch (err) {
    if (err instanceof ProtocolError) throw new RelayRefusal('SchemaViolation', err.message);
    throw err;
  }
  if (body.challenge.length !== challenge.length || !timingSafeEqual(body.challenge, challenge)) {
    throw new RelayRefusal(
      'AuthFailed',
      'CONNECTION does not answer this connection’s challenge (replayed?)',
    );
  }
  if (body.relayFingerprint !== identity.certificate.fingerprintHex) {
    throw new RelayRefusal('AuthFailed', 'CONNECTION names another relay’s certificate');
  }
  return cert;
}
