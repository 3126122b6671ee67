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
 * CHALLENGE <masterNonce>                   → +<replicaNonce>
 * PROVE <masterProof>                       → +<replicaProof>
 *     First on every connection when the master has a replication token (a replica with a token
 *     refuses REPLICATE from a connection that has not proved it). Nonces are 32 random bytes as
 *     64 lower-case hex digits, one from each side; a proof is
 *     hex(HMAC-SHA256(token, "kvstore-auth-v1 <dialer|node> <masterNonce> <replicaNonce>")), the
 *     master's with "dialer", the replica's with "node" (src/protocol/challenge.ts). The token
 *     never crosses the wire: the replica answers with its proof only after it checked the
 *     master's, and the master checks the replica's before it sends HELLO, so an endpoint that
 *     does not hold the token gets no data. A replica without tokens answers CHALLENGE with an
 *     error ("CHALLENGE called, but ... authentication is off") that the master tolerates, with a
 *     warning. (Before this exchange a master sent `AUTH <token>`; replicas still accept it.)
 * REPLICATE FORMAT <masterFormat>            → :<replicaFormat>
 *     Sent before HELLO on every connection: the highest record format each side reads.
 *     Format 2 added PUT_EXPIRING, MULTI and FLUSH records and expiring snapshot pairs (see
 *     src/storage/record.ts); a replica that reads format 2 answers 2 whatever its role. A
 *     replica from before (it answers an error, "unknown REPLICATE subcommand") could not read
 *     this master's records: the master refuses it with a message saying to upgrade it, and
 *     retries with backoff. Upgrade replicas before their master: a new replica follows an old
 *     master (it reads format 1, which never changed, and the old master sends no FORMAT).
 * REPLICATE HELLO <epoch> <masterLastLsn> <pingIntervalMs> <timeoutMs> [<masterAddress>]
 *                                           → +<lastLsn> <lastEpoch> <lastCrc> [<localWrites>]
 *     Opens a stream. Every field is checked before the replica acts on any (epoch at most
 *     MAX_EPOCH, 2^32-1; LSN below 2^53; interval and timeout at most a day): a bad one is refused
 *     and changes nothing. The replica answers with the last master LSN it holds, the epoch of
 *     that record and that record's CRC-32 (0 and 0 and 0 when empty; CRC 0 when it cannot tell,
 *     e.g. right after a full sync), and, when it holds local writes no full sync has replaced
 *     (the spec's manual REPLICATE PUT, accepted only before it ever followed a master), how
 *     many. The master compares epoch and CRC with its own record at that LSN: a difference means
 *     the replica's log diverged (say, the master's data was wiped and grew past the replica's LSN
 *     again), and it gets a full sync; so does a replica with local writes. The master says how
 *     often it pings an idle link and how long it waits for a reply, so the replica can tell
 *     whether its master link is up. A newer HELLO on another connection supersedes this one: the
 *     replica refuses LOG/SNAPSHOT frames from a superseded stream. <masterAddress> is the
 *     host:port clients reach the master at (its ADVERTISE_ADDRESS, else where it listens): the
 *     replica reports it in ROLE and TOPOLOGY (it sees only the master's outgoing port).
 *     Fencing: a node that knows a newer epoch than the stream's (a replica told of a newer master,
 *     or a node promoted since) answers HELLO, and every later frame of that stream, with
 *     `-STALEEPOCH <newerEpoch> <text>`; the master so told is deposed (it acknowledges no more
 *     writes). A master that gets a HELLO from a newer epoch is deposed by it the same way.
 * REPLICATE LOG <records>                   → :<appliedLsn>
 *     <records> is a run of consecutive records encoded exactly as in the storage log (see
 *     src/storage's codec), at most REPLICATION_BATCH_BYTES unless one record is larger. The
 *     replica appends them with the master's LSNs, skipping LSNs it already holds (a resend after
 *     a reconnect is harmless), and answers with its last LSN once they are durable under its
 *     fsync policy. That LSN is the acknowledgement sync mode waits for.
 * REPLICATE COMPRESS <codec>...            → +<codec> | +none
 *     Sent right after HELLO by a node with REPLICATION_COMPRESSION on, offering its codec
 *     (`zstd`, `deflate` or `brotli`; src/replication/compression.ts). The replica answers with
 *     the first offered codec it speaks, or `none` when its own REPLICATION_COMPRESSION is `off`.
 *     A replica from before compression answers "unknown REPLICATE subcommand", which the master
 *     takes as `none`: the stream goes on uncompressed, as it always did.
 * REPLICATE FILTER [<prefix>...]            → +same | +changed
 *     Sent right after HELLO (pipelined with COMPRESS): the key filter this master gives the
 *     replica (selective replication, src/replication/key_filter.ts), none for every key. The
 *     replica compares it with the filter of the data it holds (kept in NODE_STATE.json):
 *     `changed` makes the master send a full sync of exactly the keys the filter selects, after
 *     which the replica keeps the new filter. A filtered replica refuses PROMOTE. LOG frames to
 *     a filtered replica carry only matching keys: a BATCH cut to its matching pairs, a record
 *     with none an empty BATCH at the same LSN, so the replica's log stays gapless. A replica
 *     from before filters answers with an error: fine when it is given none, else the master
 *     refuses to stream to it.
 * REPLICATE LOGZ <codec> <rawBytes> <packed>  → :<appliedLsn>
 *     A LOG frame whose records are packed with the agreed codec (only a frame of at least
 *     REPLICATION_COMPRESSION_MIN_BYTES whose packing saves bytes; other frames stay LOG). The
 *     replica refuses a frame that claims more than its MAX_REQUEST_BYTES, or whose bytes
 *     unpack to anything but exactly <rawBytes> (unpacking stops at the claim: a zip bomb is
 *     refused, and logged with its numbers), then applies the records as LOG would.
 * REPLICATE DIVERGED <commonLsn> <masterEpoch>  → +OK
 *     After HELLO, when the replica's records past <commonLsn> are not in this master's history
 *     (an old master back as a replica): the replica logs and counts them (INFO
 *     `discarded_records`); the full sync that follows replaces them.
 * REPLICATE PING [<masterLsn> [CHAIN <originLsn> <originLagMs> <depth> [<originAddress>]]]
 *                                           → :<appliedLsn>
 *     Heartbeat on an idle link (every REPLICATION_HEALTH_CHECK_INTERVAL s), so a silent
 *     partition is noticed within REPLICATION_TIMEOUT even without writes. <masterLsn> is the
 *     master's durable LSN, so the replica knows how far behind it is (INFO
 *     `master_lag_records`); a replica ignores it when absent (older masters).
 *     CHAIN: sent by a replica that forwards to replicas of its own (cascading), right after the
 *     handshake and then every second: <masterLsn> is then its own durable LSN, and it says what
 *     it knows of the chain above it: the newest LSN of the master at the head, how old its own
 *     data may be in ms (its lag behind that master, or, while its own master link is down, the
 *     time since it was last up), its depth (1: a replica of the master) and where clients reach
 *     that master. A sub-replica reports its end-to-end lag and the real master from them. A
 *     replica from before cascading reads only <masterLsn> and ignores the rest.
 * REPLICATE SNAPSHOT BEGIN <lsn> <epoch> <keys> <bytes>  → +OK
 * REPLICATE SNAPSHOT CHUNK <pairs>          → :<pairsReceived>
 * REPLICATE SNAPSHOT CHUNKZ <codec> <rawBytes> <packed>  → :<pairsReceived>
 * REPLICATE SNAPSHOT END <lsn>              → :<lsn>
 *     Full sync: the master's state as of LSN <lsn>, as <keys> live pairs (<bytes> of keys and
 *     values) in chunks of at most SNAPSHOT_CHUNK_BYTES. The replica builds the new state aside
 *     and swaps it in atomically at END (a crash before END leaves its old state); the master
 *     then streams LOG frames after <lsn>. <pairs> is a run of
 *     `[u32le keyLength][u32le valueLength][key][value]`; a key with an expiry time has bit 31 of
 *     its keyLength word set and a u64le expiresAtMs (ms since the Unix epoch) right after the
 *     two lengths (format 2). CHUNKZ carries a chunk packed as LOGZ packs records, under the same
 *     bounds.
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
import {
  type CommandArgument,
  RespCommandWriter,
  RespErrorReply,
  type RespValue,
} from "../protocol/resp.ts";
import { MAX_EPOCH } from "../storage/mod.ts";
const encoder = new TextEncoder();

/** Encodes one RESP request (a new array: the control frames are rare, the hot path is {@link LogFrameWriter}). */
export function encodeRequest(words: readonly CommandArgument[]): Uint8Array {
  let sizeBytes = 16;
  for (const word of words) {
    sizeBytes += 16 + (typeof word === "string" ? word.length * 3 : word.length);
  }
  const out = new RespCommandWriter(sizeBytes);
  out.command(words);
  return out.bytes.slice();
}

/** The highest record format this kvstore reads and writes (see `REPLICATE FORMAT`). */
export const RECORD_FORMAT = 2;

/** `REPLICATE FORMAT <masterFormat>`. */
export function formatRequest(): Uint8Array {
  return encodeRequest(["REPLICATE", "FORMAT", String(RECORD_FORMAT)]);
}

/** `REPLICATE HELLO <epoch> <masterLastLsn> <pingIntervalMs> <timeoutMs> [<masterAddress>]`. */
export function helloRequest(
  epoch: number,
  masterLastLsn: number,
  pingIntervalMs: number,
  timeoutMs: number,
  masterAddress?: string,
): Uint8Array {
  const words = [
    "REPLICATE",
    "HELLO",
    String(epoch),
    String(masterLastLsn),
    String(Math.round(pingIntervalMs)),
    String(Math.round(timeoutMs)),
  ];
  if (masterAddress !== undefined && masterAddress !== "") words.push(masterAddress);
  return encodeRequest(words);
}

/** `REPLICATE COMPRESS <codec>`: the master offers its codec (see the module comment). */
export function compressRequest(codec: string): Uint8Array {
  return encodeRequest(["REPLICATE", "COMPRESS", codec]);
}

/** `REPLICATE FILTER [<prefix>...]`: the replica's key filter (none: every key). */
export function filterRequest(prefixes: readonly string[]): Uint8Array {
  return encodeRequest(["REPLICATE", "FILTER", ...prefixes]);
}

/** `REPLICATE LOGZ <codec> <rawBytes> <packed>`. */
export function packedLogRequest(codec: string, rawBytes: number, packed: Uint8Array): Uint8Array {
  return encodeRequest(["REPLICATE", "LOGZ", codec, String(rawBytes), packed]);
}

/** `REPLICATE SNAPSHOT CHUNKZ <codec> <rawBytes> <packed>`. */
export function packedChunkRequest(
  codec: string,
  rawBytes: number,
  packed: Uint8Array,
): Uint8Array {
  return encodeRequest(["REPLICATE", "SNAPSHOT", "CHUNKZ", codec, String(rawBytes), packed]);
}

/** `REPLICATE LOG <records>` with the runs concatenated, in a new array. */
export function logRequest(records: readonly Uint8Array[]): Uint8Array {
  return new LogFrameWriter().frame(records).slice();
}

/**
 * Builds `REPLICATE LOG <records>` frames in one reused buffer: the hot path of replication, one
 * copy of the records and no allocation or string work per frame (a `TextEncoder` call for the
 * length digits or a new array per frame each cost about a microsecond: docs/ARCHITECTURE.md,
 * "Measured costs"). A frame is valid until the next one is built: its sender writes it
 * completely first.
 */
export class LogFrameWriter {
  #buffer = new Uint8Array(4096);

  /** The frame carrying `records` (a view into this writer's buffer). */
  frame(records: readonly Uint8Array[]): Uint8Array {
    let length = 0;
    for (const run of records) length += run.length;
    let digits = 1;
    for (let rest = length; rest >= 10; rest = Math.floor(rest / 10)) digits++;
    const total = LOG_PREFIX.length + 1 + digits + 2 + length + 2;
    if (total > this.#buffer.length) {
      this.#buffer = new Uint8Array(Math.max(total, this.#buffer.length * 2));
    }
    const out = this.#buffer;
    out.set(LOG_PREFIX);
    let at = LOG_PREFIX.length;
    out[at++] = 0x24; // $
    for (let i = digits - 1, rest = length; i >= 0; i--, rest = Math.floor(rest / 10)) {
      out[at + i] = 0x30 + (rest % 10);
    }
    at += digits;
    out[at++] = 0x0d;
    out[at++] = 0x0a;
    for (const run of records) {
      out.set(run, at);
      at += run.length;
    }
    out[at++] = 0x0d;
    out[at++] = 0x0a;
    return out.subarray(0, at);
  }
}

const LOG_PREFIX = encoder.encode("*3\r\n$9\r\nREPLICATE\r\n$3\r\nLOG\r\n");

/** What a forwarding replica says about the chain above it (`REPLICATE PING ... CHAIN`). */
export interface ChainFields {
  originLsn: number;
  originLagMs: number;
  depth: number;
  /** "" when unknown. */
  originAddress: string;
}

/** `REPLICATE PING [<masterLsn> [CHAIN <originLsn> <originLagMs> <depth> [<originAddress>]]]`. */
export function pingRequest(masterLsn?: number, chain?: ChainFields): Uint8Array {
  if (masterLsn === undefined) return encodeRequest(["REPLICATE", "PING"]);
  const words = ["REPLICATE", "PING", String(masterLsn)];
  if (chain !== undefined) {
    words.push(
      "CHAIN",
      String(chain.originLsn),
      String(Math.max(0, Math.round(chain.originLagMs))),
      String(chain.depth),
    );
    if (chain.originAddress !== "") words.push(chain.originAddress);
  }
  return encodeRequest(words);
}

/** Deepest chain a PING may report (a bound on a number; real chains are a few hops). */
export const MAX_CHAIN_DEPTH = 1000;

/**
 * The CHAIN part of `REPLICATE PING` (`args` start with `PING`), or undefined when it has none.
 * Every field is checked; a bad one throws {@link StreamFormatError}.
 */
export function parsePingChain(args: readonly Uint8Array[]): ChainFields | undefined {
  if (args.length < 3 || new TextDecoder().decode(args[2]).toUpperCase() !== "CHAIN") {
    return undefined;
  }
  if (args.length !== 6 && args.length !== 7) {
    throw new StreamFormatError(
      "REPLICATE PING CHAIN requires originLsn, originLagMs and depth (and may give the " +
        "master's address)",
    );
  }
  const originAddress = args.length === 7 ? parseAddressField(args[6], "origin address") : "";
  return {
    originLsn: parseStreamNumber(args[3], "origin LSN", MAX_LSN),
    originLagMs: parseStreamNumber(args[4], "origin lag", MAX_LSN),
    depth: parseStreamNumber(args[5], "chain depth", MAX_CHAIN_DEPTH),
    originAddress,
  };
}

/** A `host:port` field of a stream request (at most {@link MAX_HELLO_ADDRESS_BYTES} bytes). */
function parseAddressField(bytes: Uint8Array, what: string): string {
  const text = new TextDecoder().decode(bytes);
  if (
    bytes.length > MAX_HELLO_ADDRESS_BYTES ||
    !/^(\[[0-9A-Fa-f:.]+\]|[A-Za-z0-9._-]+):\d{1,5}$/.test(text)
  ) {
    throw new StreamFormatError(`${what} "${text.slice(0, 60)}" is not host:port`);
  }
  return text;
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

/** Bytes one pair takes in a snapshot chunk (an expiring one carries its expiry time). */
export function pairEncodedBytes(key: Uint8Array, value: Uint8Array, expiresAtMs = 0): number {
  return (expiresAtMs > 0 ? 16 : 8) + key.length + value.length;
}

/** Bit of a chunk pair's keyLength word that says an expiry time follows the two lengths. */
const EXPIRING_PAIR_BIT = 0x8000_0000;

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
  wouldOverflow(key: Uint8Array, value: Uint8Array, expiresAtMs = 0): boolean {
    return this.#length > 0 &&
      this.#length + pairEncodedBytes(key, value, expiresAtMs) > this.maxBytes;
  }

  /**
   * Adds a pair, expiring at `expiresAtMs` when above 0 (call {@link take} first when
   * {@link wouldOverflow}).
   */
  add(key: Uint8Array, value: Uint8Array, expiresAtMs = 0): void {
    const need = this.#length + pairEncodedBytes(key, value, expiresAtMs);
    if (need > this.#buffer.length) {
      const bigger = new Uint8Array(need);
      bigger.set(this.#buffer.subarray(0, this.#length));
      this.#buffer = bigger;
      this.#view = new DataView(bigger.buffer);
    }
    const expiring = expiresAtMs > 0;
    const at = this.#length + (expiring ? 16 : 8);
    this.#view.setUint32(
      this.#length,
      expiring ? key.length | EXPIRING_PAIR_BIT : key.length,
      true,
    );
    this.#view.setUint32(this.#length + 4, value.length, true);
    if (expiring) {
      this.#view.setUint32(this.#length + 8, expiresAtMs % 0x1_0000_0000, true);
      this.#view.setUint32(this.#length + 12, Math.floor(expiresAtMs / 0x1_0000_0000), true);
    }
    this.#buffer.set(key, at);
    this.#buffer.set(value, at + key.length);
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

/** A request of the stream (a field of HELLO, a snapshot chunk) that does not parse. */
export class StreamFormatError extends Error {
  override name = "StreamFormatError";
}

/**
 * Runs `parse`; a {@link StreamFormatError} it throws becomes `wrap(message)` (the caller's own
 * error: the server's `CommandError`, the applier's `ReplicateError`), anything else goes on.
 */
export function parseOrThrow<T>(parse: () => T, wrap: (message: string) => Error): T {
  try {
    return parse();
  } catch (error) {
    if (error instanceof StreamFormatError) throw wrap(error.message);
    throw error;
  }
}

/** Largest LSN a record can hold (below 2^53, see the storage codec). */
export const MAX_LSN = Number.MAX_SAFE_INTEGER;
/** Longest ping interval or reply timeout a HELLO may announce: a day, in ms. */
const MAX_HELLO_INTERVAL_MS = 86_400_000;

/**
 * A whole number field of a stream request, from 0 to `max`; anything else (a sign, an exponent,
 * a fraction, more digits than `max` has) throws {@link StreamFormatError} naming the field.
 */
export function parseStreamNumber(bytes: Uint8Array, what: string, max: number): number {
  const text = new TextDecoder().decode(bytes);
  const value = /^\d{1,16}$/.test(text) ? Number(text) : NaN;
  if (!(value <= max)) {
    throw new StreamFormatError(
      `${what} "${text.slice(0, 40)}" is not a whole number from 0 to ${max}`,
    );
  }
  return value;
}

/** The fields of `REPLICATE HELLO`, each within its bound. */
export interface HelloRequest {
  /** The master's epoch (at most {@link MAX_EPOCH}). */
  epoch: number;
  /** The master's last durable LSN. */
  masterLsn: number;
  /** How often the master pings an idle link. */
  pingIntervalMs: number;
  /** How long the master waits for a reply. */
  timeoutMs: number;
  /** Where clients reach the master (`host:port`), when it said; "" otherwise. */
  masterAddress: string;
}

/** Longest master address a HELLO may carry. */
const MAX_HELLO_ADDRESS_BYTES = 300;

/**
 * Parses `REPLICATE HELLO <epoch> <masterLastLsn> <pingIntervalMs> <timeoutMs> [<masterAddress>]`
 * (`args` start with `HELLO`). Every field is checked before the caller acts on any of them: a
 * bad one throws {@link StreamFormatError}, so a refused HELLO changes nothing.
 */
export function parseHelloRequest(args: readonly Uint8Array[]): HelloRequest {
  if (args.length !== 5 && args.length !== 6) {
    throw new StreamFormatError(
      "REPLICATE HELLO requires epoch, lastLsn, pingIntervalMs and timeoutMs (and may give the " +
        "master's address)",
    );
  }
  const masterAddress = args.length === 6 ? parseAddressField(args[5], "master address") : "";
  return {
    epoch: parseStreamNumber(args[1], "epoch", MAX_EPOCH),
    masterLsn: parseStreamNumber(args[2], "master LSN", MAX_LSN),
    pingIntervalMs: parseStreamNumber(args[3], "ping interval", MAX_HELLO_INTERVAL_MS),
    timeoutMs: parseStreamNumber(args[4], "timeout", MAX_HELLO_INTERVAL_MS),
    masterAddress,
  };
}

/** A pair of a snapshot chunk: key, value, expiry time (ms since the epoch, 0: none). */
export type ChunkPair = [key: Uint8Array, value: Uint8Array, expiresAtMs: number];

/** Decodes a snapshot chunk into its pairs (views into `chunk`). */
export function decodePairs(chunk: Uint8Array): ChunkPair[] {
  const view = new DataView(chunk.buffer, chunk.byteOffset, chunk.byteLength);
  const pairs: ChunkPair[] = [];
  let offset = 0;
  while (offset < chunk.length) {
    if (offset + 8 > chunk.length) {
      throw new StreamFormatError(`snapshot chunk has a torn pair header at byte ${offset}`);
    }
    const word = view.getUint32(offset, true);
    const expiring = (word & EXPIRING_PAIR_BIT) !== 0;
    const keyLength = word & ~EXPIRING_PAIR_BIT;
    const valueLength = view.getUint32(offset + 4, true);
    const headerBytes = expiring ? 16 : 8;
    if (offset + headerBytes > chunk.length) {
      throw new StreamFormatError(`snapshot chunk has a torn pair header at byte ${offset}`);
    }
    const expiresAtMs = expiring
      ? view.getUint32(offset + 8, true) + view.getUint32(offset + 12, true) * 0x1_0000_0000
      : 0;
    if (expiring && !(expiresAtMs > 0 && expiresAtMs <= MAX_LSN)) {
      throw new StreamFormatError(`snapshot chunk pair at byte ${offset} has a bad expiry time`);
    }
    const start = offset + headerBytes;
    const end = start + keyLength + valueLength;
    if (end > chunk.length) {
      throw new StreamFormatError(
        `snapshot chunk pair at byte ${offset} claims ${keyLength}+${valueLength} bytes, ` +
          `past the chunk's ${chunk.length}`,
      );
    }
    pairs.push([
      chunk.subarray(start, start + keyLength),
      chunk.subarray(start + keyLength, end),
      expiresAtMs,
    ]);
    offset = end;
  }
  return pairs;
}

/** A reply that is not what the stream protocol answers at that point. */
export class ReplyFormatError extends Error {
  override name = "ReplyFormatError";
}

/** The integer of an integer reply, or an error naming what came instead. */
export function expectInteger(reply: RespValue, what: string): number {
  if (typeof reply === "number") return reply;
  throw new ReplyFormatError(`${what}: ${describeReply(reply)} instead of an integer`);
}

/** What a replica's HELLO reply says about its log. */
export interface HelloReply {
  lastLsn: number;
  lastEpoch: number;
  /** CRC-32 of the record at `lastLsn` (0: unknown). */
  lastCrc: number;
  /** Local writes (made on the replica by hand) no full sync has replaced yet; 0 if absent. */
  localWrites?: number;
}

/** `+<lastLsn> <lastEpoch> <lastCrc> [<localWrites>]` of a HELLO reply. */
export function parseHelloReply(reply: RespValue): HelloReply {
  const match = typeof reply === "string"
    ? /^(\d{1,16}) (\d{1,10}) (\d{1,10})(?: (\d{1,16}))?$/.exec(reply)
    : null;
  if (match === null) {
    throw new ReplyFormatError(
      `HELLO: ${describeReply(reply)} instead of "<lastLsn> <lastEpoch> <lastCrc> [<localWrites>]"`,
    );
  }
  return {
    lastLsn: Number(match[1]),
    lastEpoch: Number(match[2]),
    lastCrc: Number(match[3]),
    localWrites: Number(match[4] ?? 0),
  };
}

/** The status text a replica answers HELLO with (the local writes only when there are some). */
export function helloReplyText(hello: HelloReply): string {
  const local = hello.localWrites ?? 0;
  return `${hello.lastLsn} ${hello.lastEpoch} ${hello.lastCrc}${local > 0 ? ` ${local}` : ""}`;
}

/** Short text of a reply, for error messages. */
export function describeReply(reply: RespValue): string {
  if (reply instanceof RespErrorReply) return `error "${reply.code} ${reply.message}"`;
  if (typeof reply === "string") return `status "${reply}"`;
  if (typeof reply === "number") return `integer ${reply}`;
  if (reply === null) return "null";
  if (reply instanceof Uint8Array) return `${reply.length}-byte string`;
  return `array of ${reply.length}`;
}
