/**
 * Prekeys at the relay, the I/O side (prekey-keeper.ts decides): a member's PREKEY is verified
 * (envelope signature by the connection's own certificate, then the prekey itself), stored, and only
 * then forwarded to every other member; a refused one is answered `ERROR PrekeyRejected` with the
 * prekey's error code, never a crash, and counts as a refused frame. At login a member gets PREKEYS:
 * every roster member's latest valid prekey, before its first PRESENCE.
 */
import type { Logger } from 'pino';
import { decodeBody, lengthPrefix, verifyHeader, type EnvelopeHeader } from '../core/protocol/index.js';
import type { RelayConnection } from './connection.js';
import type { ConnectionControl } from './control.js';
import { RelayRefusal } from './errors.js';
import type { Forwarder } from './forwarding.js';
import type { PrekeyKeeper } from './prekey-keeper.js';
import type { Refusals } from './refusals.js';
import type { RelayFrames } from './relay-frames.js';
import type { RosterKeeper } from './roster-keeper.js';

export class PrekeyGate {
  constructor(
    private readonly keeper: PrekeyKeeper,
    private readonly rosters: RosterKeeper,
    private readonly frames: RelayFrames,
    private readonly refusals: Refusals,
    private readonly forwarder: Forwarder,
    private readonly control: ConnectionControl,
    private readonly log: Logger,
  ) {}

  /** Right after login (after the ROSTER, before PRESENCE): the prekeys of the roster's members. */
  welcome(conn: RelayConnection): void {
    const roster = this.rosters.current;
    if (!roster) return;
    const certificates = roster.members.map((m) => ({
      name: m.name,
      fingerprintHex: m.certificate.fingerprintHex,
    }));
    const prekeys = this.keeper.validFor(certificates);
    this.control.send(conn, this.frames.prekeys(this.refusals.sessionOf(conn), prekeys));
  }

  /**
   * Prekeys another cluster node stored (the shared meta's watch): held here from now on, and the
   * changed ones sent to this node's members in a PREKEYS of their session, as the PREKEY itself
   * went to the storing node's members.
   */
  shared(bytes: Buffer, members: readonly RelayConnection[]): void {
    const roster = this.rosters.current;
    const certificateOf = (name: string): string | undefined =>
      roster?.members.find((m) => m.name === name)?.certificate.fingerprintHex;
    this.keeper.adopt(bytes, certificateOf).then(
      (adoption) =>
        this.control.guard(undefined, () => {
          if (adoption.kind === 'rejected') {
            this.log.warn(
              { event: 'prekeys-shared-ignored', reason: adoption.message },
              'shared prekeys not taken',
            );
            return;
          }
          if (!roster || adoption.changed.length === 0) return;
          const changed = new Set(adoption.changed);
          const prekeys = this.keeper.validFor(
            roster.members
              .filter((m) => changed.has(m.name))
              .map((m) => ({ name: m.name, fingerprintHex: m.certificate.fingerprintHex })),
          );
          if (prekeys.length === 0) return;
          for (const conn of members) {
            if (conn.state !== 'member' || !conn.open) continue;
            this.control.send(conn, this.frames.prekeys(this.refusals.sessionOf(conn), prekeys));
          }
        }),
      (err: unknown) =>
        this.log.error({ event: 'internal-error', err: String(err) }, 'handling shared prekeys failed'),
    );
  }

  /** A member's PREKEY (routing.ts checked the sender fingerprint is the connection's). */
  onPrekey(conn: RelayConnection, header: EnvelopeHeader, payload: Buffer): void {
    const certificate = conn.certificate;
    if (!certificate) throw new RelayRefusal('NotAuthenticated', 'send CONNECTION first');
    verifyHeader(header, certificate.publicKey); // verify before parse: BadSignature otherwise
    const { prekey } = decodeBody('PREKEY', header.body);
    // The bytes outlive this turn: forwarded once the store write is done.
    const framed = Buffer.concat([lengthPrefix(payload.length), payload]);
    void this.keeper.offer(prekey, certificate).then(
      (offer) =>
        this.control.guard(conn, () => {
          if (offer.kind === 'same') return;
          if (offer.kind === 'rejected') {
            if (conn.open)
              this.refusals.refuseFrame(conn, 'PrekeyRejected', `${offer.code}: ${offer.message}`);
            return;
          }
          this.forwarder.broadcast(conn, framed.subarray(4), framed);
        }),
      (err: unknown) =>
        this.log.error({ event: 'internal-error', conn: conn.id, err: String(err) }, 'prekey offer failed'),
    );
  }
}
