/**
 * A scripted replica behind an in-memory connection, for tests of a master's `ReplicaLink`
 * without sockets: `connect` (the link's option) hands out one in-memory `Deno.Conn` per call;
 * every RESP request written to it is parsed and answered as the test's `answer` says (bytes,
 * silence, or a closed connection). Also a master's log as encoded records, and a
 * `ReplicationSource` over it.
 *
 * @module
 */
import { Buffer } from "node:buffer";
import { RequestParser } from "../../src/protocol/mod.ts";
import type { ReplicationSource, SourceSnapshot } from "../../src/replication/link_context.ts";
import { LogGapError } from "../../src/storage/errors.ts";
import { encodePut, putRecordBytes } from "../../src/storage/record.ts";

/** What the replica answers to one request. */
export type ReplicaAnswer = Uint8Array | string | "silence" | "close";

/** One request the replica received: its words (the name upper-cased) and raw arguments. */
export interface ReceivedRequest {
  words: string[];
  args: Uint8Array[];
}

const encoder = new TextEncoder();
const decoder = new TextDecoder();

/** One end of an in-memory connection (the master's), written to the scripted replica. */
class MemoryConn {
  readonly #chunks: Uint8Array[] = [];
  #wake: (() => void) | undefined;
  #closed = false;
  readonly #deliver: (bytes: Uint8Array) => void;

  constructor(deliver: (bytes: Uint8Array) => void) {
    this.#deliver = deliver;
  }

  /** Bytes from the replica to the master. */
  push(bytes: Uint8Array): void {
    this.#chunks.push(bytes);
    this.#wake?.();
  }

  get closed(): boolean {
    return this.#closed;
  }

  async read(into: Uint8Array): Promise<number | null> {
    while (this.#chunks.length === 0) {
      if (this.#closed) return null;
      await new Promise<void>((resolve) => (this.#wake = resolve));
      this.#wake = undefined;
    }
    const chunk = this.#chunks[0];
    const n = Math.min(chunk.length, into.length);
    into.set(chunk.subarray(0, n));
    if (n === chunk.length) this.#chunks.shift();
    else this.#chunks[0] = chunk.subarray(n);
    return n;
  }

  write(bytes: Uint8Array): Promise<number> {
    if (this.#closed) return Promise.reject(new Deno.errors.BrokenPipe("closed"));
    this.#deliver(bytes.slice());
    return Promise.resolve(bytes.length);
  }

  close(): void {
    this.#closed = true;
    this.#wake?.();
  }
}

/** A replica that answers the master's requests as `answer` says. */
export class MemoryReplica {
  /** Every request received, on every connection, in order. */
  readonly received: ReceivedRequest[] = [];
  /** Connections opened by the link. */
  readonly conns: MemoryConn[] = [];
  /** When set, `connect` fails with this message. */
  refuseConnect: string | undefined;
  readonly #answer: (request: ReceivedRequest) => ReplicaAnswer;

  constructor(answer: (request: ReceivedRequest) => ReplicaAnswer) {
    this.#answer = answer;
  }

  /** The link's `connect` option. */
  readonly connect = (_host: string, _port: number): Promise<Deno.Conn> => {
    if (this.refuseConnect !== undefined) {
      return Promise.reject(new Deno.errors.ConnectionRefused(this.refuseConnect));
    }
    const parser = new RequestParser({ maxRequestBytes: 64 << 20 });
    let pending = new Uint8Array(0);
    const conn: MemoryConn = new MemoryConn((bytes) => {
      const joined = new Uint8Array(pending.length + bytes.length);
      joined.set(pending);
      joined.set(bytes, pending.length);
      let offset = 0;
      for (;;) {
        const request = parser.next(joined, offset);
        offset = parser.offset;
        if (request === undefined) break;
        if (request.kind !== "request") throw new Error(`bad request: ${request.message}`);
        const args = request.args.map((a) => a.slice());
        const words = [
          decoder.decode(request.name).toUpperCase(),
          ...args.map((a) => decoder.decode(a)),
        ];
        const received = { words, args };
        this.received.push(received);
        const reply = this.#answer(received);
        if (reply === "close") {
          queueMicrotask(() => conn.close());
          break;
        }
        if (reply === "silence") continue;
        const out = typeof reply === "string" ? encoder.encode(reply) : reply;
        queueMicrotask(() => conn.push(out));
      }
      pending = joined.slice(offset);
    });
    this.conns.push(conn);
    return Promise.resolve(conn as unknown as Deno.Conn);
  };

  /** The requests received whose first words are `words`. */
  requests(...words: string[]): ReceivedRequest[] {
    return this.received.filter((r) => words.every((w, i) => r.words[i] === w));
  }
}

/** A master's log: PUT records `k<lsn>` = `v<lsn>` in `epochOf(lsn)`, LSN 1 to `lastLsn`. */
export class MemoryLog implements ReplicationSource {
  lastLsn: number;
  epoch: number;
  oldestCompleteLsn = 0;
  readonly #epochOf: (lsn: number) => number;
  readonly #listeners = new Set<(records: Uint8Array, first: number, last: number) => void>();

  constructor(lastLsn: number, epochOf: (lsn: number) => number = () => 0) {
    this.lastLsn = lastLsn;
    this.#epochOf = epochOf;
    this.epoch = epochOf(lastLsn);
  }

  /** The encoded records `first..last`, back to back. */
  records(first: number, last: number): Uint8Array {
    const parts: Uint8Array[] = [];
    for (let lsn = first; lsn <= last; lsn++) {
      const key = `k${lsn}`;
      const value = `v${lsn}`;
      const bytes = new Uint8Array(putRecordBytes(key.length, value.length));
      encodePut(bytes, new DataView(bytes.buffer), 0, lsn, this.#epochOf(lsn), 0, key, value);
      parts.push(bytes);
    }
    return new Uint8Array(Buffer.concat(parts));
  }

  /** Appends `count` durable records and tells the listeners (the store's group commit). */
  append(count: number): void {
    const first = this.lastLsn + 1;
    this.lastLsn += count;
    const records = this.records(first, this.lastLsn);
    for (const listener of this.#listeners) listener(records, first, this.lastLsn);
  }

  onDurable(listener: (records: Uint8Array, first: number, last: number) => void): () => void {
    this.#listeners.add(listener);
    return () => this.#listeners.delete(listener);
  }

  readLogFrom(lsn: number, maxChunkBytes = 1 << 20): AsyncIterable<Uint8Array> {
    if (lsn < this.oldestCompleteLsn) throw new LogGapError(lsn, this.oldestCompleteLsn);
    return this.#chunks(lsn, maxChunkBytes);
  }

  async *#chunks(lsn: number, maxChunkBytes: number): AsyncIterable<Uint8Array> {
    let next = lsn + 1;
    while (next <= this.lastLsn) {
      let last = next;
      while (last < this.lastLsn && this.records(next, last + 1).length <= maxChunkBytes) last++;
      yield this.records(next, last);
      next = last + 1;
      await Promise.resolve();
    }
  }

  snapshot(): SourceSnapshot {
    const lsn = this.lastLsn;
    return { lsn, keys: lsn, bytes: 0, entries: pairsUpTo(lsn), release: () => {} };
  }
}

async function* pairsUpTo(lsn: number): AsyncIterable<readonly [Uint8Array, Uint8Array]> {
  for (let i = 1; i <= lsn; i++) {
    yield [encoder.encode(`k${i}`), encoder.encode(`v${i}`)] as const;
    await Promise.resolve();
  }
}
