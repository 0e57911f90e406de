/**
 * Body encoding: JSON, with Buffers written as base64 strings. Decoding is JSON.parse of a bounded
 * byte string followed by a strict schema; nothing is ever revived into objects with behaviour.
 */
import type { z } from 'zod';
import { ProtocolError } from './errors.js';

type Wire = string | number | boolean | null | Wire[] | { [key: string]: Wire };

function toWire(value: unknown): Wire {
  if (Buffer.isBuffer(value) || value instanceof Uint8Array) return Buffer.from(value).toString('base64');
  if (Array.isArray(value)) return value.map(toWire);
  if (value !== null && typeof value === 'object') {
    const out: Record<string, Wire> = {};
    for (const [k, v] of Object.entries(value)) if (v !== undefined) out[k] = toWire(v);
    return out;
  }
  if (
    typeof value === 'string' ||
    typeof value === 'number' ||
    typeof value === 'boolean' ||
    value === null
  ) {
    return value;
  }
  throw new TypeError(`cannot encode a ${typeof value} in a message body`);
}

export function encodeJsonBody(value: unknown): Buffer {
  return Buffer.from(JSON.stringify(toWire(value)), 'utf8');
}

const STRICT_UTF8 = new TextDecoder('utf-8', { fatal: true });

/**
 * `fast`: a check that accepts only what `schema` accepts, returning the same value, or undefined
 * when it is not sure; the schema then decides (fast-bodies.ts).
 */
export function decodeJsonBody<S extends z.ZodType>(
  schema: S,
  bytes: Uint8Array,
  what: string,
  fast?: (raw: unknown) => z.output<S> | undefined,
): z.output<S> {
  let raw: unknown;
  try {
    raw = JSON.parse(STRICT_UTF8.decode(bytes));
  } catch {
    throw new ProtocolError('SchemaViolation', `${what} is not valid UTF-8 JSON`);
  }
  const quick = fast?.(raw);
  if (quick !== undefined) return quick;
  const result = schema.safeParse(raw);
  if (!result.success) {
    const issue = result.error.issues[0];
    const where = issue?.path.length ? ` at ${issue.path.join('.')}` : '';
    throw new ProtocolError('SchemaViolation', `${what} rejected${where}: ${issue?.message ?? 'invalid'}`);
  }
  return result.data;
}
