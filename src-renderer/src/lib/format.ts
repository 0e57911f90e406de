export { groupFingerprint, safetyNumberGroups, shortFingerprint } from '../../../src-shared/format.js';

const timeFormat = new Intl.DateTimeFormat(undefined, { hour: '2-digit', minute: '2-digit' });
const dateTimeFormat = new Intl.DateTimeFormat(undefined, { dateStyle: 'medium', timeStyle: 'short' });
const dateFormat = new Intl.DateTimeFormat(undefined, { dateStyle: 'medium' });

export function formatTime(ms: number): string {
  return timeFormat.format(new Date(ms));
}

export function formatDateTime(ms: number): string {
  return dateTimeFormat.format(new Date(ms));
}

export function formatDate(ms: number): string {
  return dateFormat.format(new Date(ms));
}

export function initials(name: string): string {
  const parts = name.split(/[._-]+/).filter(Boolean);
  const letters = parts.length > 1 ? (parts[0]?.[0] ?? '') + (parts[1]?.[0] ?? '') : name.slice(0, 2);
  return letters.toUpperCase();
}

/** A stable hue per name, for avatars. */
export function hueOf(name: string): number {
  let h = 0;
  for (let i = 0; i < name.length; i++) h = (h * 31 + name.charCodeAt(i)) % 360;
  return h;
}

/** A member's presence in words for the organiser's roster: online, when last seen, or never. */
export function presenceWords(online: boolean, lastSeen: number | undefined, now: number): string {
  if (online) return 'Online';
  if (lastSeen === undefined) return 'Not seen yet';
  const minutes = Math.floor(Math.max(0, now - lastSeen) / 60_000);
  if (minutes < 1) return 'Last seen just now';
  if (minutes < 60) return `Last seen ${minutes} min ago`;
  const hours = Math.floor(minutes / 60);
  if (hours < 24) return `Last seen ${hours} h ago`;
  return `Last seen ${formatDate(lastSeen)}`;
}
