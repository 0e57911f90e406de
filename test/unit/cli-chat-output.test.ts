/** The terminal client's notice for a relay that cannot be reached (pure state, no processes). */
import { describe, expect, it } from 'vitest';
import type { EngineEvent } from '../../src-main/client/engine-types.js';
import { humanLine, jsonLine, UnreachableNotice } from '../../src-main/cli/chat-output.js';

const connecting: EngineEvent = { event: 'state', state: 'Connecting' };
const refused = (n: number): EngineEvent => ({
  event: 'state',
  state: 'Reconnecting',
  reason: 'ECONNREFUSED: connect ECONNREFUSED 127.0.0.1:9',
  retryInMs: n,
});

describe('UnreachableNotice', () => {
  it('shows five attempts, hints once, then shows only attempts whose reason changed', () => {
    const n = new UnreachableNotice('127.0.0.1:9');
    const shown: string[] = [];
    const hints: string[] = [];
    const feed = (e: EngineEvent) => {
      const r = n.observe(e);
      if (r.hint !== undefined) hints.push(r.hint);
      if (!r.quiet && e.event === 'state') shown.push(`${e.state}${e.reason ? ` ${e.reason}` : ''}`);
    };
    for (let i = 0; i < 12; i++) {
      feed(connecting);
      feed(refused(i));
    }
    expect(hints).toEqual([
      'still unreachable after 5 tries; check the address (127.0.0.1:9): ECONNREFUSED: connect ECONNREFUSED 127.0.0.1:9',
    ]);
    expect(shown.filter((s) => s.startsWith('Reconnecting')).length).toBe(5);
    expect(shown.filter((s) => s === 'Connecting').length).toBe(5);
    // Another reason is worth a line; the same one again is not.
    feed({ event: 'state', state: 'Reconnecting', reason: 'no connection to 127.0.0.1:9 within 10000 ms' });
    feed({ event: 'state', state: 'Reconnecting', reason: 'no connection to 127.0.0.1:9 within 10000 ms' });
    expect(shown.at(-1)).toMatch(/^Reconnecting no connection/);
    expect(shown.filter((s) => s.startsWith('Reconnecting')).length).toBe(6);
    expect(hints).toHaveLength(1);
  });

  it('starts over once a session got through', () => {
    const n = new UnreachableNotice('h:1', 2);
    expect(n.observe(refused(1)).hint).toBeUndefined();
    expect(n.observe(refused(2)).hint).toBeDefined();
    expect(n.observe({ event: 'state', state: 'KeyEstablishment' }).quiet).toBe(false);
    expect(n.observe(refused(3)).hint).toBeUndefined();
    expect(n.observe(refused(4)).hint).toBeDefined();
  });
});

describe('the key line', () => {
  const key: EngineEvent = {
    event: 'key',
    epoch: 3,
    safetyNumber: '12345 67890 12345 67890 12345 67890',
    members: ['alice', 'bob', 'carol'],
    contributors: ['alice', 'bob'],
  };

  it('--json keeps its keys and order and appends contributors after members', () => {
    expect(jsonLine(key)).toBe(
      '{"event":"key","epoch":3,"safetyNumber":"12345 67890 12345 67890 12345 67890","members":["alice","bob","carol"],"contributors":["alice","bob"]}',
    );
  });

  it('human output names who was offline when the key was made, and nothing when all took part', () => {
    expect(humanLine(key, 'alice')).toBe(
      '* epoch 3 with alice, bob, carol (offline: carol)\n* safety number: 12345 67890 12345 67890 12345 67890',
    );
    expect(humanLine({ ...key, contributors: ['alice', 'bob', 'carol'] }, 'alice')).toBe(
      '* epoch 3 with alice, bob, carol\n* safety number: 12345 67890 12345 67890 12345 67890',
    );
  });
});
