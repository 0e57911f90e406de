/** `chat --relay HOST:PORT[,HOST:PORT...]`: the addresses in order, and what is refused. */
import { describe, expect, it } from 'vitest';
import { parseRelayAddress, parseRelayAddresses } from '../../src-main/cli/commands/chat.js';
import { CliError } from '../../src-main/cli/cli-error.js';

describe('chat --relay', () => {
  it('one address is one address, as before', () => {
    expect(parseRelayAddresses('127.0.0.1:7443')).toEqual([parseRelayAddress('127.0.0.1:7443')]);
    expect(parseRelayAddresses('[::1]:7443')).toEqual([{ host: '::1', port: 7443 }]);
  });

  it('several, comma-separated, in the order given', () => {
    expect(parseRelayAddresses('node1.example:7443,10.0.0.2:7444, [::1]:7445')).toEqual([
      { host: 'node1.example', port: 7443 },
      { host: '10.0.0.2', port: 7444 },
      { host: '::1', port: 7445 },
    ]);
  });

  it('refuses an empty entry, a bad port and an address listed twice, as usage errors', () => {
    for (const bad of ['a:1,', ',a:1', 'a:1,,b:2', 'a:1,b:0', 'a:1,b', 'a:1,A:1']) {
      let caught: unknown;
      try {
        parseRelayAddresses(bad);
      } catch (err) {
        caught = err;
      }
      expect(caught, bad).toBeInstanceOf(CliError);
      expect((caught as CliError).exitCode, bad).toBe(2);
    }
  });
});
