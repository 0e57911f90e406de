/**
 * What a `chat --json` process said, as the cluster tests read it: the messages it showed, its own
 * messages the relay acknowledged (`sent`), and the relays it tried (with several addresses).
 */
import type { ChatProcess } from './client-processes.js';

/** Bundles the tests write are cheap to open (the KDF's iterations lowered). */
export const FAST_ISSUE = ['--kdf-iterations', '10000'];

export interface Shown {
  from: string;
  text: string;
  epoch: number;
  seq: number;
}

export const messagesOf = (p: ChatProcess) => p.of('message') as unknown as Shown[];
export const sentOf = (p: ChatProcess) => p.of('sent') as unknown as { epoch: number; seq: number }[];
/** A message's place in its sender's sequence: what "once, in order" is checked by. */
export const id = (m: { epoch: number; seq: number }) => `${m.epoch}.${m.seq}`;
/** The Connecting events of a member with several addresses name the relay tried, last. */
export const triedRelays = (p: ChatProcess) =>
  p.of('state').flatMap((s) => (s.state === 'Connecting' ? [s.relay] : []));
