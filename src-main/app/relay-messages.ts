/**
 * Messages between the app and the relay child process (src-main/relay/child-entry.ts). What the
 * child posts is checked like any other input and narrowed to what the app shows.
 */
import { z } from 'zod';
import type { RelayChildMessage, RelayLaunchOptions } from './ports.js';

const MemberRef = z.union([z.string().max(64), z.object({ name: z.string().max(64) })]);

const ChildMessageSchema = z.discriminatedUnion('type', [
  z.object({
    type: z.literal('listening'),
    host: z.string().max(256),
    port: z.number().int().min(0).max(65535),
  }),
  z.object({
    type: z.literal('members'),
    count: z.number().int().min(0),
    members: z.array(MemberRef).max(10_000),
  }),
  z.object({ type: z.literal('error'), message: z.string().max(4096) }),
  z.object({ type: z.literal('stopped') }),
]);

/** Narrows a child message; undefined for anything unexpected (and for `stopped`, which exit covers). */
export function parseRelayChildMessage(message: unknown): RelayChildMessage | undefined {
  const parsed = ChildMessageSchema.safeParse(message);
  if (!parsed.success) return undefined;
  const m = parsed.data;
  switch (m.type) {
    case 'listening':
      return { type: 'listening', host: m.host, port: m.port };
    case 'members':
      return {
        type: 'members',
        count: m.count,
        members: m.members.map((x) => (typeof x === 'string' ? x : x.name)),
      };
    case 'error':
      return { type: 'error', message: m.message };
    default:
      return undefined;
  }
}

/** The environment variable that carries the bundle password to the child (never argv). */
export const RELAY_PASSWORD_ENV = 'SECURECHAT_RELAY_PASSWORD';

/** The child's arguments and environment for one launch (child-entry's RelayChildConfig). */
export function relayLaunchSpec(
  options: RelayLaunchOptions,
  baseEnv: NodeJS.ProcessEnv,
): { args: string[]; env: Record<string, string> } {
  const config = {
    bundlePath: options.bundlePath,
    host: options.host,
    port: options.port,
    passwordEnv: RELAY_PASSWORD_ENV,
    logLevel: 'warn',
    dataDir: options.dataDir,
  };
  const env: Record<string, string> = {};
  for (const [k, v] of Object.entries(baseEnv))
    if (v !== undefined && k !== 'SECURECHAT_PASSWORD') env[k] = v;
  env[RELAY_PASSWORD_ENV] = options.password;
  return { args: [JSON.stringify(config)], env };
}
