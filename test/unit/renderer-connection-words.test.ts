/**
 * The header's connection indicator words (src-renderer/src/lib/connection-words.ts): every
 * ConnectionState, the causes the main process adds, and the retry countdown.
 */
import { describe, expect, it } from 'vitest';
import { connectionWords, retrySecondsLeft } from '../../src-renderer/src/lib/connection-words.js';
import { CONNECTION_STATES, type ConnectionState, type ConnectionView } from '../../src-shared/model.js';

const EVERY_STATE: ConnectionState[] = [...CONNECTION_STATES, 'Disconnected', 'Reconnecting', 'Failed'];

describe('connectionWords', () => {
  it('has words for every state', () => {
    const expected: Record<ConnectionState, string> = {
      Initialization: 'Connecting',
      Connecting: 'Connecting',
      CertExchange: 'Connecting',
      KeyEstablishment: 'Connecting',
      Chatting: 'Online',
      Disconnecting: 'Offline',
      Disconnected: 'Offline',
      Reconnecting: 'Connecting',
      Failed: 'Offline',
    };
    expect(Object.keys(expected).sort()).toEqual([...EVERY_STATE].sort());
    for (const state of EVERY_STATE) {
      expect(connectionWords({ state }).words, state).toBe(expected[state]);
    }
  });

  it('gives every state a tone, and only Chatting the online one', () => {
    for (const state of EVERY_STATE) {
      const { tone } = connectionWords({ state });
      expect(tone === 'online', state).toBe(state === 'Chatting');
    }
  });

  it('says when the next try is while reconnecting, counting down to 0 s and no further', () => {
    const view: ConnectionView = {
      state: 'Reconnecting',
      reason: 'The relay closed the connection.',
      retryInMs: 3000,
    };
    expect(connectionWords(view, 0)).toEqual({ words: 'Offline — retrying in 3 s', tone: 'retry' });
    expect(connectionWords(view, 900).words).toBe('Offline — retrying in 3 s');
    expect(connectionWords(view, 1000).words).toBe('Offline — retrying in 2 s');
    expect(connectionWords(view, 2500).words).toBe('Offline — retrying in 1 s');
    expect(connectionWords(view, 3000).words).toBe('Offline — retrying in 0 s');
    expect(connectionWords(view, 60_000).words).toBe('Offline — retrying in 0 s');
    // A clock that went backwards does not count up past the delay.
    expect(connectionWords(view, -5000).words).toBe('Offline — retrying in 3 s');
    expect(connectionWords({ state: 'Reconnecting', retryInMs: 250 }).words).toBe(
      'Offline — retrying in 1 s',
    );
  });

  it('says the relay is not responding when the relay went silent', () => {
    const reason = 'Relay not responding: nothing received for 45 s';
    expect(
      connectionWords({ state: 'Reconnecting', reason, retryInMs: 2000, cause: 'relay-silent' }),
    ).toEqual({
      words: 'Relay not responding',
      tone: 'bad',
    });
    expect(connectionWords({ state: 'Failed', reason, cause: 'relay-silent' }).words).toBe(
      'Relay not responding',
    );
  });

  it('says Removed once the member was removed, also after leaving', () => {
    expect(connectionWords({ state: 'Failed', cause: 'removed' })).toEqual({ words: 'Removed', tone: 'bad' });
    expect(connectionWords({ state: 'Disconnected', cause: 'removed' }).words).toBe('Removed');
  });

  it('says Offline when disconnected without a retry, with or without a reason', () => {
    expect(connectionWords({ state: 'Disconnected' })).toEqual({ words: 'Offline', tone: 'offline' });
    expect(connectionWords({ state: 'Failed', reason: 'Your certificate was refused.' })).toEqual({
      words: 'Offline',
      tone: 'bad',
    });
  });

  it('retrySecondsLeft rounds up and never goes negative', () => {
    expect(retrySecondsLeft(1, 0)).toBe(1);
    expect(retrySecondsLeft(0, 0)).toBe(0);
    expect(retrySecondsLeft(1000, 1001)).toBe(0);
  });
});
