import type { RelayErrorCode } from '../core/protocol/index.js';

/** A frame or connection the relay refuses: becomes an ERROR frame with this code. */
export class RelayRefusal extends Error {
  override readonly name = 'RelayRefusal';
  constructor(
    readonly code: RelayErrorCode,
    message: string,
    readonly fatal = false,
  ) {
    super(message);
  }
}
