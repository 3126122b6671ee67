/**
 * Reading values (and key bytes) into arrays the caller keeps: one positional read per value
 * from its segment file, or a copy from the log writer's pending buffer for a value written in
 * this turn of the event loop and not yet flushed. Arrays of up to 1 KiB are carved from shared
 * 8 KiB blocks (`value_blocks.ts`).
 *
 * @module
 */
import { CorruptionError } from "./errors.ts";
import type { LogWriter } from "./log_writer.ts";
import { readAtSync } from "./read_at.ts";
import type { Segment } from "./segment.ts";
import { ValueBlocks } from "./value_blocks.ts";

/** Values read are carved from shared blocks of this size when at most {@link CARVED_VALUE_BYTES}. */
const VALUE_BLOCK_BYTES = 8 * 1024;
const CARVED_VALUE_BYTES = 1024;

/** Reads the values of one store. */
export class ValueReader {
  #blocks = new ValueBlocks(VALUE_BLOCK_BYTES, CARVED_VALUE_BYTES);

  constructor(private readonly log: Pick<LogWriter, "active" | "copyPending">) {}

  /**
   * The `length` value bytes at `offset` of `segment` (or of the pending buffer beyond the end of
   * the active segment's file).
   *
   * @throws {CorruptionError} the file ends before the value does
   */
  value(segment: Segment, offset: number, length: number): Uint8Array {
    const out = this.#blocks.take(length);
    if (length === 0) return out;
    if (segment === this.log.active && offset >= segment.sizeBytes) {
      this.log.copyPending(offset, out);
      return out;
    }
    const got = readAtSync(segment.reader(), offset, out);
    if (got !== length) {
      throw new CorruptionError(
        segment.path,
        offset,
        `value of ${length} bytes ends past the end of the file (read ${got})`,
      );
    }
    return out;
  }

  /** The bytes of a key string, carved like values. */
  key(key: string): Uint8Array {
    const bytes = this.#blocks.take(key.length);
    for (let i = 0; i < key.length; i++) bytes[i] = key.charCodeAt(i);
    return bytes;
  }
}
