/**
 * Publishing a roster to a relay (`securechat-x group publish`): log in as a member over the
 * client's TLS transport, upload the CA-signed roster, and wait until the relay holds that version
 * or a newer one (it sends a ROSTER: at login, or when it stores ours). Works in the relay's
 * roster-only window too (a relay holding no roster yet): that is how an empty relay is bootstrapped.
 */
import { Certificate } from '../core/pki/certificate.js';
import type { LocalIdentity } from '../core/pki/local-identity.js';
import {
  decodeBody,
  readHeader,
  sealMessageAsync,
  verifyHeader,
  type EnvelopeHeader,
} from '../core/protocol/envelope.js';
import { ProtocolError } from '../core/protocol/errors.js';
import { RosterError, verifyRoster, type Roster } from '../core/roster/index.js';
import type { RelayAddress } from './engine-types.js';
import { checkSession } from './relay-link.js';
import { FramedConnection } from './transport.js';

export type PublishErrorCode =
  /** The relay refused the roster (older than its own, a fork, another group). */
  | 'RosterRejected'
  /** The relay holds another roster of the same version: two changes were signed from one. */
  | 'RosterConflict'
  /** The relay refused this member's login or ended the session (its ERROR code is in the message). */
  | 'Refused'
  /** No link to the relay, or it closed before answering. */
  | 'Unreachable'
  /** The relay's certificate (or HELLO) failed the group's checks. */
  | 'RelayRejected'
  /** No answer within the timeout. */
  | 'Timeout';

export class PublishError extends Error {
  override readonly name = 'PublishError';
  constructor(
    readonly code: PublishErrorCode,
    message: string,
    /** The relay's ERROR code, when it sent one. */
    readonly relayCode?: string,
  ) {
    super(message);
  }
}

export interface PublishOptions {
  identity: LocalIdentity;
  relay: RelayAddress;
  /** The roster to publish, verified with the identity's CA. */
  roster: Roster;
  /** Overall deadline (default 30 s). */
  timeoutMs?: number;
}

/** Resolves with the version the relay holds once it is at least the roster's. */
export function publishRoster(options: PublishOptions): Promise<{ version: number }> {
  const { identity, roster } = options;
  const timeoutMs = options.timeoutMs ?? 30_000;
  const self = { kind: 'fingerprint' as const, fingerprint: identity.certificate.fingerprint };
  return new Promise((resolve, reject) => {
    let relay: Certificate | undefined;
    let challenge: Buffer | undefined;
    let uploaded = false;
    let settled = false;
    const finish = (result: { version: number } | PublishError): void => {
      if (settled) return;
      settled = true;
      clearTimeout(timer);
      if (result instanceof PublishError) {
        conn.destroy(result.message);
        reject(result);
        return;
      }
      // A polite goodbye; the result does not wait for it.
      void sealMessageAsync('DISCONNECT', self, '', { reason: 'roster published' }, (d) =>
        identity.signAsync(d),
      ).then(
        (frame) => {
          conn.write(frame);
          void conn.end();
        },
        () => conn.destroy('done'),
      );
      resolve(result);
    };
    const upload = (): void => {
      if (uploaded || !challenge) return;
      uploaded = true;
      conn.write(roster.bytes);
    };
    const onRoster = (frame: Buffer): void => {
      let held: Roster;
      try {
        held = verifyRoster(frame, identity.ca);
      } catch (err) {
        if (!(err instanceof RosterError)) throw err;
        // Not the group's roster: the relay is not ours to trust on this; keep waiting for an answer.
        return;
      }
      if (held.version > roster.version) finish({ version: held.version });
      else if (held.version === roster.version) {
        finish(
          held.sameBytes(roster)
            ? { version: held.version }
            : new PublishError(
                'RosterConflict',
                `the relay holds another roster v${held.version}: two changes were signed from one version (RosterConflict)`,
              ),
        );
      } else upload();
    };
    const onRelayFrame = (header: EnvelopeHeader): void => {
      if (header.type === 'HELLO') {
        onHello(header);
        return;
      }
      if (!relay) return;
      const fromRelay =
        header.sender.kind === 'fingerprint' ? header.sender.fingerprint.equals(relay.fingerprint) : false;
      if (!fromRelay) return;
      verifyHeader(header, relay.publicKey);
      if (header.type === 'ERROR') {
        const body = decodeBody('ERROR', header.body);
        checkSession('ERROR', body.session, challenge);
        if (body.code === 'NoRoster' && !body.fatal) {
          upload();
        } else if (body.code === 'RosterRejected') {
          finish(
            new PublishError('RosterRejected', `the relay refused the roster: ${body.message}`, body.code),
          );
        } else if (body.fatal) {
          finish(new PublishError('Refused', `the relay refused: ${body.code}: ${body.message}`, body.code));
        }
      } else if (header.type === 'PRESENCE') {
        // Logged in, and the relay's roster (sent before PRESENCE) was not as new as ours.
        upload();
      }
    };
    const onHello = (header: EnvelopeHeader): void => {
      if (relay || header.sender.kind !== 'certificate') return;
      let cert: Certificate;
      try {
        cert = identity.validator.validate(Certificate.fromDer(header.sender.der), { role: 'relay' });
        verifyHeader(header, cert.publicKey);
      } catch (err) {
        finish(new PublishError('RelayRejected', `relay certificate refused: ${(err as Error).message}`));
        return;
      }
      const body = decodeBody('HELLO', header.body);
      if (body.relay !== cert.name) {
        finish(
          new PublishError('RelayRejected', `HELLO names "${body.relay}" but is signed by "${cert.name}"`),
        );
        return;
      }
      relay = cert;
      challenge = body.challenge;
      conn.peerMaxFrameBytes = body.maxFrameBytes;
      void sealMessageAsync(
        'CONNECTION',
        { kind: 'certificate', der: identity.certificate.der },
        '',
        { challenge: body.challenge, relayFingerprint: cert.fingerprintHex },
        (d) => identity.signAsync(d),
      ).then(
        (frame) => conn.write(frame),
        (err: unknown) => finish(new PublishError('Refused', `signing CONNECTION failed: ${String(err)}`)),
      );
    };
    const conn = new FramedConnection(options.relay.host, options.relay.port, identity, {
      onConnect: () => undefined,
      onFrame: (frame) => {
        if (settled) return;
        try {
          const header = readHeader(frame);
          if (header.type === 'ROSTER') onRoster(frame);
          else onRelayFrame(header);
        } catch (err) {
          // One bad frame is not an answer; the deadline bounds the wait.
          if (!(err instanceof ProtocolError)) throw err;
        }
      },
      onClose: (reason, relayRefused) =>
        finish(
          new PublishError(
            relayRefused ? 'RelayRejected' : 'Unreachable',
            `${options.relay.host}:${options.relay.port}: ${reason}`,
          ),
        ),
      onDrain: () => undefined,
    });
    const timer = setTimeout(
      () =>
        finish(
          new PublishError(
            'Timeout',
            `the relay did not confirm roster v${roster.version} within ${timeoutMs} ms`,
          ),
        ),
      timeoutMs,
    );
  });
}
