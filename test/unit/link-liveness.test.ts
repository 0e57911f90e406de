/** Heartbeat state machine and its client driver, with fake time; relay ERROR classification. */
import { describe, expect, it } from 'vitest';
import { DEFAULT_LIVENESS, Liveness } from '../../src-main/core/link/liveness.js';
import { checkSession, checkSessionListed, classifyRelayError } from '../../src-main/client/relay-link.js';
import { sessionTag } from '../../src-main/core/link/session-tag.js';
import { ProtocolError } from '../../src-main/core/protocol/errors.js';
import type { BodyOf } from '../../src-main/core/protocol/schemas.js';

describe('Liveness', () => {
  it('asks for a heartbeat after the interval without sending, and declares the peer gone at the timeout', () => {
    const l = new Liveness({ intervalMs: 5000, timeoutMs: 15_000 }, 0);
    expect(l.tick(4999).kind).toBe('ok');
    expect(l.tick(5000).kind).toBe('send-heartbeat');
    expect(l.tick(5001).kind).toBe('ok'); // counted as sent
    l.received(9000);
    expect(l.tick(23_999).kind).toBe('send-heartbeat');
    expect(l.tick(24_000)).toEqual({ kind: 'peer-gone', silentMs: 15_000 });
  });

  it('sending or receiving resets the matching clock only', () => {
    const l = new Liveness({ intervalMs: 100, timeoutMs: 300 }, 0);
    l.sent(90);
    expect(l.tick(150).kind).toBe('ok');
    l.received(250);
    expect(l.tick(540).kind).toBe('send-heartbeat');
    expect(l.tick(549).kind).toBe('ok');
    expect(l.tick(550).kind).toBe('peer-gone');
  });

  it('refuses a timeout not longer than the interval; ticks often enough for the 20 s bound', () => {
    expect(() => new Liveness({ intervalMs: 100, timeoutMs: 100 }, 0)).toThrow(RangeError);
    const l = new Liveness(DEFAULT_LIVENESS, 0);
    expect(DEFAULT_LIVENESS.timeoutMs + l.tickMs).toBeLessThanOrEqual(20_000);
  });
});

describe('relay frames and errors', () => {
  const error = (code: BodyOf<'ERROR'>['code'], fatal: boolean): BodyOf<'ERROR'> => ({
    session: Buffer.alloc(32),
    code,
    message: 'm',
    fatal,
  });

  it('after login only Replaced ends the session; other fatal errors reconnect; the rest are reported', () => {
    expect(classifyRelayError(error('Replaced', true), true).kind).toBe('terminal');
    expect(classifyRelayError(error('AuthFailed', true), true).kind).toBe('reconnect');
    expect(classifyRelayError(error('CertificateRejected', false), true).kind).toBe('report');
    expect(classifyRelayError(error('SlowConsumer', true), true).kind).toBe('reconnect');
    expect(classifyRelayError(error('NotAllowed', false), true).kind).toBe('report');
  });

  it('before login a refused certificate or proof is terminal; a spent budget is not', () => {
    expect(classifyRelayError(error('CertificateRejected', true), false).kind).toBe('terminal');
    expect(classifyRelayError(error('AuthFailed', false), false).kind).toBe('terminal');
    expect(classifyRelayError(error('RateLimited', true), false).kind).toBe('reconnect');
    expect(classifyRelayError(error('ServerFull', true), false).kind).toBe('reconnect');
  });

  it('a PRESENCE must list this session’s tag', () => {
    const own = Buffer.alloc(32, 1);
    expect(() => checkSessionListed([sessionTag(Buffer.alloc(32, 9)), sessionTag(own)], own)).not.toThrow();
    expect(() => checkSessionListed([sessionTag(Buffer.alloc(32, 9))], own)).toThrow(/other sessions/);
    expect(() => checkSessionListed([sessionTag(own)], undefined)).toThrow(ProtocolError);
    // The tag is not the challenge itself, and differs per challenge.
    expect(sessionTag(own)).toHaveLength(16);
    expect(own.includes(sessionTag(own))).toBe(false);
  });

  it('a frame bound to another session, or before HELLO, is WrongSession', () => {
    const own = Buffer.alloc(32, 1);
    expect(() => checkSession('ERROR', Buffer.alloc(32, 1), own)).not.toThrow();
    for (const [bound, mine] of [
      [Buffer.alloc(32, 2), own],
      [own, undefined],
    ] as const) {
      try {
        checkSession('ERROR', bound, mine);
        expect.unreachable();
      } catch (err) {
        expect((err as ProtocolError).code).toBe('WrongSession');
      }
    }
  });
});
