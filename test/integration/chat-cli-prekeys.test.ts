/**
 * `chat --prekey-rotation` / `--prekey-retention` with real processes: the flag reaches the engine
 * (a member publishes a second prekey within the test, which the 7-day default never would, as
 * the relay's `prekey-stored` lines show), and a value that is not a duration exits 2 with the
 * flag named.
 */
import { afterEach, beforeAll, describe, expect, it } from 'vitest';
import { makeLoadedGroup, type LoadedGroup } from '../helpers/client-identities.js';
import { ChatProcess, cleanup } from '../helpers/client-processes.js';
import { startRelay, type RelayProcess } from '../helpers/relay-process.js';

let g: LoadedGroup;
let relay: RelayProcess | undefined;
let running: ChatProcess[] = [];

beforeAll(() => {
  g = makeLoadedGroup(['alice', 'bob']);
});

afterEach(async () => {
  await cleanup(...running);
  running = [];
  await relay?.stop();
  relay = undefined;
});

describe('chat: prekey flags', () => {
  it('--prekey-rotation 1s: a new signed prekey is published on that schedule', async () => {
    relay = await startRelay(g.group.relayBundle);
    const address = `127.0.0.1:${relay.port}`;
    for (const n of ['alice', 'bob']) {
      const p = ChatProcess.start(n, g.group.bundles[n] as string, address, {
        extraArgs: ['--prekey-rotation', '1s', '--prekey-retention', '1h'],
      });
      running.push(p);
    }
    for (const serial of [1, 2]) {
      await relay.waitForLog(
        (l) => l.event === 'prekey-stored' && l.name === 'alice' && l.serial === serial,
        `alice's prekey ${serial}`,
      );
    }
  }, 60_000);

  it('a value that is not a duration exits 2 and names the flag', async () => {
    relay = await startRelay(g.group.relayBundle);
    for (const bad of ['7 days', '0s', '5']) {
      const p = ChatProcess.start('alice', g.group.bundles.alice as string, `127.0.0.1:${relay.port}`, {
        extraArgs: ['--prekey-rotation', bad],
      });
      running.push(p);
      expect(await p.exited).toBe(2);
      expect(p.stderr).toContain('--prekey-rotation must be a duration');
    }
  }, 60_000);
});
