/**
 * The window header's connection indicator in plain words: every ConnectionState (and the cause
 * the main process knows) mapped explicitly. Pure, no Svelte: the component only passes the time
 * since the view arrived, so the "retrying in N s" countdown is testable here.
 */
import type { ConnectionView } from '../../../src-shared/model.js';

/** The dot's colour and the indicator's style; the words always say the same thing. */
export type ConnectionTone = 'online' | 'busy' | 'retry' | 'bad' | 'offline';

export interface ConnectionWords {
  words: string;
  tone: ConnectionTone;
}

const ONLINE: ConnectionWords = { words: 'Online', tone: 'online' };
const CONNECTING: ConnectionWords = { words: 'Connecting', tone: 'busy' };
const OFFLINE: ConnectionWords = { words: 'Offline', tone: 'offline' };
const SILENT: ConnectionWords = { words: 'Relay not responding', tone: 'bad' };
const REMOVED: ConnectionWords = { words: 'Removed', tone: 'bad' };

/** Whole seconds until the next try, counted from when the view arrived; never negative. */
export function retrySecondsLeft(retryInMs: number, elapsedMs: number): number {
  return Math.max(0, Math.ceil((retryInMs - Math.max(0, elapsedMs)) / 1000));
}

/** `elapsedMs`: how long ago this view arrived (drives the countdown). */
export function connectionWords(view: ConnectionView, elapsedMs = 0): ConnectionWords {
  const state = view.state;
  switch (state) {
    case 'Chatting':
      return ONLINE;
    case 'Initialization':
    case 'Connecting':
    case 'CertExchange':
    case 'KeyEstablishment':
      return CONNECTING;
    case 'Reconnecting':
      if (view.cause === 'relay-silent') return SILENT;
      if (view.retryInMs === undefined) return CONNECTING;
      return {
        words: `Offline — retrying in ${retrySecondsLeft(view.retryInMs, elapsedMs)} s`,
        tone: 'retry',
      };
    case 'Disconnecting':
      return OFFLINE;
    case 'Failed':
      if (view.cause === 'removed') return REMOVED;
      if (view.cause === 'relay-silent') return SILENT;
      return { words: 'Offline', tone: 'bad' };
    case 'Disconnected':
      return view.cause === 'removed' ? REMOVED : OFFLINE;
    default: {
      const unknown: never = state;
      return { words: String(unknown), tone: 'offline' };
    }
  }
}
