/**
 * Compaction: rewrites the sealed segments that hold garbage (and merges small neighbours) into
 * fewer, smaller files, keeping every live record with its LSN. What to take is chosen by
 * `compaction_plan.ts`; the copying is `compaction_copy.ts`; this module runs the passes, one at a
 * time, and commits each run.
 *
 * Online: writes and reads continue, every step is bounded by `compactionChunkBytes` and followed
 * by a yield. A crash at any point leaves a store that opens with all acknowledged data: the new
 * file is written and fsynced under a temporary name, renamed over the first segment of the run,
 * the directory fsynced, then the rest of the run deleted in order. Index entries are re-pointed
 * after the commit, in steps; until then they point into the run's old files, which stay readable
 * through descriptors opened before the rename and stay pinned (snapshots taken meanwhile pin
 * them too, through {@link Compactor.compactingFrom}).
 *
 * @module
 */
import { getLog } from "../log.ts";
import { DATA_FILE_MODE, fsyncDir } from "./durable_file.ts";
import { StoreClosedError } from "./errors.ts";
import { temporaryPathOf } from "./file_names.ts";
import type { HintWriter } from "./hint_writer.ts";
import type { KeyIndex } from "./key_index.ts";
import { CompactionSink, LiveCopier, repointMoved } from "./compaction_copy.ts";
import {
  copiesFromIndex,
  HeaderWalker,
  IndexedCopier,
  walksHeaders,
} from "./compaction_from_index.ts";
import { type CompactionMode, pickRun } from "./compaction_plan.ts";
import {
  encodeSegmentHeader,
  newSegmentHeader,
  Segment,
  SEGMENT_HEADER_BYTES,
  SegmentFlag,
} from "./segment.ts";
import type { SegmentList } from "./segment_list.ts";
import type { StoreOptions } from "./store_options.ts";

const log = getLog("storage");
const RESOLVED: Promise<void> = Promise.resolve();

/** What a compaction did. */
export interface CompactionReport {
  /** Runs of adjacent sealed segments rewritten (each into one file). */
  runs: number;
  /** Segment files and their bytes before and after. */
  segmentsBefore: number;
  segmentsAfter: number;
  bytesBefore: number;
  bytesAfter: number;
  /**
   * Segments compacted through the index (`compaction_from_index.ts`), not by a scan that checks
   * and looks up every record.
   */
  segmentsFromIndex: number;
  elapsedMs: number;
}

/** What compaction needs of the store. */
export interface CompactionHost {
  readonly dir: string;
  readonly segments: SegmentList;
  readonly hints: HintWriter;
  options(): Readonly<StoreOptions>;
  /** The index now. */
  index(): KeyIndex<Segment>;
  /** Writes what is pending and seals the active segment (on-demand compaction takes it too). */
  sealActive(): void;
  /** The store is closing or its log failed: stop. */
  stopping(): boolean;
  /** A full sync is replacing the contents: take nothing. */
  fullSyncing(): boolean;
  /** Lets requests run between two bounded steps. */
  yieldToRequests(): Promise<void>;
  /** Runs `task` in the background (the store's close waits for it). */
  background(task: Promise<unknown>): void;
}

/** Runs compactions of one store, one at a time. */
export class Compactor {
  /** Compaction runs finished since open, and bytes they reclaimed. */
  compactions = 0;
  compactedBytes = 0;
  /** Segments a committed compaction run is re-pointing index entries away from. */
  compactingFrom: readonly Segment[] = [];
  #running: Promise<CompactionReport> | undefined;

  constructor(readonly host: CompactionHost) {}

  /** Resolves once no compaction runs (whatever its outcome). */
  async idle(): Promise<void> {
    if (this.#running) await this.#running.catch(() => undefined);
  }

  /** Starts a compaction after the one running, if any; resolves with what it did. */
  start(mode: CompactionMode): Promise<CompactionReport> {
    const previous = this.#running;
    const run: Promise<CompactionReport> = (previous ? previous.catch(() => undefined) : RESOLVED)
      .then(() => this.#compactNow(mode));
    this.#running = run;
    const clear = () => {
      if (this.#running === run) this.#running = undefined;
    };
    run.then((report) => {
      clear();
      // Segments busy meanwhile (their hints being written) may be free now, and what would
      // have started them (a hint's end) came while this ran. Only after a run that rewrote
      // something, so a run that fails or finds nothing is not retried back to back.
      if (report.runs > 0) this.maybeAuto();
    }, clear);
    return run;
  }

  /** Starts an automatic compaction in the background when one is worth it. */
  maybeAuto(): void {
    const host = this.host;
    if (!host.options().autoCompact || this.#running || host.stopping()) return;
    if (this.#pickRun("auto", new Set()) === undefined) return;
    host.background(this.start("auto"));
  }

  /** The next run worth rewriting, among segments free to take and not `done` yet. */
  #pickRun(mode: CompactionMode, done: Set<Segment>): Segment[] | undefined {
    const { segments } = this.host;
    if (this.host.fullSyncing()) return undefined;
    const available = (segment: Segment) =>
      segment !== segments.active && segment.pins === 0 && segment.hintWriting === undefined &&
      !segment.retired && !done.has(segment);
    return pickRun(segments.sealed(), segments.oldest, this.host.options(), mode, available);
  }

  async #compactNow(mode: CompactionMode): Promise<CompactionReport> {
    const host = this.host;
    const started = performance.now();
    const segmentsBefore = host.segments.length;
    const bytesBefore = host.segments.sizeBytes();
    if (mode === "manual") {
      host.sealActive();
      // Segments whose hints are still being written (the one just sealed, and any sealed by
      // writes moments ago) cannot be compacted yet; on demand means all of them, so wait. Only
      // for these: segments sealed meanwhile by a steady write load could otherwise keep it
      // waiting indefinitely.
      await Promise.all(host.segments.all.map((segment) => segment.hintWriting));
    }
    const done = new Set<Segment>();
    let runs = 0;
    let segmentsFromIndex = 0;
    // Bounded: each pass rewrites a run into a segment marked done, and segments are finite.
    for (let pass = 0; pass <= segmentsBefore && !host.stopping(); pass++) {
      const run = this.#pickRun(mode, done);
      if (run === undefined) break;
      const { output, fromIndex } = await this.#compactRun(run);
      done.add(output);
      segmentsFromIndex += fromIndex;
      runs++;
    }
    const report: CompactionReport = {
      runs,
      segmentsBefore,
      segmentsAfter: host.segments.length,
      bytesBefore,
      bytesAfter: host.segments.sizeBytes(),
      segmentsFromIndex,
      elapsedMs: Math.round(performance.now() - started),
    };
    if (runs > 0) {
      this.compactions++;
      this.compactedBytes += Math.max(0, report.bytesBefore - report.bytesAfter);
      log.info(
        "compaction ({mode}): {runs} runs, {segmentsBefore} -> {segmentsAfter} segments, " +
          "{bytesBefore} -> {bytesAfter} bytes in {elapsedMs} ms ({segmentsFromIndex} segments " +
          "copied through the index)",
        { mode, ...report },
      );
    }
    return report;
  }

  /**
   * Rewrites `run` (adjacent sealed segments) into one file with the first one's id and returns
   * it, committed, its entries re-pointed and its hint written, with how many of the run's
   * segments were copied through the index.
   */
  async #compactRun(run: Segment[]): Promise<{ output: Segment; fromIndex: number }> {
    const first = run[0];
    const isOldest = this.host.segments.oldest === first;
    let covered = 0;
    for (const segment of run) {
      covered = Math.max(covered, segment.lastLsn, segment.header.coveredLastLsn);
      segment.pin();
      segment.reader(); // opened before the rename, so it keeps reading the old file
    }
    const header = newSegmentHeader(first.id, covered, SegmentFlag.COMPACTED);
    const tmpPath = temporaryPathOf(first.path, "compact");
    const out = Deno.openSync(tmpPath, {
      write: true,
      create: true,
      truncate: true,
      mode: DATA_FILE_MODE,
    });
    const sink = new CompactionSink(out, new Segment(first.id, first.path, header, 0));
    // It holds only what they held (their records as they were, or some of a batch's entries),
    // so puts only, or no tombstones, if they all did.
    sink.output.onlyPuts = run.every((segment) => segment.onlyPuts);
    sink.output.noTombstones = run.every((segment) => segment.noTombstones);
    let committed = false;
    try {
      sink.appendBytes(encodeSegmentHeader(header));
      const fromIndex = await this.#copyRun(run, isOldest, sink);
      sink.writeOut();
      await out.syncData();
      out.close();
      if (this.host.stopping()) throw new StoreClosedError(this.host.dir);
      this.#commitRun(run, tmpPath, sink.output);
      committed = true;
      await this.#repoint(run, sink);
      // Its hint: the kept tombstones, then the live values in key order (from the index).
      sink.output.hint = sink.hint;
      await this.host.hints.write(sink.output);
      return { output: sink.output, fromIndex };
    } finally {
      if (this.compactingFrom === run) this.compactingFrom = [];
      for (const segment of run) segment.unpin();
      if (!committed) removeUncommitted(out, tmpPath);
    }
  }

  /**
   * Copies the live records of every segment of the run into `sink`, in bounded steps; returns
   * how many segments' live records were found through the index rather than by a scan.
   */
  async #copyRun(run: Segment[], isOldest: boolean, sink: CompactionSink): Promise<number> {
    const host = this.host;
    const chunkBytes = host.options().compactionChunkBytes;
    let fromIndex = 0;
    for (let r = 0; r < run.length; r++) {
      const index = host.index();
      const copier = new LiveCopier(index, run[r], r, isOldest, sink);
      if (copiesFromIndex(index, run[r])) {
        await this.#copyFromIndex(new IndexedCopier(index, run[r], copier, chunkBytes));
        fromIndex++;
        continue;
      }
      if (walksHeaders(index, run[r])) {
        await this.#walkHeaders(new HeaderWalker(index, run[r], copier, chunkBytes));
        fromIndex++;
        continue;
      }
      let offset = SEGMENT_HEADER_BYTES;
      // Bounded by the segment size: each step scans at least one record or throws.
      while (offset < run[r].sizeBytes) {
        if (host.stopping()) throw new StoreClosedError(host.dir);
        offset = copier.copy(offset, offset + chunkBytes);
        await host.yieldToRequests();
      }
    }
    return fromIndex;
  }

  /**
   * Walks the index for the segment's live slots, a chunk of slots a step (a chunk's worth of
   * slot memory), then copies their records a window of the file a step.
   */
  async #copyFromIndex(copier: IndexedCopier): Promise<void> {
    const host = this.host;
    await this.#collectLive(copier);
    // Bounded by the file's windows.
    for (let w = 0; w < copier.windows; w++) {
      if (host.stopping()) throw new StoreClosedError(host.dir);
      copier.copyWindow(w);
      await host.yieldToRequests();
    }
    log.debug("compaction found {found} live records of segment {id} through the index", {
      found: copier.found,
      id: copier.segment.id,
    });
  }

  /**
   * Walks the index for the segment's live values, then steps over its records by their headers,
   * checking and copying those that hold one, a window of the file a step.
   */
  async #walkHeaders(walker: HeaderWalker): Promise<void> {
    const host = this.host;
    await this.#collectLive(walker);
    // Bounded by the file's size: each step moves past at least one record or throws.
    for (let offset = SEGMENT_HEADER_BYTES; offset < walker.segment.sizeBytes;) {
      if (host.stopping()) throw new StoreClosedError(host.dir);
      offset = walker.walk(offset);
      await host.yieldToRequests();
    }
    log.debug("compaction found {found} live values of segment {id} through the index", {
      found: walker.found,
      id: walker.segment.id,
    });
  }

  /** Walks every index slot for the live values of a segment, a chunk of slot memory a step. */
  async #collectLive(
    collector: { index: KeyIndex<Segment>; collect(from: number, to: number): number },
  ): Promise<void> {
    const host = this.host;
    const slotsPerStep = Math.max(1, Math.floor(host.options().compactionChunkBytes / 16));
    // Slots allocated later hold keys written later, in the active segment: never in this one.
    const end = collector.index.capacity;
    // Bounded by `end`: each step walks at least one slot.
    for (let slot = 0; slot < end;) {
      if (host.stopping()) throw new StoreClosedError(host.dir);
      slot = collector.collect(slot, Math.min(end, slot + slotsPerStep));
      await host.yieldToRequests();
    }
  }

  /**
   * The commit point: the output replaces the run's first file, the rest of the run and every
   * hint of the run are deleted (the first one's names the replaced file; the output's own is
   * written once its entries are re-pointed).
   */
  #commitRun(run: Segment[], tmpPath: string, output: Segment): void {
    const dir = this.host.dir;
    Deno.renameSync(tmpPath, run[0].path);
    fsyncDir(dir);
    this.host.segments.replaceRun(run, output);
    for (const segment of run) segment.retire();
    this.compactingFrom = run;
    for (const segment of run) {
      if (segment !== run[0]) Deno.removeSync(segment.path);
      try {
        Deno.removeSync(segment.hintPath);
      } catch (error) {
        if (!(error instanceof Deno.errors.NotFound)) throw error;
      }
      fsyncDir(dir);
    }
  }

  /** Re-points the index entries the run copied, in bounded steps. */
  async #repoint(run: Segment[], sink: CompactionSink): Promise<void> {
    const host = this.host;
    const chunkBytes = host.options().compactionChunkBytes;
    const moves = sink.moves;
    const index = host.index();
    // Bounded by the moves: each step re-points at least one entry.
    for (let i = 0; i < moves.length;) {
      // A FLUSH replaced the index: every entry left is gone, and the output's live bytes with
      // them (the flush zeroed every segment's account).
      if (host.index() !== index) return;
      i = repointMoved(index, moves, i, chunkBytes, run, sink.output);
      if (i < moves.length) await host.yieldToRequests();
    }
  }
}

/** Closes and removes the output of a run that did not commit. */
function removeUncommitted(out: Deno.FsFile, tmpPath: string): void {
  try {
    out.close();
  } catch {
    // already closed
  }
  try {
    Deno.removeSync(tmpPath);
  } catch {
    // never created
  }
}
