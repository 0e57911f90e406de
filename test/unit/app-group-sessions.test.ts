/**
 * The groups the app holds (src-main/app/group-sessions.ts), over real group sessions on the test
 * app's ports: which group's events reach the window, unread counts per group while the window is
 * in front or not, which group is shown after a removal, and the group shown last time at start.
 */
import { afterAll, describe, expect, it } from 'vitest';
import { EventHub } from '../../src-main/app/event-hub.js';
import { FileChoices } from '../../src-main/app/file-choices.js';
import { GroupSessions } from '../../src-main/app/group-sessions.js';
import { KeptIdentities } from '../../src-main/app/kept-identities.js';
import { AppMemberState } from '../../src-main/app/member-state.js';
import { Settings } from '../../src-main/app/settings.js';
import { UnreadCounts } from '../../src-main/app/unread.js';
import { WindowAttention } from '../../src-main/app/window-attention.js';
import type { AppEvent } from '../../src-shared/ipc-contract.js';
import { testPorts } from '../integration/app-harness.js';

const closers: (() => Promise<void>)[] = [];
afterAll(async () => {
  for (const close of closers) await close();
});

const TEAM = `${'aa'.repeat(32)}/alice`;
const FAMILY = `${'bb'.repeat(32)}/alice`;

function setup(settingsDir?: string) {
  const test = testPorts(settingsDir !== undefined ? { settingsDir } : {});
  const { ports } = test;
  closers.push(() => ports.pki.close());
  const settings = new Settings(ports.settings);
  const memberState = new AppMemberState({ dataDir: ports.dataDir, settings, secrets: ports.secrets });
  const hub = new EventHub();
  const events: AppEvent[] = [];
  hub.on((e) => events.push(e));
  const unread = new UnreadCounts(ports.attention ?? { setUnread: () => undefined });
  const groups = new GroupSessions({
    session: { ports, settings, kept: new KeptIdentities(settings), choices: new FileChoices(), memberState },
    settings,
    hub,
    unread,
    attention: new WindowAttention({ notifications: ports.notifications, settings }),
  });
  const lastGroups = () => events.filter((e) => e.type === 'groups').at(-1);
  return { ...test, groups, events, unread, lastGroups };
}

describe('group sessions', () => {
  it('forwards only the shown group’s events to the window', () => {
    const { groups, events } = setup();
    const team = groups.add(TEAM);
    const family = groups.add(FAMILY);
    groups.activate(team);
    events.length = 0;
    team.hub.emit({ type: 'menu', action: 'import-identity' });
    family.hub.emit({ type: 'menu', action: 'start-relay' });
    expect(events).toEqual([{ type: 'menu', action: 'import-identity' }]);
    groups.activate(family);
    events.length = 0;
    team.hub.emit({ type: 'menu', action: 'import-identity' });
    family.hub.emit({ type: 'menu', action: 'start-relay' });
    expect(events).toEqual([{ type: 'menu', action: 'start-relay' }]);
  });

  it('counts unread per group: the shown one only while the window is not in front', () => {
    const { groups, unread, unreadCounts, notifications, lastGroups } = setup();
    const team = groups.add(TEAM);
    const family = groups.add(FAMILY);
    groups.activate(team);
    groups.incoming(team, 'bob', 'seen as it comes');
    groups.incoming(family, 'carol', 'one');
    groups.incoming(family, 'carol', 'two');
    expect([unread.of(TEAM), unread.of(FAMILY)]).toEqual([0, 2]);
    expect(lastGroups()).toMatchObject({
      activeGroup: TEAM,
      groups: [
        { id: TEAM, unread: 0 },
        { id: FAMILY, unread: 2 },
      ],
    });
    groups.focus(false);
    groups.incoming(team, 'bob', 'while away');
    expect(unread.of(TEAM)).toBe(1);
    // Back in front: the shown group is read, the other keeps its count.
    groups.focus(true);
    expect([unread.of(TEAM), unread.of(FAMILY)]).toEqual([0, 2]);
    groups.activate(family);
    expect(unread.total).toBe(0);
    expect(unreadCounts).toEqual([1, 2, 3, 2, 0]);
    // Each live message goes to its group's notification (the shell shows none while in front).
    expect(notifications.map((n) => n.group)).toEqual([TEAM, FAMILY, FAMILY, TEAM]);
  });

  it('shows the next group after a removal, and none when the last is gone', () => {
    const { groups, settings, lastGroups } = setup();
    const team = groups.add(TEAM);
    const family = groups.add(FAMILY);
    groups.activate(family);
    groups.incoming(family, 'carol', 'unread then removed');
    groups.focus(false);
    groups.incoming(family, 'carol', 'unread then removed');
    groups.drop(family);
    groups.settle();
    expect(groups.active).toBe(team);
    expect(settings.get('activeGroup')).toBe(TEAM);
    expect(lastGroups()).toEqual({
      type: 'groups',
      activeGroup: TEAM,
      groups: [expect.objectContaining({ id: TEAM })],
    });
    groups.drop(team);
    groups.settle();
    expect(groups.active).toBeUndefined();
    expect(settings.get('activeGroup')).toBeUndefined();
    expect(() => groups.require()).toThrow(expect.objectContaining({ code: 'NoIdentity' }));
    expect(lastGroups()).toEqual({ type: 'groups', groups: [] });
  });

  it('starts with the group shown last time, or the first when that one is gone', () => {
    const first = setup();
    first.groups.add(TEAM);
    first.groups.activate(first.groups.add(FAMILY));
    const again = setup(first.settingsDir);
    again.groups.add(TEAM);
    again.groups.add(FAMILY);
    again.groups.restoreActive();
    expect(again.groups.active?.id).toBe(FAMILY);
    const without = setup(first.settingsDir);
    without.groups.add(TEAM);
    without.groups.restoreActive();
    expect(without.groups.active?.id).toBe(TEAM);
  });
});
