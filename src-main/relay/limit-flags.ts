/**
 * Command-line flags for the relay limits, shared by `securechat-x relay` and its documentation.
 * Every flag takes a non-negative integer; see limits.ts for the meaning and docs/relay.md for
 * the defaults.
 */
import { limitBounds, type RelayLimits } from './limits.js';

export const LIMIT_FLAGS: Record<string, keyof RelayLimits> = {
  'max-connections': 'maxConnections',
  'max-pending': 'maxPending',
  'max-pending-per-address': 'maxPendingPerAddress',
  'pressure-auth-timeout-ms': 'pressureAuthTimeoutMs',
  'max-frame-bytes': 'maxFrameBytes',
  'max-preauth-frame-bytes': 'maxPreAuthFrameBytes',
  'auth-timeout-ms': 'authTimeoutMs',
  'max-auth-failures': 'maxAuthFailures',
  'address-auth-failures': 'addressAuthFailuresPerMinute',
  'identity-auth-failures': 'identityAuthFailuresPerMinute',
  'max-protocol-errors': 'maxProtocolErrors',
  'error-decay-ms': 'errorDecayMs',
  'rate-frames': 'rateFramesPerSec',
  'rate-frame-burst': 'rateFrameBurst',
  'rate-bytes': 'rateBytesPerSec',
  'rate-byte-burst': 'rateByteBurst',
  'cert-request-cost': 'certRequestCost',
  'max-outbound-bytes': 'maxOutboundBytes',
  'stall-timeout-ms': 'stallTimeoutMs',
  'presence-interval-ms': 'presenceIntervalMs',
  'close-linger-ms': 'closeLingerMs',
  'heartbeat-interval-ms': 'heartbeatIntervalMs',
  'heartbeat-timeout-ms': 'heartbeatTimeoutMs',
  'retention-days': 'retentionDays',
  'retention-mb': 'retentionMb',
  'roster-window-ms': 'rosterWindowMs',
};

/** Parses the limit flags present in `values` (strings) into a partial RelayLimits. */
export function limitsFromFlags(values: Record<string, unknown>): Partial<RelayLimits> {
  const out: Partial<RelayLimits> = {};
  for (const [flag, name] of Object.entries(LIMIT_FLAGS)) {
    const raw = values[flag];
    if (raw === undefined) continue;
    if (typeof raw !== 'string' || !/^\d+$/.test(raw)) {
      throw new RangeError(`--${flag} needs a non-negative integer, got "${String(raw)}"`);
    }
    const value = Number(raw);
    // Checked here as well as in resolveLimits, so that the message names the flag the user typed.
    const [min, max] = limitBounds(name);
    if (value < min || value > max) {
      throw new RangeError(`--${flag} must be an integer from ${min} to ${max}, got ${raw}`);
    }
    out[name] = value;
  }
  return out;
}
