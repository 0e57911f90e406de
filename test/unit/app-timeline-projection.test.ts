/**
 * What the timeline shows of an engine's chat events (src-main/app/timeline-projection.ts): the
 * key and re-keys, messages with their stored history id, one "While you were away" divider per
 * outage, own lines queued → sending → sent on the relay's STORED, and roster changes in words.
 * Real Timeline and EventHub; the engine's events are written as the engine emits them.
 */
import { describe, expect, it } from 'vitest';
import { EventHub } from '../../src-main/app/event-hub.js';
import { Timeline } from '../../src-main/app/timeline.js';
import { TimelineProjection } from '../../src-main/app/timeline-projection.js';
import type { AppEvent } from '../../src-shared/ipc-contract.js';
import type { ChatLine } from '../../src-shared/model.js';

const OWNER = `${'ab'.repeat(32)}/alice`;
const SCOPE = { owner: OWNER, group: { id: OWNER, name: 'Team' }, self: 'alice' };

function setup(stored: Map<string, number> = new Map()) {
  const hub = new EventHub();
  const events: AppEvent[] = [];
  hub.on((e) => events.push(e));
  const timeline = new Timeline(hub);
  const incoming: string[] = [];
  const projection = new TimelineProjection({
    hub,
    timeline,
    selfName: () => undefined,
    historyId: (from, epoch, seq) => stored.get(`${from}:${epoch}:${seq}`),
    onIncoming: (from, text, group) => incoming.push(`${group.name}:${from}:${text}`),
  });
  const lines = () => timeline.recent(1_000);
  const texts = () =>
    lines().map((l) => (l.kind === 'system' ? `[${l.event}] ${l.text}` : `${l.from}: ${l.text}`));
  return { hub, events, timeline, projection, incoming, lines, texts };
}

const message = (from: string, text: string, seq: number, backlog?: true) => ({
  event: 'message' as const,
  from,
  text,
  epoch: 1,
  seq,
  sentAt: 1_000 + seq,
  ...(backlog ? { backlog } : {}),
});

describe('timeline projection', () => {
  it('says the first key, a new epoch once, and the same epoch again not at all', () => {
    const { projection, texts, events } = setup();
    projection.begin(SCOPE);
    const key = (epoch: number) => ({
      event: 'key' as const,
      epoch,
      safetyNumber: '1234 5678',
      members: ['alice', 'bob'],
      contributors: ['alice'],
    });
    projection.apply(key(1));
    projection.apply(key(1));
    projection.apply(key(2));
    expect(texts()).toEqual([
      '[rekey] Group key established (epoch 1) for alice, bob.',
      '[rekey] New group key (epoch 2) for alice, bob. Compare the safety number again.',
    ]);
    expect(events.filter((e) => e.type === 'key')).toHaveLength(3);
    expect(projection.key?.epoch).toBe(2);
    projection.end();
    expect(projection.key).toBeUndefined();
  });

  it('puts caught-up messages below one divider per outage, only when history was shown', () => {
    const { projection, texts, incoming } = setup();
    // Nothing shown before: a first catch-up needs no divider.
    projection.begin(SCOPE);
    projection.apply(message('bob', 'first', 1, true));
    projection.apply(message('bob', 'live', 2));
    // The link goes down; what is caught up after it goes below one divider.
    projection.linkLost();
    projection.apply(message('bob', 'missed 1', 3, true));
    projection.apply(message('carol', 'missed 2', 4, true));
    projection.apply(message('bob', 'live again', 5));
    expect(texts()).toEqual([
      'bob: first',
      'bob: live',
      '[away] While you were away',
      'bob: missed 1',
      'carol: missed 2',
      'bob: live again',
    ]);
    expect(incoming).toEqual([
      'Team:bob:first',
      'Team:bob:live',
      'Team:bob:missed 1',
      'Team:carol:missed 2',
      'Team:bob:live again',
    ]);
  });

  it('gives a message its stored history id when the store holds it', () => {
    const { projection, lines } = setup(new Map([['bob:1:7', 42]]));
    projection.begin(SCOPE);
    projection.apply(message('bob', 'kept', 7));
    projection.apply(message('bob', 'not kept', 8));
    const [kept, other] = lines() as Extract<ChatLine, { kind: 'message' }>[];
    expect(kept).toMatchObject({ historyId: 42, text: 'kept' });
    expect(other?.historyId).toBeUndefined();
    expect(other?.id).not.toBe(kept?.id);
  });

  it('takes an own line from queued to sending when written and to sent only on STORED', () => {
    const stored = new Map<string, number>();
    const { projection, lines } = setup(stored);
    projection.begin(SCOPE);
    const own = () => lines().find((l) => l.kind === 'own');
    projection.apply({ event: 'outgoing', localId: 'x1', status: 'queued', text: 'hello' });
    expect(own()).toMatchObject({ status: 'queued', from: 'alice', text: 'hello' });
    const queuedAt = own()?.kind === 'own' ? own()?.sentAt : undefined;
    projection.apply({ event: 'outgoing', localId: 'x1', status: 'sent', text: 'hello', epoch: 1, seq: 3 });
    expect(own()).toMatchObject({ status: 'sending', epoch: 1, seq: 3, sentAt: queuedAt });
    // A STORED for another message changes nothing.
    projection.apply({ event: 'sent', epoch: 1, seq: 4, offset: 10 });
    expect(own()).toMatchObject({ status: 'sending' });
    stored.set('alice:1:3', 9);
    projection.apply({ event: 'sent', epoch: 1, seq: 3, offset: 11 });
    expect(own()).toMatchObject({ status: 'sent', historyId: 9 });
    expect(lines()).toHaveLength(1);
  });

  it('says a newer roster in words; the first, an older one and another identity’s first do not', () => {
    const { projection, texts } = setup();
    projection.begin(SCOPE);
    const roster = (version: number, members: string[], removed: string[] = []) => ({
      event: 'roster' as const,
      version,
      members,
      removed,
    });
    projection.apply(roster(2, ['alice', 'bob', 'carol']));
    projection.apply(roster(3, ['alice', 'bob', 'dave'], ['carol']));
    projection.apply(roster(2, ['alice', 'bob', 'carol']));
    projection.begin({ ...SCOPE, owner: `${'cd'.repeat(32)}/alice` });
    projection.apply(roster(7, ['alice', 'erin']));
    expect(texts()).toEqual(['[roster] The group changed (roster v3): dave added; carol removed.']);
  });

  it('says joins, leaves and gaps', () => {
    const { projection, texts } = setup();
    projection.begin(SCOPE);
    projection.apply({ event: 'system', kind: 'joined', name: 'bob' });
    projection.apply({ event: 'system', kind: 'left', name: 'bob' });
    projection.apply({ event: 'gap', reason: 'the relay no longer holds them' });
    expect(texts()).toEqual([
      '[joined] bob joined the chat.',
      '[left] bob left the chat.',
      '[warning] Some earlier messages cannot be shown: the relay no longer holds them.',
    ]);
  });
});
