/**
 * Positional reads (`pread`) through `node:fs` descriptors: what the store, the scanner and the
 * hint loader read files with.
 *
 * @module
 */
import { readSync } from "node:fs";

/**
 * Reads `into.length` bytes at file offset `position` of the file descriptor `fd` (a `node:fs`
 * descriptor) with positional reads (`pread`): the file's own position is neither used nor moved,
 * so any number of readers can share one descriptor. Returns the bytes read (fewer only at end of
 * file).
 */
export function readAtSync(fd: number, position: number, into: Uint8Array): number {
  let filled = 0;
  // Bounded: each iteration reads at least one byte or stops at end of file.
  while (filled < into.length) {
    const n = readSync(fd, into, filled, into.length - filled, position + filled);
    if (n === 0) break;
    filled += n;
  }
  return filled;
}
