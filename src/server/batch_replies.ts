/**
 * The replies of one batch (the requests one read delivered) on their way out: where its late
 * replies go (holes), the replies that replace them all when the node was deposed meanwhile, and
 * the reply buffers a connection reuses.
 *
 * @module
 */
import { type Framing, type Reply, ReplyWriter } from "../protocol/mod.ts";
import { SHRINK_FACTOR } from "./read_buffer.ts";

/** Command names of one batch and when it was read, for `ConnectionHost.answered`. */
export interface Observed {
  names: string[];
  startedMs: number;
}

/** The requests one read delivered, run, whose replies are written together. */
export interface Batch {
  writer: ReplyWriter;
  count: number;
  /** The framing of every request, or `mixed`. */
  framing: Framing | "mixed";
  /** Resolves when the batch's writes are durable (undefined: it wrote nothing). */
  durable: Promise<void> | undefined;
  holes: Hole[] | undefined;
  observed: Observed | undefined;
  /** Reply bytes counted as not yet sent for this batch. */
  outputBytes: number;
}

/** A reply that is computed later, and where it goes in the batch's output. */
export interface Hole {
  offset: number;
  resp: boolean;
  resp3: boolean;
  reply: Promise<Reply>;
}

/**
 * Reply buffers kept for reuse: a batch with late replies (sync replication) needs two, the
 * batch's and the one its late replies are merged into; a new one costs a CONNECTION_BUFFER_BYTES
 * allocation. More batches in flight at once allocate and let theirs go.
 */
const SPARE_WRITERS = 2;

/** A connection's reply buffers: at most {@link SPARE_WRITERS} kept for reuse. */
export class WriterPool {
  readonly #initialBytes: number;
  readonly #spare: ReplyWriter[] = [];

  /** Buffers start at `initialBytes` (CONNECTION_BUFFER_BYTES). */
  constructor(initialBytes: number) {
    this.#initialBytes = initialBytes;
  }

  /** A spare buffer, or a new one. */
  take(): ReplyWriter {
    return this.#spare.pop() ?? new ReplyWriter(this.#initialBytes);
  }

  /** Gives `writer` back (kept, emptied, if fewer than SPARE_WRITERS are). */
  release(writer: ReplyWriter): void {
    if (this.#spare.length >= SPARE_WRITERS) return;
    writer.reset(this.#initialBytes * SHRINK_FACTOR);
    this.#spare.push(writer);
  }
}

/** The batch's replies with its late ones written into their places, in a writer of the pool. */
export async function fillHoles(
  writer: ReplyWriter,
  holes: Hole[],
  writers: WriterPool,
): Promise<ReplyWriter> {
  // One late reply (a sync-mode write on its own) needs no Promise.all and no array of them.
  const replies = holes.length === 1
    ? [await holes[0].reply]
    : await Promise.all(holes.map((hole) => hole.reply));
  const output = writers.take();
  const bytes = writer.bytes;
  let from = 0;
  for (let i = 0; i < holes.length; i++) {
    output.raw(bytes.subarray(from, holes[i].offset));
    output.resp = holes[i].resp;
    output.resp3 = holes[i].resp3;
    output.reply(replies[i]);
    from = holes[i].offset;
  }
  output.raw(bytes.subarray(from));
  return output;
}

/**
 * The replies of a batch with writes on a node that was deposed before they were sent: its
 * writes are applied here, but the new master may not have them, so none may be answered OK.
 * Every request of the batch (reads too: the batch's replies are one unit) gets an error that
 * says so. A batch that mixed both framings cannot be answered request by request here: the
 * connection closes without replies (the outcome is unknown, never falsely OK).
 */
export function deposedReplies(batch: Batch, reason: string, writers: WriterPool): ReplyWriter {
  if (batch.framing === "mixed") {
    throw new Error(`the node was deposed (${reason}) before this batch's replies were sent`);
  }
  const output = writers.take();
  output.resp = batch.framing === "resp";
  output.resp3 = false; // an error is the same in RESP2 and RESP3
  for (let i = 0; i < batch.count; i++) {
    output.error(
      `this node was deposed (${reason}) before this reply was sent: the writes of this ` +
        `batch are applied here but not acknowledged and may be lost; send writes to the new ` +
        `master`,
      "DEPOSED",
    );
  }
  return output;
}
