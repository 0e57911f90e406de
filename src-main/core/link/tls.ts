/**
 * The member↔relay link: TLS 1.3 only, mutual certificate authentication against the group CA.
 *
 * Why TLS under a protocol whose frames are already signed: without it a network observer sees
 * every member and relay name, every certificate, who talks to whom and exact message lengths, and
 * can inject relay-signed frames recorded from another session. With it the observer sees a TLS
 * stream to the relay's address and nothing else.
 *
 * Policy (one place, for both sides):
 * - TLS 1.3 only, and only the AEAD suites with 256-bit keys (AES-256-GCM, ChaCha20-Poly1305).
 * - The relay presents its relay certificate (serverAuth) and requires a member certificate
 *   (clientAuth); the group CA is the only trust anchor. The member's side has OpenSSL check the
 *   relay's chain and purpose, then the group validator; the relay's side decides with the group
 *   validator alone (issuer signature, validity, key usage, role, key size) once the handshake has
 *   proved the client holds the key: a server socket wrapped by hand leaves OpenSSL's verdict to
 *   its owner. Either way nothing of the protocol is read before that check.
 * - No hostname check: relay certificates name a relay identity, not a DNS name; what matters is
 *   that the peer is the group's relay, which the validator decides.
 * - No session resumption: every connection is a full handshake with a fresh certificate check.
 */
import { constants as cryptoConstants } from 'node:crypto';
import type { Socket } from 'node:net';
import {
  connect as tlsConnect,
  createSecureContext,
  TLSSocket,
  type PeerCertificate,
  type SecureContext,
} from 'node:tls';
import { Certificate } from '../pki/certificate.js';
import type { CertificateValidator } from '../pki/validate.js';

export const TLS_VERSION = 'TLSv1.3';
export const TLS_CIPHER_SUITES = 'TLS_AES_256_GCM_SHA384:TLS_CHACHA20_POLY1305_SHA256';

/** The key, certificate and CA of one identity, as TLS wants them (kept inside LocalIdentity). */
export interface TlsCredentials {
  keyPem: string;
  certPem: string;
  caPem: string;
}

/** A secure context with the group's policy; the private key goes into OpenSSL and nowhere else. */
export function groupSecureContext(credentials: TlsCredentials): SecureContext {
  return createSecureContext({
    key: credentials.keyPem,
    cert: credentials.certPem,
    ca: credentials.caPem,
    minVersion: TLS_VERSION,
    maxVersion: TLS_VERSION,
    ciphers: TLS_CIPHER_SUITES,
    // Stateless tickets would let a later connection skip the certificate check.
    secureOptions: cryptoConstants.SSL_OP_NO_TICKET,
  });
}

/**
 * Wraps an accepted TCP socket as the relay side of the link. The handshake requires a client
 * certificate (none: the handshake fails); the caller must check it with the group validator on
 * 'secure' (peerCertificate) before reading anything, and owns the handshake deadline.
 */
export function acceptLink(raw: Socket, context: SecureContext): TLSSocket {
  return new TLSSocket(raw, {
    isServer: true,
    secureContext: context,
    requestCert: true,
    rejectUnauthorized: true,
  });
}

/** The certificate the peer presented on an established TLS socket, as one of ours. */
export function peerCertificate(socket: TLSSocket): Certificate | undefined {
  const peer: PeerCertificate | Record<string, never> | null = socket.getPeerCertificate(false);
  if (!peer || !('raw' in peer) || !Buffer.isBuffer(peer.raw)) return undefined;
  try {
    return Certificate.fromDer(peer.raw);
  } catch {
    return undefined;
  }
}

export interface LinkConnectOptions {
  host: string;
  port: number;
  /** An already connected TCP socket to run the link over (tests reset it from below). */
  socket?: Socket;
  context: SecureContext;
  /** Checks the relay's certificate with the group's rules; throws to refuse it. */
  validator: CertificateValidator;
}

/**
 * Opens the member side of the link. The returned socket emits 'secureConnect' once the relay's
 * certificate passed both OpenSSL's chain check and the group validator (role relay).
 */
export function connectLink(options: LinkConnectOptions): TLSSocket {
  return tlsConnect({
    host: options.host,
    port: options.port,
    ...(options.socket ? { socket: options.socket } : {}),
    secureContext: options.context,
    rejectUnauthorized: true,
    // An IP literal never goes into SNI; a host name would be visible anyway (DNS, the address).
    checkServerIdentity: (_host, cert) => {
      try {
        options.validator.validate(Certificate.fromDer(cert.raw), { role: 'relay' });
        return undefined;
      } catch (err) {
        return err instanceof Error ? err : new Error(String(err));
      }
    },
  });
}
