/** The connect form's "Other relays" field (src-renderer/src/lib/relay-list.ts). */
import fc from 'fast-check';
import { describe, expect, it } from 'vitest';
import { formatRelayList, parseRelayList } from '../../src-renderer/src/lib/relay-list.js';
import { CONTRACT } from '../../src-shared/ipc-contract.js';
import { MAX_RELAY_ADDRESSES } from '../../src-shared/limits.js';

describe('other relays field', () => {
  it('reads host:port lists separated by commas or spaces, IPv6 in brackets', () => {
    expect(parseRelayList('')).toEqual({ ok: true, relays: [] });
    expect(parseRelayList(' node2.example:7443,  10.0.0.3:7443 [::1]:9000 ')).toEqual({
      ok: true,
      relays: [
        { host: 'node2.example', port: 7443 },
        { host: '10.0.0.3', port: 7443 },
        { host: '::1', port: 9000 },
      ],
    });
  });

  it('says what is wrong: not host:port, a port out of range, twice, the first again, too many', () => {
    expect(parseRelayList('node2')).toEqual({ ok: false, error: '“node2” is not host:port.' });
    expect(parseRelayList('node2:0')).toMatchObject({ ok: false });
    expect(parseRelayList('node2:70000')).toMatchObject({ ok: false });
    expect(parseRelayList('a:1, A:1')).toEqual({ ok: false, error: 'A:1 is listed twice.' });
    expect(parseRelayList('node1:7443', { host: 'node1', port: 7443 })).toMatchObject({ ok: false });
    const many = Array.from({ length: MAX_RELAY_ADDRESSES }, (_, i) => `n${i}:7443`).join(',');
    expect(parseRelayList(many)).toEqual({
      ok: false,
      error: `At most ${MAX_RELAY_ADDRESSES - 1} other relays.`,
    });
  });

  it('formats back to what it reads, and what it accepts the contract accepts', () => {
    const host = fc.oneof(
      fc.domain(),
      fc.ipV4(),
      fc.ipV6().filter((h) => h.length <= 45),
    );
    const relay = fc.record({ host, port: fc.integer({ min: 1, max: 65535 }) });
    fc.assert(
      fc.property(
        fc.uniqueArray(relay, {
          maxLength: MAX_RELAY_ADDRESSES - 1,
          selector: (r) => `${r.host.toLowerCase()}:${r.port}`,
        }),
        (relays) => {
          const parsed = parseRelayList(formatRelayList(relays));
          expect(parsed).toEqual({ ok: true, relays });
          const args = { host: 'node1.example', port: 7443, fallbacks: relays };
          expect(CONTRACT.connect.args.safeParse(args).success).toBe(true);
        },
      ),
    );
  });

  it('the contract refuses more than the limit and hosts that are not host names', () => {
    const fallbacks = Array.from({ length: MAX_RELAY_ADDRESSES }, (_, i) => ({ host: `n${i}`, port: 1 }));
    expect(CONTRACT.connect.args.safeParse({ host: 'a', port: 1, fallbacks }).success).toBe(false);
    expect(
      CONTRACT.connect.args.safeParse({ host: 'a', port: 1, fallbacks: [{ host: 'a b', port: 1 }] }).success,
    ).toBe(false);
  });
});
