/**
 * What a thief with a member's state directory and its store key reads: every page of the
 * SQLCipher file and of its write-ahead log, decrypted, whether or not SQLite still counts it as
 * live. SQLite itself only shows the newest version of a row, so an "erased" value left in an old
 * WAL frame or a free page would pass any test that reads through SQLite; this one reads the bytes.
 *
 * The store's format (member-store.ts): SQLCipher 4 defaults (`legacy = 4`), 4096-byte pages, each
 * AES-256-CBC under the raw 32-byte key with its IV in the 80 reserved bytes at the end of the
 * page (IV 16, HMAC-SHA512 64); page 1's first 16 bytes are the file's salt, not encrypted. The
 * WAL: a 32-byte header, then frames of a 24-byte header (page number first) and one page.
 */
import { createDecipheriv } from 'node:crypto';
import { existsSync, readFileSync } from 'node:fs';

const PAGE = 4096;
const RESERVED = 80;
const SALT = 16;
const WAL_HEADER = 32;
const FRAME_HEADER = 24;

function decryptPage(key: Buffer, page: Buffer, first: boolean): Buffer {
  const iv = page.subarray(PAGE - RESERVED, PAGE - RESERVED + 16);
  const decipher = createDecipheriv('aes-256-cbc', key, iv).setAutoPadding(false);
  return Buffer.concat([decipher.update(page.subarray(first ? SALT : 0, PAGE - RESERVED)), decipher.final()]);
}

/** Every page of `dbPath` and `dbPath`-wal, decrypted with `key`. */
export function decryptedPages(dbPath: string, key: Buffer): Buffer[] {
  const pages: Buffer[] = [];
  if (existsSync(dbPath)) {
    const file = readFileSync(dbPath);
    for (let at = 0; at + PAGE <= file.length; at += PAGE) {
      pages.push(decryptPage(key, file.subarray(at, at + PAGE), at === 0));
    }
  }
  const walPath = `${dbPath}-wal`;
  if (existsSync(walPath)) {
    const wal = readFileSync(walPath);
    for (let at = WAL_HEADER; at + FRAME_HEADER + PAGE <= wal.length; at += FRAME_HEADER + PAGE) {
      const pageNumber = wal.readUInt32BE(at);
      pages.push(
        decryptPage(key, wal.subarray(at + FRAME_HEADER, at + FRAME_HEADER + PAGE), pageNumber === 1),
      );
    }
  }
  return pages;
}

/** How many decrypted pages (file and WAL) hold `secret`. */
export function pagesHolding(dbPath: string, key: Buffer, secret: Buffer): number {
  return decryptedPages(dbPath, key).filter((p) => p.includes(secret)).length;
}
