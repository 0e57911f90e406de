/** Display helpers shared by the main process and the renderer (no Node, no DOM). */

/** Upper-case hex in groups of four, e.g. "3F2A 9C01 …". */
export function groupFingerprint(hex: string): string {
  return (hex.toUpperCase().match(/.{1,4}/g) ?? []).join(' ');
}

/** The first groups of a fingerprint, for compact lists. */
export function shortFingerprint(hex: string, groups = 4): string {
  return groupFingerprint(hex).split(' ').slice(0, groups).join(' ');
}

/** Splits a safety number into its digit groups, whatever separator the engine used. */
export function safetyNumberGroups(safetyNumber: string): string[] {
  const digits = safetyNumber.replace(/\D/g, '');
  if (digits.length % 5 === 0 && digits.length > 0) return digits.match(/.{5}/g) ?? [digits];
  return safetyNumber.split(/\s+/).filter(Boolean);
}
