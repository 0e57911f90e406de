/** Notifications grouped per group (app/notification-digest.ts). */
import { describe, expect, it } from 'vitest';
import { NotificationDigest } from '../../src-main/app/notification-digest.js';

const team = { id: 'g1', name: 'Team' };

describe('the notification digest', () => {
  it('without previews: the group as title, a count and who wrote, never the text', () => {
    const d = new NotificationDigest();
    expect(d.add(team, 'alice', 'secret plans', false)).toEqual({
      group: 'g1',
      title: 'Team',
      body: 'A new message from alice',
    });
    d.add(team, 'bob', 'more', false);
    d.add(team, 'alice', 'again', false);
    expect(d.add(team, 'carol', 'x', false).body).toBe('4 new messages from alice, bob and carol');
    const last = d.add(team, 'dave', 'y', false);
    expect(last.body).toBe('5 new messages from alice, bob and 2 others');
    expect(JSON.stringify(last)).not.toMatch(/secret|plans/);
  });

  it('with previews: the sender and text, then the count with the latest line; reset starts over', () => {
    const d = new NotificationDigest();
    expect(d.add(team, 'alice', 'hi', true)).toEqual({ group: 'g1', title: 'alice in Team', body: 'hi' });
    expect(d.add(team, 'bob', 'x'.repeat(300), true)).toEqual({
      group: 'g1',
      title: 'Team: 2 new messages',
      body: `bob: ${'x'.repeat(199)}…`,
    });
    d.reset();
    expect(d.add(team, 'bob', 'fresh', true).title).toBe('bob in Team');
  });
});
