/**
 * The connect form's "Other relays" field: the group's other relay nodes as `host:port`, separated
 * by commas or spaces (`[v6 address]:port` for IPv6). The main process validates them again with
 * the contract's schema; this gives the words while typing.
 */
import { MAX_RELAY_ADDRESSES } from '../../../src-shared/limits.js';

export interface RelayAddressInput {
  host: string;
  port: number;
}

export type RelayListResult = { ok: true; relays: RelayAddressInput[] } | { ok: false; error: string };

const ADDRESS = /^(?:\[([0-9A-Fa-f:.]+)\]|([^\s:[\]]+)):(\d{1,5})$/;

export function parseRelayList(text: string, first?: RelayAddressInput): RelayListResult {
  const items = text.split(/[\s,]+/).filter((s) => s.length > 0);
  if (items.length > MAX_RELAY_ADDRESSES - 1)
    return { ok: false, error: `At most ${MAX_RELAY_ADDRESSES - 1} other relays.` };
  const relays: RelayAddressInput[] = [];
  const seen = new Set(first ? [key(first)] : []);
  for (const item of items) {
    const m = ADDRESS.exec(item);
    const port = m ? Number(m[3]) : 0;
    if (!m || port < 1 || port > 65535 || (m[2] ?? m[1] ?? '').length > 253)
      return { ok: false, error: `“${item}” is not host:port.` };
    const relay = { host: (m[1] ?? m[2]) as string, port };
    if (seen.has(key(relay))) return { ok: false, error: `${item} is listed twice.` };
    seen.add(key(relay));
    relays.push(relay);
  }
  return { ok: true, relays };
}

/** The list as the field shows it. */
export function formatRelayList(relays: readonly RelayAddressInput[]): string {
  return relays
    .map((r) => (r.host.includes(':') ? `[${r.host}]:${r.port}` : `${r.host}:${r.port}`))
    .join(', ');
}

const key = (r: RelayAddressInput): string => `${r.host.toLowerCase()}:${r.port}`;
