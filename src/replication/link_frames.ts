/**
 * The frames a link sends its replica: records filtered by the replica's key filter, packed with
 * the session's codec when packing pays (LOGZ, CHUNKZ), else plain (LOG, CHUNK). Counts the bytes
 * before and after packing on the replica's core. No I/O: the link writes what this returns.
 *
 * @module
 */
import { concatRuns } from "./log_records.ts";
import type { BatchPacker } from "./compression.ts";
import { filterRecords } from "./key_filter.ts";
import type { ReplicaNode } from "./replica_node.ts";
import {
  LogFrameWriter,
  packedChunkRequest,
  packedLogRequest,
  snapshotChunkRequest,
} from "./stream_protocol.ts";

/** Builds one link's frames; see the module comment. */
export class LinkFrames {
  readonly #node: ReplicaNode;
  /**
   * Builds LOG frames in one reused buffer: a frame is valid until the next one is built (the
   * link writes each completely before it builds the next).
   */
  readonly #frames = new LogFrameWriter();
  /** Packs this session's frames with the codec the replica accepted (undefined: uncompressed). */
  packer: BatchPacker | undefined;

  constructor(node: ReplicaNode) {
    this.#node = node;
  }

  /**
   * The frame carrying `runs` of records: filtered for a replica with a key filter, then LOGZ
   * when this session packs and packing pays, else LOG.
   */
  logFrame(runs: readonly Uint8Array[]): Uint8Array {
    const filter = this.#node.keyFilter;
    const records = filter === undefined ? runs : runs.map((run) => filterRecords(run, filter));
    const packer = this.packer;
    let rawBytes = 0;
    for (const run of records) rawBytes += run.length;
    if (packer !== undefined && rawBytes >= packer.minBytes) {
      const packed = packer.pack(records.length === 1 ? records[0] : concatRuns(records));
      if (packed !== undefined) {
        this.#node.countSent(rawBytes, packed.length);
        return packedLogRequest(packer.codec, rawBytes, packed);
      }
    }
    this.#node.countSent(rawBytes, rawBytes);
    return this.#frames.frame(records);
  }

  /** A snapshot chunk's frame: CHUNKZ when this session packs and packing pays, else CHUNK. */
  chunkFrame(chunk: Uint8Array): Uint8Array {
    const packer = this.packer;
    const packed = packer?.pack(chunk);
    this.#node.countSent(chunk.length, packed?.length ?? chunk.length);
    return packer !== undefined && packed !== undefined
      ? packedChunkRequest(packer.codec, chunk.length, packed)
      : snapshotChunkRequest(chunk);
  }
}
