/**
 * One dispatcher for both bridges (Electron IPC and the browser tests' exposeFunction): finds the
 * contract method of a channel, validates the raw argument with the contract's schema and calls
 * the service. Anything that arrives from a renderer is untrusted; nothing here throws.
 */
import {
  CONTRACT,
  fail,
  methodOfChannel,
  parseArgs,
  type Method,
  type Result,
  type ServiceApi,
} from '../../src-shared/ipc-contract.js';

export type Invoke = (channel: string, raw: unknown) => Promise<Result<unknown>>;

export async function invokeMethod(
  service: ServiceApi,
  method: Method,
  raw: unknown,
): Promise<Result<unknown>> {
  const parsed = parseArgs(method, raw);
  if (!parsed.ok) return parsed;
  try {
    const call = service[method] as (arg?: unknown) => Promise<Result<unknown>>;
    return await call.call(service, parsed.value);
  } catch (err) {
    // Service methods return results; this is a last line of defence.
    return fail('Internal', `Something went wrong: ${err instanceof Error ? err.message : String(err)}`);
  }
}

export function createInvoker(service: ServiceApi): Invoke {
  return async (channel, raw) => {
    const method = methodOfChannel(channel);
    if (!method) return fail('UnknownChannel', `unknown request ${String(channel).slice(0, 80)}`);
    return invokeMethod(service, method, raw);
  };
}

/** Every channel of the contract, for binders. */
export function contractChannels(): { method: Method; channel: string }[] {
  return (Object.keys(CONTRACT) as Method[]).map((method) => ({ method, channel: CONTRACT[method].channel }));
}
