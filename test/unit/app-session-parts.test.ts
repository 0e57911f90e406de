/**
 * The app service's parts that hold the window's state (src-main/app): the timeline, the member
 * list with verification and certificate-change warnings, dialog tokens, and the plain words for
 * connection failures. Real classes over in-memory settings; events recorded from the real hub.
 */
import { afterEach, describe, expect, it, vi } from 'vitest';
import { AwaitingAcks, MAX_AWAITING_ACK } from '../../src-main/app/awaiting-acks.js';
import {
  connectionCause,
  describeConnectionReason,
  isUnreachable,
  rosterChangeText,
} from '../../src-main/app/engine-views.js';
import { EventHub } from '../../src-main/app/event-hub.js';
import { FileChoices } from '../../src-main/app/file-choices.js';
import { MemberList } from '../../src-main/app/member-list.js';
import type { SettingsStore } from '../../src-main/app/ports.js';
import { Settings } from '../../src-main/app/settings.js';
import { MAX_TIMELINE, Timeline } from '../../src-main/app/timeline.js';
import { TIMELINE_START_LINES } from '../../src-shared/limits.js';
import type { AppEvent } from '../../src-shared/ipc-contract.js';

const FP_A = 'aa'.repeat(32);
const FP_B = 'bb'.repeat(32);
const FP_B2 = 'b2'.repeat(32);

function setup() {
  const data = new Map<string, unknown>();
  const store: SettingsStore = {
    get: (key) => structuredClone(data.get(key)),
    set: (key, value) => void data.set(key, structuredClone(value)),
    delete: (key) => void data.delete(key),
  };
  const settings = new Settings(store);
  const hub = new EventHub();
  const events: AppEvent[] = [];
  hub.on((e) => events.push(e));
  const timeline = new Timeline(hub);
  let kept: Record<string, string> = {};
  const marks = { get: () => ({ ...kept }), set: (m: Record<string, string>) => void (kept = { ...m }) };
  const members = new MemberList({ marks, hub, timeline, selfName: () => 'alice' });
  return { settings, marks, hub, events, timeline, members };
}

afterEach(() => {
  vi.useRealTimers();
});

describe('event hub', () => {
  it('a listener that throws does not stop the others; unsubscribe and clear stop delivery', () => {
    const hub = new EventHub();
    const seen: string[] = [];
    hub.on(() => {
      throw new Error('closed window');
    });
    const off = hub.on((e) => seen.push(`1:${e.type}`));
    hub.on((e) => seen.push(`2:${e.type}`));
    hub.emit({ type: 'menu', action: 'import-identity' });
    off();
    hub.emit({ type: 'menu', action: 'import-identity' });
    hub.clear();
    hub.emit({ type: 'menu', action: 'import-identity' });
    expect(seen).toEqual(['1:menu', '2:menu', '2:menu']);
  });
});

describe('timeline', () => {
  it('keeps the newest lines of the run, emits each, and replaces an own line by id (queued → sent)', () => {
    const { timeline, events } = setup();
    for (let i = 0; i < MAX_TIMELINE + 3; i += 1) timeline.addSystem('warning', `line ${i}`);
    const lines = timeline.recent(Number.MAX_SAFE_INTEGER);
    expect(lines).toHaveLength(MAX_TIMELINE);
    expect(lines[0]).toMatchObject({ text: 'line 3' });
    expect(events.filter((e) => e.type === 'line')).toHaveLength(MAX_TIMELINE + 3);
    // A window that opens starts with the newest TIMELINE_START_LINES.
    expect(timeline.recent()).toHaveLength(TIMELINE_START_LINES);
    expect(timeline.recent().at(-1)).toMatchObject({ text: `line ${MAX_TIMELINE + 2}` });

    const own = { kind: 'own', id: 'own-1', from: 'alice', text: 'hi', sentAt: 1 } as const;
    timeline.upsert({ ...own, status: 'queued' });
    timeline.upsert({ ...own, status: 'sent', epoch: 1, seq: 1 });
    const ownLines = timeline.recent().filter((l) => l.kind === 'own');
    expect(ownLines).toEqual([{ ...own, status: 'sent', epoch: 1, seq: 1 }]);
    expect(timeline.find('own-1')).toMatchObject({ status: 'sent' });
    // recent() is a copy.
    timeline.recent().splice(0);
    expect(timeline.recent()).toHaveLength(TIMELINE_START_LINES);
  });

  it('starts over for another identity: one timeline event with the newest lines', () => {
    const { timeline, events } = setup();
    timeline.addSystem('warning', 'of the old identity');
    const stored = {
      kind: 'message',
      id: 'h-1',
      from: 'bob',
      text: 'kept',
      epoch: 1,
      seq: 1,
      sentAt: 1,
      receivedAt: 2,
      historyId: 1,
    } as const;
    timeline.reset('group/alice', [stored]);
    expect(timeline.owner).toBe('group/alice');
    expect(timeline.recent()).toEqual([stored]);
    expect(events.at(-1)).toEqual({ type: 'timeline', lines: [stored] });
  });
});

describe('member list and verification', () => {
  it('marks and unmarks; refuses a member who is not here or whose certificate differs', () => {
    const { members, marks } = setup();
    members.update([
      { name: 'alice', fingerprint: FP_A },
      { name: 'bob', fingerprint: FP_B },
    ]);
    expect(members.entries.map((m) => [m.name, m.self, m.verified])).toEqual([
      ['alice', true, false],
      ['bob', false, false],
    ]);
    expect(() => members.setVerified({ name: 'carol', fingerprint: FP_B, verified: true })).toThrow(
      expect.objectContaining({ code: 'InvalidArgument' }),
    );
    expect(() => members.setVerified({ name: 'bob', fingerprint: FP_B2, verified: true })).toThrow(
      expect.objectContaining({ code: 'InvalidArgument' }),
    );
    expect(
      members.setVerified({ name: 'bob', fingerprint: FP_B, verified: true }).find((m) => m.name === 'bob'),
    ).toMatchObject({ verified: true });
    expect(marks.get()).toEqual({ bob: FP_B });
    members.setVerified({ name: 'bob', fingerprint: FP_B, verified: false });
    expect(marks.get()).toEqual({});
  });

  it('a verified member with another certificate: mark cleared, one warning, a system line, flagged until verified again', () => {
    const { members, marks, events, timeline } = setup();
    marks.set({ bob: FP_B });
    members.update([{ name: 'bob', fingerprint: FP_B2 }]);
    expect(marks.get()).toEqual({});
    expect(events.filter((e) => e.type === 'fingerprint-changed')).toEqual([
      expect.objectContaining({ name: 'bob', previousFingerprint: FP_B, currentFingerprint: FP_B2 }),
    ]);
    expect(
      timeline.recent().some((l) => l.kind === 'system' && l.event === 'warning' && l.name === 'bob'),
    ).toBe(true);
    expect(members.entries[0]).toMatchObject({
      name: 'bob',
      verified: false,
      fingerprintChanged: true,
      previousFingerprint: FP_B,
    });
    expect(members.warnings.map((w) => w.name)).toEqual(['bob']);

    members.setVerified({ name: 'bob', fingerprint: FP_B2, verified: true });
    expect(members.warnings).toEqual([]);
    expect(members.entries[0]).toMatchObject({ verified: true, fingerprintChanged: false });
  });

  it('never flags the own identity; clear() empties the list and says so', () => {
    const { members, marks, events } = setup();
    marks.set({ alice: FP_B });
    members.update([{ name: 'alice', fingerprint: FP_A }]);
    expect(events.some((e) => e.type === 'fingerprint-changed')).toBe(false);
    members.clear();
    expect(members.entries).toEqual([]);
    expect(events.at(-1)).toEqual({ type: 'members', members: [] });
  });
});

describe('file choices', () => {
  it('a token resolves to its path for its kind only, and expires after 30 minutes', () => {
    vi.useFakeTimers({ now: 1_000_000 });
    const choices = new FileChoices();
    const bundle = choices.remember('/home/u/alice.p12', 'bundle');
    expect(bundle.displayName).toBe('alice.p12');
    expect(bundle.token).toMatch(/^[A-Za-z0-9_-]{24}$/);
    expect(choices.resolve(bundle.token, 'bundle')).toBe('/home/u/alice.p12');
    expect(() => choices.resolve(bundle.token, 'folder')).toThrow(
      expect.objectContaining({ code: 'ChoiceExpired' }),
    );
    expect(() => choices.resolve('A'.repeat(24), 'bundle')).toThrow(
      expect.objectContaining({ code: 'ChoiceExpired' }),
    );
    vi.setSystemTime(1_000_000 + 30 * 60_000 + 1);
    expect(() => choices.resolve(bundle.token, 'bundle')).toThrow(
      expect.objectContaining({ code: 'ChoiceExpired', message: 'Choose the bundle file again.' }),
    );
    const folder = choices.remember('/tmp/group', 'folder');
    choices.forget(folder.token);
    expect(() => choices.resolve(folder.token, 'folder')).toThrow(
      expect.objectContaining({ message: 'Choose the folder again.' }),
    );
  });
});

describe('connection reasons in plain words', () => {
  it('names the relay address by the typed cause and passes other reasons through', () => {
    const at = { host: '127.0.0.1', port: 4000 };
    const reason = 'the engine’s words';
    expect(describeConnectionReason(reason, at, 'nothing-listening')).toBe(
      'Relay unreachable: nothing is listening at 127.0.0.1:4000.',
    );
    expect(describeConnectionReason(reason, at, 'host-unknown')).toMatch(/host name/);
    expect(describeConnectionReason(reason, at, 'no-answer')).toMatch(/does not answer/);
    expect(describeConnectionReason(reason, at, 'relay-reset')).toBe(
      'The relay at 127.0.0.1:4000 closed the connection.',
    );
    // Words alone are never classified: an error code in a message is not a cause.
    expect(describeConnectionReason('connect ECONNREFUSED 127.0.0.1:4000', at)).toBe(
      'connect ECONNREFUSED 127.0.0.1:4000',
    );
    expect(describeConnectionReason(reason, at, 'relay-silent')).toBe(reason);
    expect(describeConnectionReason(undefined, at, 'nothing-listening')).toBeUndefined();
    expect([
      isUnreachable('nothing-listening'),
      isUnreachable('relay-reset'),
      isUnreachable(undefined),
    ]).toEqual([true, false, false]);
  });
});

describe('roster changes in words', () => {
  it('names who was added and who was removed, or says only certificates changed', () => {
    const before = { members: ['alice', 'bob', 'carol'], removed: [] };
    expect(
      rosterChangeText(before, { version: 3, members: ['alice', 'bob', 'dave'], removed: ['carol'] }),
    ).toBe('The group changed (roster v3): dave added; carol removed.');
    expect(rosterChangeText(before, { version: 4, ...before })).toBe(
      'The group changed (roster v4): certificates renewed.',
    );
  });
});

describe('own lines awaiting the relay’s ack', () => {
  it('gives each stored epoch/seq its line once, and forgets the oldest past its bound', () => {
    const acks = new AwaitingAcks();
    acks.wrote(1, 1, 'own-a');
    acks.wrote(1, 2, 'own-b');
    expect(acks.stored(1, 2)).toBe('own-b');
    expect(acks.stored(1, 2)).toBeUndefined();
    for (let seq = 3; seq < 3 + MAX_AWAITING_ACK; seq++) acks.wrote(1, seq, `own-${seq}`);
    expect(acks.stored(1, 1)).toBeUndefined();
    expect(acks.stored(1, 3)).toBe('own-3');
  });
});

describe('connection cause (typed, for the header indicator)', () => {
  it('passes on the engine’s code for a relay that went silent; a removal outranks it', () => {
    expect(connectionCause('relay-silent', false)).toBe('relay-silent');
    expect(connectionCause(undefined, false)).toBeUndefined();
    expect(connectionCause(undefined, true)).toBe('removed');
    expect(connectionCause('relay-silent', true)).toBe('removed');
  });
});
