/**
 * Chat basics at the service boundary (a real app service, no relay needed): a message over the
 * shared limit is refused with MessageTooLong before anything else, and a message's link reaches
 * the external-link port only through the validating contract and the service's own check.
 */
import { afterAll, describe, expect, it } from 'vitest';
import { createInvoker } from '../../src-main/app/ipc-router.js';
import { CHANNELS, MAX_MESSAGE_CHARS } from '../../src-shared/ipc-contract.js';
import { createTestApp, type TestApp } from './app-harness.js';

const apps: TestApp[] = [];
afterAll(async () => {
  for (const app of apps) await app.service.dispose();
});

describe('app service: chat basics', () => {
  it('refuses a message over the limit with MessageTooLong, the reason and [limit, length]', async () => {
    const app = await createTestApp();
    apps.push(app);
    const invoke = createInvoker(app.service);
    const text = 'x'.repeat(MAX_MESSAGE_CHARS + 7);
    for (const result of [await app.service.send({ text }), await invoke(CHANNELS.send, { text })]) {
      expect(result).toEqual({
        ok: false,
        error: {
          code: 'MessageTooLong',
          message: `This message is 7 characters too long (limit ${MAX_MESSAGE_CHARS}).`,
          details: [String(MAX_MESSAGE_CHARS), String(MAX_MESSAGE_CHARS + 7)],
        },
      });
    }
    // At the limit the length is fine: what fails is only that this app holds no identity yet.
    const atLimit = await app.service.send({ text: 'x'.repeat(MAX_MESSAGE_CHARS) });
    expect(atLimit).toMatchObject({ ok: false, error: { code: 'NoIdentity' } });
  });

  it('opens exactly the confirmed link through the port; other URLs never reach it', async () => {
    const app = await createTestApp();
    apps.push(app);
    const invoke = createInvoker(app.service);
    const url = 'https://example.org/path?q=1#frag';
    expect(await invoke(CHANNELS.openExternal, { url })).toEqual({ ok: true, value: null });
    expect(app.links.opened).toEqual([url]);
    // The contract refuses these before the service…
    for (const bad of [
      'javascript:alert(1)',
      'file:///etc/passwd',
      `https://a.example/${'a'.repeat(2048)}`,
    ]) {
      expect(await invoke(CHANNELS.openExternal, { url: bad })).toMatchObject({
        ok: false,
        error: { code: 'InvalidArgument' },
      });
    }
    // …and the service checks again when called directly.
    expect(await app.service.openExternal({ url: 'file:///etc/passwd' })).toMatchObject({
      ok: false,
      error: { code: 'LinkRefused' },
    });
    expect(app.links.opened).toEqual([url]);
  });
});
