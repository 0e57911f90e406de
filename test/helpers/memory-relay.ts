/**
 * The relay played by a unit test over an in-memory transport: links the engine opens, and the
 * relay's frames (HELLO, CERT_RESPONSE, PRESENCE, HEARTBEAT), each signed with the relay's key and
 * bound to the session as the real relay does. What the engine writes is read back from the link.
 */
import { randomBytes } from 'node:crypto';
import type {
  ConnectRelay,
  ConnectRequest,
  EngineLink,
  TransportHandlers,
} from '../../src-main/client/engine-transport.js';
import { sessionTag } from '../../src-main/core/link/session-tag.js';
import type { LocalIdentity } from '../../src-main/core/pki/local-identity.js';
import {
  isLinkFrame,
  readHeader,
  sealMessage,
  type MessageType,
} from '../../src-main/core/protocol/index.js';

export class MemoryLink implements EngineLink {
  isOpen = true;
  writableLength = 0;
  peerMaxFrameBytes = 1024 * 1024;
  readonly written: Buffer[] = [];
  closedWith: string | undefined;
  challenge: Buffer | undefined;

  constructor(readonly handlers: TransportHandlers) {}

  write(envelope: Buffer): boolean {
    if (!this.isOpen) return false;
    this.written.push(envelope);
    return true;
  }

  end(): Promise<void> {
    this.close('ended');
    return Promise.resolve();
  }

  destroy(reason: string): void {
    this.close(reason);
  }

  /** Like a socket's 'close' event: once, and not within the call that closed it. */
  close(reason: string): void {
    if (!this.isOpen) return;
    this.isOpen = false;
    this.closedWith = reason;
    queueMicrotask(() => this.handlers.onClose(reason, false));
  }

  types(): MessageType[] {
    return this.written.filter((f) => !isLinkFrame(f)).map((f) => readHeader(f).type);
  }
}

export class MemoryRelay {
  readonly links: MemoryLink[] = [];
  /** What each connection asked for (which relay address), in order. */
  readonly requests: ConnectRequest[] = [];
  /** Every connection is refused (nothing listening). */
  refusing = false;

  constructor(readonly relay: LocalIdentity) {}

  readonly connect: ConnectRelay = (request, handlers) => {
    this.requests.push(request);
    const link = new MemoryLink(handlers);
    this.links.push(link);
    if (this.refusing) link.close('connect ECONNREFUSED 127.0.0.1:4000');
    return link;
  };

  get last(): MemoryLink {
    const link = this.links.at(-1);
    if (!link) throw new Error('the engine never connected');
    return link;
  }

  /** `streamId`: the relay keeps a log (protocol v2), so the engine SYNCs with it. */
  hello(link: MemoryLink, streamId?: string): void {
    link.challenge = randomBytes(32);
    link.handlers.onFrame(
      sealMessage(
        'HELLO',
        { kind: 'certificate', der: this.relay.certificate.der },
        '',
        {
          challenge: link.challenge,
          relay: this.relay.name,
          maxFrameBytes: 1024 * 1024,
          ...(streamId !== undefined ? { streamId } : {}),
        },
        (d) => this.relay.sign(d),
      ),
    );
  }

  certificates(link: MemoryLink, members: LocalIdentity[]): void {
    link.handlers.onFrame(
      sealMessage(
        'CERT_RESPONSE',
        this.ref(),
        '',
        {
          session: link.challenge ?? Buffer.alloc(32),
          certificates: members.map((m) => ({ name: m.name, certificate: m.certificate.der })),
          unknown: [],
        },
        (d) => this.relay.sign(d),
      ),
    );
  }

  presence(link: MemoryLink, version: number, members: LocalIdentity[]): void {
    link.handlers.onFrame(
      sealMessage(
        'PRESENCE',
        this.ref(),
        '',
        {
          sessions: [sessionTag(link.challenge ?? Buffer.alloc(32))],
          version,
          members: members.map((m) => ({ name: m.name, fingerprint: m.certificate.fingerprintHex })),
        },
        (d) => this.relay.sign(d),
      ),
    );
  }

  heartbeat(link: MemoryLink): void {
    link.handlers.onFrame(
      sealMessage('HEARTBEAT', this.ref(), '', { session: link.challenge ?? Buffer.alloc(32) }, (d) =>
        this.relay.sign(d),
      ),
    );
  }

  private ref() {
    return { kind: 'fingerprint' as const, fingerprint: this.relay.certificate.fingerprint };
  }
}
