export type RosterErrorCode =
  /** Not a roster: the envelope does not parse, is another message type, or is too large. */
  | 'RosterEncoding'
  /** The envelope's signature does not verify with the group CA's key. */
  | 'RosterSignature'
  /** Signed by (or naming) another CA than the group's: a roster of another group. */
  | 'RosterForeignGroup'
  /** The body does not match the ROSTER schema (unknown field, out of bounds, bad type). */
  | 'RosterSchema'
  /** A listed certificate is not one the group CA issued for that role, or its CN is not the listed name. */
  | 'RosterCertificate'
  /** A name or a certificate fingerprint listed twice (members, relays or removed entries). */
  | 'RosterDuplicate'
  /** A removed certificate listed as a member or relay, or being added again. */
  | 'RosterRemovedMember'
  /** Over a bound: members, relays, removed entries or the body's size. */
  | 'RosterLimit'
  /** An older version than the one held: rosters never go back. */
  | 'RosterRollback'
  /** The same version as the one held, with other contents: two rosters forked from one. */
  | 'RosterConflict'
  /** A change names a member the roster does not list. */
  | 'RosterUnknownMember';

/** A typed roster failure with a message a person can act on; `cause` keeps the underlying error. */
export class RosterError extends Error {
  override readonly name = 'RosterError';
  constructor(
    readonly code: RosterErrorCode,
    message: string,
    options?: { cause?: unknown },
  ) {
    super(message, options);
  }
}
