/**
 * `securechat-x history --bundle B [--state-dir DIR] [--json] [--search TEXT] [--limit N]`
 *
 * Prints what this member's encrypted state store holds: every message it was shown and every one
 * it sent, oldest first. `--json` prints the same `message` lines as `chat --json`. Reads only:
 * it never creates a store, and it can run while `chat` runs on the same store.
 */
import { parseArgs } from 'node:util';
import { HISTORY_PAGE_MAX, type HistoryEntry } from '../../client/state/history.js';
import { humanLine, jsonLine } from '../chat-output.js';
import { CliError } from '../cli-error.js';
import { openMemberBundle } from '../member-bundle.js';
import { openStateStore } from '../state-store.js';

export const HISTORY_USAGE = `usage: securechat-x history --bundle FILE [options]

Prints the messages kept in your encrypted local state store, oldest first.
The bundle password (SECURECHAT_PASSWORD or --password-file FILE) opens the store.

options:
  --bundle FILE              your member bundle (.p12)
  --state-dir DIR            the store chat used (default $XDG_DATA_HOME/securechat-x/<group id>/<name>)
  --json                     one "message" line per message, as chat --json prints them
  --search TEXT              only messages containing TEXT (case-insensitive)
  --limit N                  only the newest N (with --search: at most ${HISTORY_PAGE_MAX}, the default)
  --password-file FILE       read the bundle password from the first line of FILE
  --expect-ca SHA256HEX      refuse the bundle unless its group CA has this fingerprint
  -h, --help                 this text
`;

function limitOf(value: string | undefined): number | undefined {
  if (value === undefined) return undefined;
  if (!/^\d+$/.test(value) || Number(value) < 1) throw new CliError('--limit must be a positive integer', 2);
  return Number(value);
}

export async function run(argv: string[]): Promise<number> {
  const { values } = parseArgs({
    args: argv,
    options: {
      bundle: { type: 'string' },
      'state-dir': { type: 'string' },
      json: { type: 'boolean', default: false },
      search: { type: 'string' },
      limit: { type: 'string' },
      'password-file': { type: 'string' },
      'expect-ca': { type: 'string' },
      help: { type: 'boolean', short: 'h' },
    },
    allowPositionals: false,
    strict: true,
  });
  if (values.help) {
    process.stdout.write(HISTORY_USAGE);
    return 0;
  }
  if (!values.bundle) throw new CliError(`--bundle is required\n\n${HISTORY_USAGE}`, 2);
  const limit = limitOf(values.limit);
  if (values.search !== undefined && values.search.length === 0) {
    throw new CliError('--search needs some text', 2);
  }
  const { identity, password, owner, stateDir } = await openMemberBundle('history', {
    bundle: values.bundle,
    'password-file': values['password-file'],
    'expect-ca': values['expect-ca'],
    'state-dir': values['state-dir'],
  });
  const store = await openStateStore(stateDir, password, owner, { mustExist: true });
  const json = values.json === true;
  const out: string[] = [];
  const print = (e: HistoryEntry): void => {
    const event = {
      event: 'message' as const,
      from: e.from,
      text: e.text,
      epoch: e.epoch,
      seq: e.seq,
      ...(e.offset !== undefined ? { offset: e.offset } : {}),
      sentAt: e.sentAt,
    };
    const line = json
      ? jsonLine(event)
      : `${new Date(e.sentAt).toISOString()}  ${humanLine(event, identity.name)}`;
    if (line !== undefined) out.push(line);
    // Written in chunks: a long history must not sit in memory as one string.
    if (out.length >= 500) flush();
  };
  const flush = (): void => {
    if (out.length > 0) process.stdout.write(`${out.join('\n')}\n`);
    out.length = 0;
  };
  try {
    if (values.search !== undefined) {
      for (const e of store.history.search(values.search, limit ?? HISTORY_PAGE_MAX)) print(e);
    } else if (limit !== undefined) {
      // The newest `limit`, oldest first: pages backwards, printed forwards.
      const pages: HistoryEntry[][] = [];
      let left = limit;
      let before: number | undefined;
      while (left > 0) {
        const page = store.history.page({
          ...(before !== undefined ? { beforeId: before } : {}),
          limit: Math.min(left, HISTORY_PAGE_MAX),
        });
        if (page.length === 0) break;
        pages.unshift(page);
        left -= page.length;
        before = (page[0] as HistoryEntry).id;
      }
      for (const page of pages) for (const e of page) print(e);
    } else {
      let after = 0;
      for (;;) {
        const page = store.history.pageAfter(after, HISTORY_PAGE_MAX);
        if (page.length === 0) break;
        for (const e of page) print(e);
        after = (page[page.length - 1] as HistoryEntry).id;
      }
    }
    flush();
  } finally {
    store.close();
  }
  return 0;
}
