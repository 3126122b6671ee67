/**
 * Writing hint files (`hint.ts` has their format): at recovery, for a sealed segment that had
 * none (synchronously), and in the background after a segment is sealed or written by compaction
 * or a full sync. A hint is written to a temporary file, fsynced, then renamed, so a torn hint is
 * never seen under its name; a hint that could not be written only costs a scan at the next open.
 *
 * @module
 */
import { getLog } from "../log.ts";
import { fsyncDir, writeFileDurablySync, writeSyncedFile } from "./durable_file.ts";
import { hintPathOf, segmentFileName, temporaryPathOf } from "./file_names.ts";
import { HintBuilder, HintKind } from "./hint.ts";
import type { KeyIndex } from "./key_index.ts";
import type { Segment } from "./segment.ts";

const log = getLog("storage");

/** The hint file bytes of `segment` from the entries in `hint`. */
function hintFileBytes(segment: Segment, hint: HintBuilder): Uint8Array {
  return hint.finish(
    { id: segment.id, nonce: segment.header.nonce, sizeBytes: segment.sizeBytes },
    segment.firstLsn,
    segment.lastLsn,
    segment.lastEpoch,
  );
}

/** Writes a sealed segment's hint now, from the entries it gathered (recovery, after a scan). */
export function writeHintSync(dir: string, segment: Segment): void {
  const bytes = hintFileBytes(segment, segment.hint ?? new HintBuilder());
  segment.hint = undefined;
  writeFileDurablySync(dir, hintPathOf(segmentFileName(segment.id)), bytes);
}

/** What a background hint write needs of the store. */
export interface HintHost {
  /** The index now (a full sync replaces it: a walk of the old one stops). */
  index(): KeyIndex<Segment>;
  isClosed(): boolean;
  /** Lets requests run between two steps of the walk. */
  yieldToRequests(): Promise<void>;
  /** Told after each hint write, finished or not (compaction may now take the segment). */
  onWritten(): void;
}

/** Writes the hints of sealed segments in the background, in bounded steps. */
export class HintWriter {
  /**
   * @param stepKeys index entries walked between two yields
   */
  constructor(readonly dir: string, readonly stepKeys: number, readonly host: HintHost) {}

  /**
   * Writes a sealed segment's hint; the promise, also kept in `segment.hintWriting` meanwhile,
   * never rejects (a failure is logged: recovery will scan the segment).
   */
  write(segment: Segment): Promise<void> {
    const writing = this.#writeFile(segment).finally(() => {
      if (segment.hintWriting === writing) segment.hintWriting = undefined;
      this.host.onWritten();
    });
    segment.hintWriting = writing;
    return writing;
  }

  async #writeFile(segment: Segment): Promise<void> {
    const hint = segment.hint ?? new HintBuilder();
    const complete = segment.hintComplete;
    segment.hint = undefined;
    const tmp = temporaryPathOf(segment.hintPath);
    const host = this.host;
    try {
      if (!complete) await this.#addLiveValues(segment, hint);
      if (segment.retired || host.isClosed()) return;
      await writeSyncedFile(tmp, hintFileBytes(segment, hint));
      if (segment.retired || host.isClosed()) {
        await Deno.remove(tmp);
        return;
      }
      await Deno.rename(tmp, segment.hintPath);
      fsyncDir(this.dir);
    } catch (error) {
      log.warn("could not write hint file {path}: {error}; recovery will scan the segment", {
        path: segment.hintPath,
        error: String(error),
      });
    }
  }

  /**
   * Adds the live values of a sealed segment to its hint, in key order. The slots pointing into
   * the segment are first marked walking the index in slot order (reads in memory order), then
   * the index's sorted set is walked testing each slot's mark: in key order, a slot's own entry is
   * a read from anywhere in the index, a cache miss per key of the whole store, where a mark is
   * one bit. Both walks go in steps of about {@link stepKeys} slots with yields between.
   *
   * After the segment's tombstones, replaying these entries gives exactly what replaying its
   * records would: a key whose last record here is a PUT is live here (nothing newer can be in an
   * older or sealed segment), and an entry that moves away during the walks has its newer record
   * in a later segment, replayed after this one (a marked slot is checked again when it is
   * reached). No entry moves into a sealed segment while its hint is written (writes go to the
   * active segment; compaction re-points its output's entries before writing its hint), so a slot
   * unmarked is not in it. Sorted hints let recovery merge instead of sort.
   */
  async #addLiveValues(segment: Segment, hint: HintBuilder): Promise<void> {
    const index = this.host.index();
    const stillWanted = () => index === this.host.index() && !segment.retired;
    // Slots allocated after this (new keys) hold values in the active segment: never marked.
    const capacity = index.capacity;
    const marked = new Uint8Array((capacity + 7) >>> 3);
    const mark = (slot: number) => {
      marked[slot >>> 3] |= 1 << (slot & 7);
    };
    for (let from = 0; from < capacity;) {
      from = index.forEachSlotIn(segment, from, from + this.stepKeys, mark);
      if (from < capacity) {
        await this.host.yieldToRequests();
        if (!stillWanted()) return; // a full sync replaced it
      }
    }
    let visited = 0;
    for (const chunk of index.sortedChunks()) {
      for (let i = 0; i < chunk.length; i++) {
        const slot = chunk[i];
        if (
          slot < capacity && (marked[slot >>> 3] & (1 << (slot & 7))) !== 0 &&
          index.segmentOf(slot) === segment
        ) {
          hint.addKey(
            HintKind.VALUE,
            index.keyOf(slot),
            index.offsetOf(slot),
            index.lengthOf(slot),
            index.expiryOf(slot),
          );
        }
      }
      visited += chunk.length;
      if (visited >= this.stepKeys) {
        visited = 0;
        await this.host.yieldToRequests();
        if (!stillWanted()) return; // a full sync replaced it
      }
    }
  }
}
