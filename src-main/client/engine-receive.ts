/**
 * Frame dispatch: every frame from the relay is checked (docs/client.md, "What is checked on
 * receive") and handed to the part it concerns. Every reject is an `error` event and the session
 * goes on; what ends a session is told to the state machine (`refused`) and the link is closed.
 */
import { Certificate } from '../core/pki/certificate.js';
import {
  decodeBody,
  readHeader,
  sealMessageAsync,
  verifyHeader,
  type EnvelopeHeader,
} from '../core/protocol/envelope.js';
import { ProtocolError } from '../core/protocol/errors.js';
import { decodeLinkFrame, isLinkFrame } from '../core/protocol/link-frames.js';
import { RELAY_TYPES, TARGETED_TYPES } from '../core/protocol/message-types.js';
import type { BodyOf } from '../core/protocol/schemas.js';
import { decodeChatPlaintext } from './chat-codec.js';
import type { EngineParts, Session } from './engine-core.js';
import type { HeldFrames } from './engine-held.js';
import type { GroupView } from './engine-presence.js';
import type { SendPipeline } from './engine-send.js';
import type { ClientErrorCode } from './errors.js';
import { checkSession, checkSessionListed, classifyRelayError } from './relay-link.js';

export class FrameReceiver {
  constructor(
    private readonly p: EngineParts,
    private readonly send: SendPipeline,
    private readonly held: HeldFrames,
    private readonly group: GroupView,
  ) {}

  onFrame(session: Session, frame: Buffer): void {
    if (isLinkFrame(frame)) this.onLinkFrame(session, frame);
    else this.onEnvelope(session, frame);
  }

  /** DELIVERED / STORED / LIVE: only on a session that sent SYNC (protocol v2, link frames). */
  private onLinkFrame(session: Session, frame: Buffer): void {
    const follower = this.p.follower;
    try {
      if (!follower || !session.synced) throw new ProtocolError('BadFrame', 'a link frame before SYNC');
      session.linkFramesSeen = true;
      const link = decodeLinkFrame(frame);
      switch (link.kind) {
        case 'DELIVERED':
          follower.delivered(link.offset, () => {
            const header = readHeader(link.envelope);
            if (RELAY_TYPES.has(header.type)) {
              throw new ProtocolError('BadFrame', 'a relay frame inside DELIVERED');
            }
            this.onEnvelope(session, link.envelope, header);
          });
          return;
        case 'STORED':
          follower.stored(link.acks);
          return;
        case 'LIVE':
          follower.live(link.head);
          session.caughtUp = true;
          this.group.caughtUp(session);
          return;
      }
    } catch (err) {
      if (err instanceof ProtocolError) this.p.host.emitError(err.code, `link frame refused: ${err.message}`);
      else this.p.host.emitError('BadFrame', `link frame refused: ${(err as Error).message}`);
    }
  }

  /** `read`: the frame's header, when the caller has read it already (once per frame is enough). */
  onEnvelope(session: Session, frame: Buffer, read?: EnvelopeHeader): void {
    let header: EnvelopeHeader;
    try {
      header = read ?? readHeader(frame);
    } catch (err) {
      this.p.host.emitError('BadFrame', `frame from the relay refused: ${(err as Error).message}`);
      return;
    }
    try {
      // HEARTBEAT travels member ↔ relay only (never forwarded), so one that arrives is the relay's.
      if (header.type === 'ROSTER') this.group.onRosterFrame(session, frame);
      else if (RELAY_TYPES.has(header.type) || header.type === 'HEARTBEAT')
        this.onRelayFrame(session, header);
      else this.onMemberFrame(header, frame);
    } catch (err) {
      // Verify-then-parse failures and anything a handler throws: one frame refused, session goes on.
      if (err instanceof ProtocolError) this.p.host.emitError(err.code, err.message);
      else this.p.host.emitError('BadFrame', `frame ${header.type} refused: ${(err as Error).message}`);
    }
  }

  private onRelayFrame(session: Session, header: EnvelopeHeader): void {
    if (header.type === 'HELLO') {
      this.onHello(session, header);
      return;
    }
    const relay = session.relay;
    if (!relay) throw new ProtocolError('UnknownSender', `${header.type} arrived before HELLO`);
    const fromRelay =
      header.sender.kind === 'fingerprint'
        ? header.sender.fingerprint.equals(relay.fingerprint)
        : header.sender.der.equals(relay.der);
    if (!fromRelay) throw new ProtocolError('UnknownSender', `${header.type} not sent by the relay`);
    verifyHeader(header, relay.publicKey);
    switch (header.type) {
      case 'PRESENCE': {
        const body = decodeBody('PRESENCE', header.body);
        checkSessionListed(body.sessions, session.challenge);
        this.group.onPresence(session, body);
        return;
      }
      case 'CERT_RESPONSE': {
        const body = decodeBody('CERT_RESPONSE', header.body);
        checkSession('CERT_RESPONSE', body.session, session.challenge);
        this.group.onCertResponse(session, body);
        return;
      }
      case 'ERROR': {
        const body = decodeBody('ERROR', header.body);
        checkSession('ERROR', body.session, session.challenge);
        this.onRelayError(session, body);
        return;
      }
      case 'HEARTBEAT':
        checkSession('HEARTBEAT', decodeBody('HEARTBEAT', header.body).session, session.challenge);
        return;
      case 'PREKEYS': {
        const body = decodeBody('PREKEYS', header.body);
        checkSession('PREKEYS', body.session, session.challenge);
        this.p.prekeys?.onPrekeys(body);
        return;
      }
      case 'GAP': {
        const body = decodeBody('GAP', header.body);
        checkSession('GAP', body.session, session.challenge);
        if (!session.synced) throw new ProtocolError('BadFrame', 'GAP before SYNC');
        this.p.follower?.gap(body);
        return;
      }
    }
  }

  /**
   * We refuse this relay (its certificate): once the link has closed the machine goes on to another
   * of the member's relay addresses, or fails the link when none is left.
   */
  private fail(session: Session, code: ClientErrorCode, reason: string): void {
    this.p.host.dispatch({ type: 'refused', reason, terminal: true, scope: 'relay' });
    this.p.host.emitError(code, reason);
    session.link.destroy(reason);
  }

  private onHello(session: Session, header: EnvelopeHeader): void {
    const { identity, selfRef, host } = this.p;
    if (session.relay) throw new ProtocolError('BadFrame', 'a second HELLO');
    if (header.sender.kind !== 'certificate') {
      this.fail(session, 'RelayCertificateRejected', 'HELLO did not carry the relay certificate');
      return;
    }
    let relay: Certificate;
    try {
      relay = identity.validator.validate(Certificate.fromDer(header.sender.der), { role: 'relay' });
    } catch (err) {
      // A relay from another group (or not a relay at all): talking to it again will not help.
      this.fail(session, 'RelayCertificateRejected', `relay certificate refused: ${(err as Error).message}`);
      return;
    }
    try {
      verifyHeader(header, relay.publicKey);
    } catch {
      this.fail(
        session,
        'RelayCertificateRejected',
        'HELLO signature does not verify with the relay certificate',
      );
      return;
    }
    const body = decodeBody('HELLO', header.body);
    if (body.relay !== relay.name) {
      this.fail(
        session,
        'RelayCertificateRejected',
        `HELLO names "${body.relay}" but is signed by "${relay.name}"`,
      );
      return;
    }
    // Before CONNECTION: an unlisted relay (a node the organiser never added, or one removed) does
    // not even learn who we are. Without a roster yet, any relay of the group CA is taken.
    const roster = this.p.handshake.heldRoster;
    if (roster && !roster.isRelay(relay.fingerprintHex)) {
      this.fail(session, 'RelayNotInRoster', relayNotListed(relay.name, roster.version));
      return;
    }
    session.relay = relay;
    session.challenge = body.challenge;
    if (body.streamId !== undefined) session.streamId = body.streamId;
    session.link.peerMaxFrameBytes = body.maxFrameBytes;
    void sealMessageAsync('HEARTBEAT', selfRef, '', { session: body.challenge }, (d) =>
      identity.signAsync(d),
    ).then(
      (frame) => (session.heartbeatFrame = frame),
      (err: unknown) => host.emitError('SignFailed', `signing HEARTBEAT failed: ${String(err)}`),
    );
    // CONNECTION carries the full certificate: the relay does not know us yet.
    this.send.signed(
      sealMessageAsync(
        'CONNECTION',
        { kind: 'certificate', der: identity.certificate.der },
        '',
        { challenge: body.challenge, relayFingerprint: relay.fingerprintHex },
        (d) => identity.signAsync(d),
      ),
      'CONNECTION',
    );
  }

  private onRelayError(session: Session, body: BodyOf<'ERROR'>): void {
    const { host } = this.p;
    const loggedIn = host.machine.link.phase === 'online' || host.machine.link.phase === 'leaving';
    const verdict = classifyRelayError(body, loggedIn);
    const reason = `${body.code}: ${body.message}`;
    // A spent budget (RateLimited) is never terminal: come back when the relay said, not sooner.
    if (verdict.kind === 'terminal' || body.retryAfterMs !== undefined) {
      host.dispatch({
        type: 'refused',
        reason,
        terminal: verdict.kind === 'terminal',
        ...(body.retryAfterMs !== undefined ? { retryAfterMs: body.retryAfterMs } : {}),
      });
    }
    host.emitError(body.code, `relay: ${body.message}`);
    if (body.code === 'NoRoster' && !body.fatal) {
      this.group.uploadRoster(session);
      host.dispatch({ type: 'no-roster' });
    }
    // The relay closes after a fatal ERROR anyway; closing first saves waiting for it.
    if (verdict.kind !== 'report') session.link.destroy(reason);
  }

  private onMemberFrame(header: EnvelopeHeader, frame: Buffer): void {
    const { directory, handshake, identity } = this.p;
    if (header.sender.kind !== 'fingerprint') {
      throw new ProtocolError('BadFrame', `${header.type} from a member must name its sender by fingerprint`);
    }
    const fingerprint = header.sender.fingerprint.toString('hex');
    const cert = directory.byFingerprintHex(fingerprint);
    if (!cert) {
      if (directory.isPending(fingerprint)) {
        this.held.holdForCertificate(fingerprint, frame);
        return;
      }
      throw new ProtocolError(
        'UnknownSender',
        `${header.type} from a certificate this member has not validated`,
      );
    }
    if (TARGETED_TYPES.has(header.type) ? header.target !== identity.name : header.target !== '') {
      throw new ProtocolError('BadFrame', `${header.type} addressed to "${header.target}"`);
    }
    verifyHeader(header, cert.publicKey);
    const sender = cert.name;
    // A logged frame outside DELIVERED, from a relay that keeps a log, before the relay answered our
    // SYNC: it reached us before the relay took the SYNC (it sends a session that has not synced
    // bare frames). The replay brings it again, in log order: taken now it would jump ahead of the
    // frames before it, whose sequence numbers the window would then refuse as replays. (Found by
    // the relay kill -9 benchmark.) Once the relay speaks link frames, anything bare is checked.
    const { follower } = this.p;
    const session = this.p.host.session;
    if (
      (header.type === 'ENCRYPTED_TEXT' || header.type === 'KEY_DISTRIBUTION') &&
      follower !== undefined &&
      session?.streamId !== undefined &&
      !session.linkFramesSeen &&
      !follower.fromLog
    ) {
      return;
    }
    switch (header.type) {
      case 'ENCRYPTED_TEXT':
        this.onChat(sender, decodeBody('ENCRYPTED_TEXT', header.body));
        return;
      case 'NONCE_REQUEST':
        handshake.onNonceRequest(sender, decodeBody('NONCE_REQUEST', header.body));
        return;
      case 'NONCE_RESPONSE':
        handshake.onNonceResponse(sender, decodeBody('NONCE_RESPONSE', header.body));
        return;
      case 'KEY_DISTRIBUTION':
        handshake.onKeyDistribution(sender, decodeBody('KEY_DISTRIBUTION', header.body));
        return;
      case 'REKEY_REQUEST':
        handshake.onRekeyRequest(sender, decodeBody('REKEY_REQUEST', header.body));
        return;
      case 'DISCONNECT':
        decodeBody('DISCONNECT', header.body); // the PRESENCE that follows tells who is left
        return;
      case 'PREKEY':
        this.p.prekeys?.onPrekey(sender, decodeBody('PREKEY', header.body));
        return;
      case 'CONNECTION':
      case 'CERT_REQUEST':
        throw new ProtocolError('UnknownType', `${header.type} is not for members`);
    }
  }

  onChat(sender: string, body: BodyOf<'ENCRYPTED_TEXT'>): void {
    const { follower, keyring, handshake, host } = this.p;
    // From the log, under an epoch this member never held: not for it.
    if (
      follower?.inReplay &&
      !keyring.knows(body.epoch) &&
      !follower.isDuplicate(sender, body.epoch, body.seq)
    ) {
      follower.skipUnreadable();
      return;
    }
    const current = keyring.currentEpoch ?? 0;
    if (!keyring.knows(body.epoch) && body.epoch > current && body.epoch <= handshake.highestEpochSeen + 1) {
      // Another member got the new key a moment before us; keep it until ours arrives.
      this.held.holdForKey(sender, body);
      return;
    }
    // Delivered twice (a replay after a crash, a resend after a lost acknowledgement): shown once.
    if (follower?.isDuplicate(sender, body.epoch, body.seq)) return;
    const opened = keyring.open(body.epoch, sender, body.seq, body.iv, body.ciphertext);
    if (!opened.ok) {
      host.emitError(opened.code, `message from ${sender} refused: ${opened.message}`);
      if (opened.code === 'UnknownEpoch') handshake.onUnknownEpoch(body.epoch);
      return;
    }
    this.send.countMessage(body.epoch);
    const plain = decodeChatPlaintext(opened.plaintext);
    const message = {
      from: sender,
      text: plain.text,
      epoch: body.epoch,
      seq: body.seq,
      sentAt: plain.sentAt,
    };
    // With a history, shown once stored (LogFollower.shown); without, at once.
    if (follower) follower.received(message);
    else host.emit({ event: 'message', ...message });
  }
}

export function relayNotListed(name: string, version: number): string {
  return `relay "${name}" is not listed among the relays of roster v${version}`;
}
