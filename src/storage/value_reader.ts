/**
 * Reading values (and key bytes) into arrays the caller keeps: one positional read per value
 * from its segment file, or a copy from the log writer's pending buffer for a value written in
 * this turn of the event loop and not yet flushed. Arrays of up to 1 KiB are carved from shared
 * 8 KiB blocks (`value_blocks.ts`). Values that requests read from files are kept in a
 * bounded cache (`value_cache.ts`), found by the key's index slot, and copied from there when read
 * again: the caller's array is always its own.
 *
 * @module
 */
import { CorruptionError } from "./errors.ts";
import type { KeyIndex } from "./key_index.ts";
import type { LogWriter } from "./log_writer.ts";
import { readAtSync } from "./read_at.ts";
import type { Segment } from "./segment.ts";
import { ValueBlocks } from "./value_blocks.ts";
import { ValueCache } from "./value_cache.ts";

/** Values read are carved from shared blocks of this size when at most {@link CARVED_VALUE_BYTES}. */
const VALUE_BLOCK_BYTES = 8 * 1024;
const CARVED_VALUE_BYTES = 1024;

/** Reads the values of one store. */
export class ValueReader {
  #blocks = new ValueBlocks(VALUE_BLOCK_BYTES, CARVED_VALUE_BYTES);
  readonly cache: ValueCache;

  /** @param cacheBytes bound of the cache of values read (0: no cache) */
  constructor(
    private readonly log: Pick<LogWriter, "active" | "copyPending">,
    cacheBytes = 0,
  ) {
    this.cache = new ValueCache(cacheBytes);
  }

  /**
   * The current value of live `slot` of `index`: a copy from the cache when it holds it, else
   * read (and then cached, as {@link value} reads it).
   *
   * @throws {CorruptionError} the file ends before the value does
   */
  valueOf(index: KeyIndex<Segment>, slot: number): Uint8Array {
    const length = index.lengthOf(slot);
    const out = this.#blocks.take(length);
    if (length === 0 || this.cache.copyInto(index, slot, out)) return out;
    const segment = index.segmentOf(slot);
    if (this.#read(segment, index.offsetOf(slot), out)) this.cache.add(index, slot, out);
    return out;
  }

  /**
   * The `length` value bytes at `offset` of `segment` (or of the pending buffer beyond the end of
   * the active segment's file), past the cache: a snapshot's walk over every value would push
   * out what requests read.
   *
   * @throws {CorruptionError} the file ends before the value does
   */
  value(segment: Segment, offset: number, length: number): Uint8Array {
    const out = this.#blocks.take(length);
    if (length > 0) this.#read(segment, offset, out);
    return out;
  }

  /** Fills `out` from `offset` of `segment`; true when it came from the file (not pending). */
  #read(segment: Segment, offset: number, out: Uint8Array): boolean {
    if (segment === this.log.active && offset >= segment.sizeBytes) {
      this.log.copyPending(offset, out);
      return false;
    }
    const got = readAtSync(segment.reader(), offset, out);
    if (got !== out.length) {
      throw new CorruptionError(
        segment.path,
        offset,
        `value of ${out.length} bytes ends past the end of the file (read ${got})`,
      );
    }
    return true;
  }

  /** The bytes of a key string, carved like values. */
  key(key: string): Uint8Array {
    const bytes = this.#blocks.take(key.length);
    for (let i = 0; i < key.length; i++) bytes[i] = key.charCodeAt(i);
    return bytes;
  }
}
