/**
 * How `securechat-x chat` shows engine events. `--json` is a public contract that people script
 * against: exactly one JSON object per line on stdout, keys in the documented order (see
 * docs/client.md), nothing else on stdout. Human mode is for people and may change.
 */
import { formatFingerprint } from '../core/pki/fingerprint.js';
import type { EngineEvent } from '../client/engine-types.js';

export type Line = string;

/** The --json line for an event, or undefined for events outside the contract (outgoing, system). */
export function jsonLine(e: EngineEvent): Line | undefined {
  switch (e.event) {
    case 'state':
      return JSON.stringify({
        event: 'state',
        state: e.state,
        ...(e.reason !== undefined ? { reason: e.reason } : {}),
        ...(e.retryInMs !== undefined ? { retryInMs: e.retryInMs } : {}),
        // Last, so the lines of one-address sessions are exactly what they always were.
        ...(e.relay !== undefined ? { relay: e.relay } : {}),
      });
    case 'members':
      return JSON.stringify({
        event: 'members',
        members: e.members.map((m) => ({ name: m.name, fingerprint: m.fingerprint })),
      });
    case 'key':
      return JSON.stringify({
        event: 'key',
        epoch: e.epoch,
        safetyNumber: e.safetyNumber,
        members: e.members,
        contributors: e.contributors,
      });
    case 'message':
      return JSON.stringify({
        event: 'message',
        from: e.from,
        text: e.text,
        epoch: e.epoch,
        seq: e.seq,
        ...(e.offset !== undefined ? { offset: e.offset } : {}),
        sentAt: e.sentAt,
      });
    case 'sent':
      return JSON.stringify({ event: 'sent', epoch: e.epoch, seq: e.seq, offset: e.offset });
    case 'gap':
      return JSON.stringify({ event: 'gap', reason: e.reason });
    case 'error':
      return JSON.stringify({ event: 'error', code: e.code, message: e.message });
    case 'roster':
      return JSON.stringify({ event: 'roster', version: e.version, members: e.members, removed: e.removed });
    case 'outgoing':
    case 'system':
      return undefined;
  }
}

/** Neutralises terminal control characters a sender could put in a message. */
function printable(text: string): string {
  // Control characters are exactly what this must match.
  // eslint-disable-next-line no-control-regex
  return text.replace(/[\u0000-\u0008\u000b-\u001f\u007f-\u009f]/g, '\uFFFD');
}

export function humanLine(e: EngineEvent, self: string): Line | undefined {
  switch (e.event) {
    case 'state': {
      const extra = [
        e.relay !== undefined ? `to ${e.relay}` : undefined,
        e.reason,
        e.retryInMs !== undefined ? `retry in ${e.retryInMs} ms` : undefined,
      ]
        .filter((x) => x !== undefined)
        .join(', ');
      return `* ${e.state}${extra ? ` (${extra})` : ''}`;
    }
    case 'members':
      return [
        `* members (${e.members.length}):`,
        ...e.members.map(
          (m) => `    ${m.name === self ? `${m.name} (you)` : m.name}  ${formatFingerprint(m.fingerprint)}`,
        ),
      ].join('\n');
    case 'key': {
      // Members the key is sealed for; who took part only when not everyone was online.
      const offline = e.members.filter((m) => !e.contributors.includes(m));
      const note = offline.length > 0 ? ` (offline: ${offline.join(', ')})` : '';
      return `* epoch ${e.epoch} with ${e.members.join(', ')}${note}\n* safety number: ${e.safetyNumber}`;
    }
    case 'message':
      return printable(`${e.from} > ${e.text}`);
    case 'system':
      return `* ${e.name} ${e.kind}`;
    case 'gap':
      return `* some earlier messages cannot be shown: ${e.reason}`;
    case 'sent':
      return undefined;
    case 'error':
      if (e.code === 'Removed') return printable(`! You were removed from this group (${e.message})`);
      return printable(`! ${e.code}: ${e.message}`);
    case 'roster':
      return `* roster v${e.version}: ${e.members.join(', ')}${e.removed.length > 0 ? `; removed: ${e.removed.join(', ')}` : ''}`;
    case 'outgoing':
      return undefined;
  }
}

/** After this many failed attempts in a row, the human output says so once and stops repeating. */
export const UNREACHABLE_HINT_AFTER = 5;

/**
 * Watches reconnect attempts that never reach the relay: after `after` of them in a row it asks
 * for one hint ("check the address") and, in human mode, quiets the Connecting / Reconnecting line
 * of each further attempt unless its reason differs from the last one shown. Pure state: the
 * caller prints. Reaching a session (CertExchange or later) starts the count again.
 */
export class UnreachableNotice {
  private failures = 0;
  private lastShownReason: string | undefined;

  constructor(
    private readonly address: string,
    private readonly after = UNREACHABLE_HINT_AFTER,
  ) {}

  /** `hint`: a line for stderr, once per run of failures; `quiet`: leave the human line out. */
  observe(e: EngineEvent): { hint?: string; quiet: boolean } {
    if (e.event !== 'state') return { quiet: false };
    if (e.state === 'Reconnecting') {
      this.failures++;
      if (this.failures < this.after) return { quiet: false };
      if (this.failures === this.after) {
        this.lastShownReason = e.reason;
        return {
          hint: `still unreachable after ${this.failures} tries; check the address (${this.address})${e.reason !== undefined ? `: ${e.reason}` : ''}`,
          quiet: false,
        };
      }
      if (e.reason === this.lastShownReason) return { quiet: true };
      this.lastShownReason = e.reason;
      return { quiet: false };
    }
    if (e.state === 'Connecting') return { quiet: this.failures >= this.after };
    if (e.state !== 'Disconnecting' && e.state !== 'Disconnected' && e.state !== 'Failed') {
      this.failures = 0;
      this.lastShownReason = undefined;
    }
    return { quiet: false };
  }
}
