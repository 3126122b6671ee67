/**
 * The replication stream: what a master and a replica say to each other, byte for byte.
 *
 * ## Transport
 * The master opens ONE persistent TCP connection per replica, to the replica's normal client port
 * (the spec: "master nodes send REPLICATE commands to replicas"). Every request is a RESP array of
 * bulk strings (`*<n>\r\n` then `$<len>\r\n<bytes>\r\n` per word), so a value is length-prefixed
 * and can never be read as a command. Requests are pipelined; the replica answers each one, in
 * order, with one RESP reply. One sender per replica writes them in LSN order.
 *
 * ## Requests (master → replica) and replies
 * ```
 * REPLICATE HELLO <epoch> <masterLastLsn>   → *2 :<lastLsn> :<lastEpoch>
 *     Opens a stream. The replica answers with the last master LSN it holds and the epoch of
 *     that record (0 and 0 when empty). A newer HELLO on another connection supersedes this one:
 *     the replica refuses LOG/SNAPSHOT frames from a superseded stream.
 * REPLICATE LOG <records>                   → :<appliedLsn>
 *     <records> is a run of consecutive records encoded exactly as in the storage log (see
 *     src/storage's codec), at most REPLICATION_BATCH_BYTES unless one record is larger. The
 *     replica appends them with the master's LSNs, skipping LSNs it already holds (a resend after
 *     a reconnect is harmless), and answers with its last LSN once they are durable under its
 *     fsync policy. That LSN is the acknowledgement sync mode waits for.
 * REPLICATE PING                            → :<appliedLsn>
 *     Heartbeat on an idle link (every REPLICATION_HEALTH_CHECK_INTERVAL s), so a silent
 *     partition is noticed within REPLICATION_TIMEOUT even without writes.
 * REPLICATE SNAPSHOT BEGIN <lsn> <epoch> <keys> <bytes>  → +OK
 * REPLICATE SNAPSHOT CHUNK <pairs>          → :<pairsReceived>
 * REPLICATE SNAPSHOT END <lsn>              → :<lsn>
 *     Full sync: the master's state as of LSN <lsn>, as <keys> live pairs (<bytes> of keys and
 *     values) in chunks of at most SNAPSHOT_CHUNK_BYTES. The replica builds the new state aside
 *     and swaps it in atomically at END (a crash before END leaves its old state); the master
 *     then streams LOG frames after <lsn>. <pairs> is a run of
 *     `[u32le keyLength][u32le valueLength][key][value]`.
 * ```
 * Errors are RESP errors (`-ERR <message>`); the master counts one as a failed attempt, drops
 * the connection and reconnects (with backoff), starting again with HELLO.
 *
 * ## The spec's commands
 * `REPLICATE PUT <key> <value>`, `REPLICATE BATCHPUT <keys> <values>` and
 * `REPLICATE DELETE <key>` (text or RESP) still work on a replica, as local writes: they are
 * stored with the local flag and never consume a master LSN.
 *
 * @module
 */
const encoder = new TextEncoder();
const CRLF = new Uint8Array([13, 10]);

/** A word of a request: text (ASCII here) or raw bytes. */
export type Word = string | Uint8Array | readonly Uint8Array[];

/**
 * Encodes one RESP request. A word given as an array of byte runs is sent as ONE bulk string
 * (their concatenation), so batches need no intermediate copy.
 */
export function encodeRequest(words: readonly Word[]): Uint8Array {
  const parts: Uint8Array[] = [encoder.encode(`*${words.length}\r\n`)];
  for (const word of words) {
    const runs = typeof word === "string"
      ? [encoder.encode(word)]
      : word instanceof Uint8Array
      ? [word]
      : word;
    let length = 0;
    for (const run of runs) length += run.length;
    parts.push(encoder.encode(`$${length}\r\n`), ...runs, CRLF);
  }
  let total = 0;
  for (const part of parts) total += part.length;
  const out = new Uint8Array(total);
  let offset = 0;
  for (const part of parts) {
    out.set(part, offset);
    offset += part.length;
  }
  return out;
}

/** `REPLICATE HELLO <epoch> <masterLastLsn>`. */
export function helloRequest(epoch: number, masterLastLsn: number): Uint8Array {
  return encodeRequest(["REPLICATE", "HELLO", String(epoch), String(masterLastLsn)]);
}

/** `REPLICATE LOG <records>` with the runs concatenated. */
export function logRequest(records: readonly Uint8Array[]): Uint8Array {
  return encodeRequest(["REPLICATE", "LOG", records]);
}

/** `REPLICATE PING`. */
export function pingRequest(): Uint8Array {
  return encodeRequest(["REPLICATE", "PING"]);
}

/** `REPLICATE SNAPSHOT BEGIN <lsn> <epoch> <keys> <bytes>`. */
export function snapshotBeginRequest(
  lsn: number,
  epoch: number,
  keys: number,
  bytes: number,
): Uint8Array {
  return encodeRequest([
    "REPLICATE",
    "SNAPSHOT",
    "BEGIN",
    String(lsn),
    String(epoch),
    String(keys),
    String(bytes),
  ]);
}

/** `REPLICATE SNAPSHOT CHUNK <pairs>`. */
export function snapshotChunkRequest(pairs: Uint8Array): Uint8Array {
  return encodeRequest(["REPLICATE", "SNAPSHOT", "CHUNK", pairs]);
}

/** `REPLICATE SNAPSHOT END <lsn>`. */
export function snapshotEndRequest(lsn: number): Uint8Array {
  return encodeRequest(["REPLICATE", "SNAPSHOT", "END", String(lsn)]);
}

/** Bytes one pair takes in a snapshot chunk. */
export function pairEncodedBytes(key: Uint8Array, value: Uint8Array): number {
  return 8 + key.length + value.length;
}

/** Builds snapshot chunks of at most `maxBytes` (one pair larger than that gets its own). */
export class PairChunkWriter {
  #buffer: Uint8Array;
  #view: DataView;
  #length = 0;
  #pairs = 0;

  constructor(readonly maxBytes: number) {
    this.#buffer = new Uint8Array(maxBytes);
    this.#view = new DataView(this.#buffer.buffer);
  }

  /** Pairs in the current chunk. */
  get pairs(): number {
    return this.#pairs;
  }

  /** Bytes in the current chunk. */
  get length(): number {
    return this.#length;
  }

  /** True when `key`/`value` does not fit in the current, non-empty chunk. */
  wouldOverflow(key: Uint8Array, value: Uint8Array): boolean {
    return this.#length > 0 && this.#length + pairEncodedBytes(key, value) > this.maxBytes;
  }

  /** Adds a pair (call {@link take} first when {@link wouldOverflow}). */
  add(key: Uint8Array, value: Uint8Array): void {
    const need = this.#length + pairEncodedBytes(key, value);
    if (need > this.#buffer.length) {
      const bigger = new Uint8Array(need);
      bigger.set(this.#buffer.subarray(0, this.#length));
      this.#buffer = bigger;
      this.#view = new DataView(bigger.buffer);
    }
    this.#view.setUint32(this.#length, key.length, true);
    this.#view.setUint32(this.#length + 4, value.length, true);
    this.#buffer.set(key, this.#length + 8);
    this.#buffer.set(value, this.#length + 8 + key.length);
    this.#length = need;
    this.#pairs++;
  }

  /** The current chunk's bytes (a copy), and starts a new chunk. */
  take(): Uint8Array {
    const out = this.#buffer.slice(0, this.#length);
    if (this.#buffer.length > this.maxBytes) {
      this.#buffer = new Uint8Array(this.maxBytes);
      this.#view = new DataView(this.#buffer.buffer);
    }
    this.#length = 0;
    this.#pairs = 0;
    return out;
  }
}

/** A snapshot chunk that does not parse. */
export class StreamFormatError extends Error {
  override name = "StreamFormatError";
}

/** Decodes a snapshot chunk into its pairs (views into `chunk`). */
export function decodePairs(chunk: Uint8Array): [Uint8Array, Uint8Array][] {
  const view = new DataView(chunk.buffer, chunk.byteOffset, chunk.byteLength);
  const pairs: [Uint8Array, Uint8Array][] = [];
  let offset = 0;
  while (offset < chunk.length) {
    if (offset + 8 > chunk.length) {
      throw new StreamFormatError(`snapshot chunk has a torn pair header at byte ${offset}`);
    }
    const keyLength = view.getUint32(offset, true);
    const valueLength = view.getUint32(offset + 4, true);
    const end = offset + 8 + keyLength + valueLength;
    if (end > chunk.length) {
      throw new StreamFormatError(
        `snapshot chunk pair at byte ${offset} claims ${keyLength}+${valueLength} bytes, ` +
          `past the chunk's ${chunk.length}`,
      );
    }
    pairs.push([
      chunk.subarray(offset + 8, offset + 8 + keyLength),
      chunk.subarray(offset + 8 + keyLength, end),
    ]);
    offset = end;
  }
  return pairs;
}

/** One RESP reply. */
export type Reply =
  | { kind: "status"; text: string }
  | { kind: "error"; text: string }
  | { kind: "integer"; value: number }
  | { kind: "bulk"; bytes: Uint8Array | null }
  | { kind: "array"; items: Reply[] };

/** A reply stream that is not RESP. */
export class ReplyFormatError extends Error {
  override name = "ReplyFormatError";
}

/**
 * Incremental RESP reply parser for the master's side of a link: feed what arrived, take the
 * complete replies. Bulk replies are bounded by `maxBulkBytes`.
 */
export class ReplyParser {
  #buffer = new Uint8Array(4096);
  #start = 0;
  #end = 0;
  readonly #maxBulkBytes: number;

  constructor(maxBulkBytes: number) {
    this.#maxBulkBytes = maxBulkBytes;
  }

  /** Appends bytes that arrived. */
  feed(bytes: Uint8Array): void {
    if (this.#end + bytes.length > this.#buffer.length) {
      const live = this.#end - this.#start;
      const size = Math.max(this.#buffer.length, (live + bytes.length) * 2);
      if (size === this.#buffer.length) {
        this.#buffer.copyWithin(0, this.#start, this.#end);
      } else {
        const next = new Uint8Array(size);
        next.set(this.#buffer.subarray(this.#start, this.#end));
        this.#buffer = next;
      }
      this.#start = 0;
      this.#end = live;
    }
    this.#buffer.set(bytes, this.#end);
    this.#end += bytes.length;
  }

  /** The next complete reply, or undefined when more bytes are needed. */
  next(): Reply | undefined {
    const result = this.#parse(this.#start);
    if (result === undefined) return undefined;
    this.#start = result.end;
    if (this.#start === this.#end) this.#start = this.#end = 0;
    return result.reply;
  }

  #line(from: number): { text: string; end: number } | undefined {
    const buffer = this.#buffer;
    for (let i = from; i + 1 < this.#end; i++) {
      if (buffer[i] === 13 && buffer[i + 1] === 10) {
        let text = "";
        for (let j = from; j < i; j++) text += String.fromCharCode(buffer[j]);
        return { text, end: i + 2 };
      }
    }
    return undefined;
  }

  #parse(from: number): { reply: Reply; end: number } | undefined {
    if (from >= this.#end) return undefined;
    const type = this.#buffer[from];
    const line = this.#line(from + 1);
    if (line === undefined) return undefined;
    switch (type) {
      case 43: // +
        return { reply: { kind: "status", text: line.text }, end: line.end };
      case 45: // -
        return { reply: { kind: "error", text: line.text }, end: line.end };
      case 58: // :
        return { reply: { kind: "integer", value: this.#number(line.text) }, end: line.end };
      case 36: { // $
        const length = this.#number(line.text);
        if (length === -1) return { reply: { kind: "bulk", bytes: null }, end: line.end };
        if (length < 0 || length > this.#maxBulkBytes) {
          throw new ReplyFormatError(`bulk reply of ${length} bytes (limit ${this.#maxBulkBytes})`);
        }
        if (line.end + length + 2 > this.#end) return undefined;
        const bytes = this.#buffer.slice(line.end, line.end + length);
        return { reply: { kind: "bulk", bytes }, end: line.end + length + 2 };
      }
      case 42: { // *
        const count = this.#number(line.text);
        const items: Reply[] = [];
        let end = line.end;
        for (let i = 0; i < count; i++) {
          const item = this.#parse(end);
          if (item === undefined) return undefined;
          items.push(item.reply);
          end = item.end;
        }
        return { reply: { kind: "array", items }, end };
      }
      default:
        throw new ReplyFormatError(`reply starts with byte ${type}, not a RESP type`);
    }
  }

  #number(text: string): number {
    const value = Number(text);
    if (text === "" || !Number.isInteger(value)) {
      throw new ReplyFormatError(`"${text}" is not a RESP integer`);
    }
    return value;
  }
}

/** The integer of an integer reply, or an error naming what came instead. */
export function expectInteger(reply: Reply, what: string): number {
  if (reply.kind === "integer") return reply.value;
  throw new ReplyFormatError(`${what}: ${describeReply(reply)} instead of an integer`);
}

/** `:lastLsn :lastEpoch` of a HELLO reply. */
export function parseHelloReply(reply: Reply): { lastLsn: number; lastEpoch: number } {
  if (
    reply.kind === "array" && reply.items.length === 2 && reply.items[0].kind === "integer" &&
    reply.items[1].kind === "integer"
  ) {
    return { lastLsn: reply.items[0].value, lastEpoch: reply.items[1].value };
  }
  throw new ReplyFormatError(`HELLO: ${describeReply(reply)} instead of [lastLsn, lastEpoch]`);
}

/** Short text of a reply, for error messages. */
export function describeReply(reply: Reply): string {
  switch (reply.kind) {
    case "error":
      return `error "${reply.text}"`;
    case "status":
      return `status "${reply.text}"`;
    case "integer":
      return `integer ${reply.value}`;
    case "bulk":
      return reply.bytes === null ? "null" : `${reply.bytes.length}-byte string`;
    case "array":
      return `array of ${reply.items.length}`;
  }
}
