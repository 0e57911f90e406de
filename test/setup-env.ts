/**
 * Per test file: XDG_DATA_HOME points at a fresh folder, so a relay or a chat started without
 * --data-dir / --state-dir keeps its state there, never in the user's home and never shared with
 * another test file running at the same time.
 */
import { mkdtempSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';

process.env.XDG_DATA_HOME = mkdtempSync(join(tmpdir(), 'scx-xdg-'));
