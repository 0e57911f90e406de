/**
 * The timeline's link splitting (src-renderer/src/lib/linkify.ts), the shared message limit and
 * the link check (src-shared/limits.ts), and the main side's link opener
 * (src-main/app/external-links.ts) against a recording port.
 */
import fc from 'fast-check';
import { describe, expect, it } from 'vitest';
import { openExternalLink } from '../../src-main/app/external-links.js';
import { AppFailure } from '../../src-main/app/errors.js';
import { MAX_TEXT_CHARS } from '../../src-main/client/chat-codec.js';
import { LIMITS } from '../../src-main/core/protocol/schemas.js';
import { linkify, type Segment } from '../../src-renderer/src/lib/linkify.js';
import { CONTRACT } from '../../src-shared/ipc-contract.js';
import {
  charactersOverLimit,
  isOpenableUrl,
  MAX_MESSAGE_CHARS,
  tooLongReason,
} from '../../src-shared/limits.js';

const joined = (segments: Segment[]): string => segments.map((s) => s.text).join('');
const links = (text: string): string[] => linkify(text).flatMap((s) => (s.kind === 'link' ? [s.url] : []));

describe('linkify', () => {
  it('finds http and https links and nothing else', () => {
    expect(linkify('see https://example.org/a?b=c#d now')).toEqual([
      { kind: 'text', text: 'see ' },
      { kind: 'link', text: 'https://example.org/a?b=c#d', url: 'https://example.org/a?b=c#d' },
      { kind: 'text', text: ' now' },
    ]);
    expect(links('http://a.example and HTTPS://B.EXAMPLE/x')).toEqual([
      'http://a.example',
      'HTTPS://B.EXAMPLE/x',
    ]);
    for (const text of [
      'javascript:alert(1)',
      'file:///etc/passwd',
      'ftp://example.org/x',
      'data:text/html,<b>x</b>',
      'mailto:a@example.org',
      'www.example.org',
      'xhttps://example.org',
      'https://',
      'http:// spaced.example',
      'plain words only',
    ]) {
      expect(links(text), text).toEqual([]);
      expect(linkify(text), text).toEqual([{ kind: 'text', text }]);
    }
  });

  it('leaves trailing punctuation out of the link; a balanced ) stays', () => {
    expect(links('Read https://example.org/page.')).toEqual(['https://example.org/page']);
    expect(links('(see https://example.org/x), then')).toEqual(['https://example.org/x']);
    expect(links('Really? https://example.org/q?!')).toEqual(['https://example.org/q']);
    expect(links('one https://a.example/1, two https://b.example/2;')).toEqual([
      'https://a.example/1',
      'https://b.example/2',
    ]);
    expect(links('https://en.wikipedia.org/wiki/Rust_(language).')).toEqual([
      'https://en.wikipedia.org/wiki/Rust_(language)',
    ]);
    expect(links('“https://example.org/quoted”')).toEqual(['https://example.org/quoted']);
  });

  it('markup in a message stays text: the link stops at < and quotes', () => {
    const text = '<a href="https://evil.example/">x</a> <img src=x onerror=alert(1)>';
    const segments = linkify(text);
    expect(joined(segments)).toBe(text);
    expect(links(text)).toEqual(['https://evil.example/']);
    expect(links('https://a.example/"onmouseover="x')).toEqual(['https://a.example/']);
  });

  it('right-to-left text around a link is kept as is', () => {
    const text = 'שלום https://example.org/עברית עולם';
    expect(joined(linkify(text))).toBe(text);
    expect(links(text)).toEqual(['https://example.org/עברית']);
  });

  it('property: joining the segments gives back the text; links are openable and trimmed', () => {
    const piece = fc.oneof(
      fc.string(),
      fc.string({ unit: 'grapheme' }),
      fc.constantFrom('https://', 'http://', 'HTTP://', ' ', '\n', '.', ',', ')', '(', '!', '?', '<', '"'),
      fc.webUrl({ withQueryParameters: true, withFragments: true }),
    );
    fc.assert(
      fc.property(fc.array(piece, { maxLength: 12 }), (pieces) => {
        const text = pieces.join('');
        const segments = linkify(text);
        expect(joined(segments)).toBe(text);
        for (const [i, s] of segments.entries()) {
          expect(s.text.length).toBeGreaterThan(0);
          if (s.kind === 'text') {
            expect(segments[i + 1]?.kind).not.toBe('text');
            continue;
          }
          expect(s.url).toBe(s.text);
          expect(isOpenableUrl(s.url)).toBe(true);
          expect(/^https?:\/\//i.test(s.url)).toBe(true);
          expect(/[.,;:!?]$/.test(s.url)).toBe(false);
          expect(CONTRACT.openExternal.args.safeParse({ url: s.url }).success).toBe(true);
        }
      }),
      { numRuns: 500 },
    );
  });

  it('property: every web URL between spaces is found whole (minus trailing punctuation)', () => {
    fc.assert(
      fc.property(fc.webUrl(), fc.constantFrom('', '.', ',', '!', '?'), (url, tail) => {
        fc.pre(url.length <= 2048 && !/[<>"'`\s]/.test(url) && !/[.,;:!?)\]}*]$/.test(url));
        expect(links(`say ${url}${tail} ok`)).toEqual([url]);
      }),
    );
  });
});

describe('message limit (shared by the renderer, the contract and the engine)', () => {
  it('is the engine’s and the protocol’s limit, in UTF-16 code units', () => {
    expect(MAX_MESSAGE_CHARS).toBe(LIMITS.textChars);
    expect(MAX_MESSAGE_CHARS).toBe(MAX_TEXT_CHARS);
    expect(charactersOverLimit('x'.repeat(MAX_MESSAGE_CHARS))).toBe(0);
    expect(charactersOverLimit('x'.repeat(MAX_MESSAGE_CHARS + 5))).toBe(5);
    // An astral character counts twice, as the engine counts it.
    expect(charactersOverLimit('😀'.repeat(MAX_MESSAGE_CHARS / 2 + 1))).toBe(2);
  });

  it('says how far over and the limit', () => {
    expect(tooLongReason(1)).toBe(`This message is 1 character too long (limit ${MAX_MESSAGE_CHARS}).`);
    expect(tooLongReason(1200)).toBe(
      `This message is 1200 characters too long (limit ${MAX_MESSAGE_CHARS}).`,
    );
  });
});

describe('external links (main side)', () => {
  const recorder = () => {
    const opened: string[] = [];
    return { opened, port: { openExternal: async (url: string) => void opened.push(url) } };
  };

  it('opens exactly the http(s) URL it is given', async () => {
    const { opened, port } = recorder();
    expect(await openExternalLink(port, 'https://example.org/a?b=c#d')).toBeNull();
    expect(await openExternalLink(port, 'http://127.0.0.1:8080/')).toBeNull();
    expect(opened).toEqual(['https://example.org/a?b=c#d', 'http://127.0.0.1:8080/']);
  });

  it('hands the browser the URL as parsed, not as typed', async () => {
    const { opened, port } = recorder();
    await openExternalLink(port, 'https://EXAMPLE.org/a b\tc');
    expect(opened).toEqual(['https://example.org/a%20bc']);
  });

  it('re-validates: anything else is refused with LinkRefused and never reaches the port', async () => {
    const { opened, port } = recorder();
    for (const url of [
      'javascript:alert(1)',
      'file:///etc/passwd',
      'app://securechat/index.html',
      'data:text/html,x',
      'smb://host/share',
      'https://',
      'nonsense',
      '',
      `https://example.org/${'a'.repeat(2048)}`,
    ]) {
      const failure = await openExternalLink(port, url).catch((err: unknown) => err);
      expect(failure, url).toBeInstanceOf(AppFailure);
      expect((failure as AppFailure).code).toBe('LinkRefused');
    }
    expect(opened).toEqual([]);
  });

  it('a failing browser launch is a plain error', async () => {
    const port = {
      openExternal: async () => {
        throw new Error('no handler');
      },
    };
    await expect(openExternalLink(port, 'https://example.org/')).rejects.toMatchObject({
      code: 'Internal',
      message: expect.stringContaining('no handler'),
    });
  });
});
