/**
 * `KVSession`: a causally consistent session of a {@link KVClient}: its reads see its own writes
 * and never go back in time, wherever they are served.
 *
 * @module
 */
import type { RespValue } from "../protocol/resp.ts";
import { type Call, type CallRouter, routerOf, type SessionState } from "./call_router.ts";
import {
  batchParts,
  decodePairs,
  decodeValue,
  existed,
  expectOk,
  toPairs,
  valueOf,
} from "./commands.ts";
import type { KVClient } from "./kv_client.ts";
import {
  checkReadOptions,
  checkWriteConcern,
  type KVKey,
  type KVReadOptions,
  type KVSessionOptions,
  type KVValue,
  type KVWriteOptions,
  putWords,
} from "./options.ts";

/**
 * A causally consistent session of a {@link KVClient} (made by {@link KVClient.session}): it
 * remembers the highest LSN it wrote or read, and its reads are served only by a node that has
 * applied it, so it reads its own writes and never goes back in time, whichever node serves
 * each read (MongoDB's causal consistency). Its options are defaults for its calls; each call
 * may override them.
 *
 * @example
 * ```ts
 * import type { KVClient } from "../../mod.ts";
 * async function checkout(client: KVClient): Promise<string | undefined> {
 *   const session = client.session({ readPreference: "replicaPreferred" });
 *   await session.put("cart:9", "3 items");
 *   return await session.read("cart:9"); // "3 items"
 * }
 * ```
 */
export class KVSession {
  readonly #router: CallRouter;
  readonly #options: KVSessionOptions;
  readonly #state: SessionState = { lastLsn: 0 };

  /** A session of `client` (the same as `client.session(options)`). */
  constructor(client: KVClient, options: KVSessionOptions = {}) {
    checkReadOptions(options, "session ");
    checkWriteConcern(options.writeConcern, "session ");
    this.#router = routerOf(client);
    this.#options = options;
  }

  #call(call: Call): Promise<RespValue> {
    return this.#router.call(call);
  }

  /**
   * The highest LSN this session wrote or read (0 before its first call): its reads see at
   * least this much of the log.
   *
   * @example
   * ```ts
   * import type { KVSession } from "../../mod.ts";
   * function position(session: KVSession): number {
   *   return session.lastLsn;
   * }
   * ```
   */
  get lastLsn(): number {
    return this.#state.lastLsn;
  }

  /**
   * Makes this session's reads see at least `lsn` (another session's {@link lastLsn}, say, to
   * hand causality from one flow to another). A lower LSN changes nothing.
   *
   * @example
   * ```ts
   * import type { KVClient } from "../../mod.ts";
   * async function handOver(client: KVClient): Promise<string | undefined> {
   *   const writer = client.session();
   *   await writer.put("job:1", "done");
   *   const reader = client.session({ readPreference: "replica" });
   *   reader.advanceLsn(writer.lastLsn);
   *   return await reader.read("job:1"); // "done"
   * }
   * ```
   */
  advanceLsn(lsn: number): void {
    if (!Number.isSafeInteger(lsn) || lsn < 0) throw new RangeError(`LSN ${lsn} is not valid`);
    if (lsn > this.#state.lastLsn) this.#state.lastLsn = lsn;
  }

  #read(options: KVReadOptions | undefined): KVReadOptions {
    checkReadOptions(options, "");
    return { ...this.#options, ...options };
  }

  #write(options: KVWriteOptions | undefined): KVWriteOptions {
    checkWriteConcern(options?.writeConcern, "");
    return { writeConcern: options?.writeConcern ?? this.#options.writeConcern };
  }

  /**
   * {@link KVClient.put} in this session.
   *
   * @example
   * ```ts
   * import type { KVSession } from "../../mod.ts";
   * async function save(session: KVSession): Promise<void> {
   *   await session.put("k", "v");
   * }
   * ```
   */
  async put(key: KVKey, value: KVValue, options?: KVWriteOptions): Promise<void> {
    expectOk(
      await this.#call({
        kind: "write",
        parts: putWords(key, value, options),
        idempotent: true,
        write: this.#write(options),
        session: this.#state,
      }),
    );
  }

  /**
   * {@link KVClient.read} in this session.
   *
   * @example
   * ```ts
   * import type { KVSession } from "../../mod.ts";
   * async function load(session: KVSession): Promise<string | undefined> {
   *   return await session.read("k");
   * }
   * ```
   */
  async read(key: KVKey, options?: KVReadOptions): Promise<string | undefined> {
    return decodeValue(await this.readBytes(key, options));
  }

  /**
   * {@link KVClient.readBytes} in this session.
   *
   * @example
   * ```ts
   * import type { KVSession } from "../../mod.ts";
   * async function load(session: KVSession): Promise<Uint8Array | undefined> {
   *   return await session.readBytes("k");
   * }
   * ```
   */
  async readBytes(key: KVKey, options?: KVReadOptions): Promise<Uint8Array | undefined> {
    const reply = await this.#call({
      kind: "read",
      parts: ["READ", key],
      read: this.#read(options),
      session: this.#state,
    });
    return valueOf(reply);
  }

  /**
   * {@link KVClient.readRange} in this session.
   *
   * @example
   * ```ts
   * import type { KVSession } from "../../mod.ts";
   * async function list(session: KVSession): Promise<[string, string][]> {
   *   return await session.readRange("a", "z");
   * }
   * ```
   */
  async readRange(start: KVKey, end: KVKey, options?: KVReadOptions): Promise<[string, string][]> {
    const pairs = await this.readRangeBytes(start, end, options);
    return decodePairs(pairs);
  }

  /**
   * {@link KVClient.readRangeBytes} in this session.
   *
   * @example
   * ```ts
   * import type { KVSession } from "../../mod.ts";
   * async function count(session: KVSession): Promise<number> {
   *   return (await session.readRangeBytes("a", "z")).length;
   * }
   * ```
   */
  async readRangeBytes(
    start: KVKey,
    end: KVKey,
    options?: KVReadOptions,
  ): Promise<[Uint8Array, Uint8Array][]> {
    return toPairs(
      await this.#call({
        kind: "read",
        parts: ["READRANGE", start, end],
        read: this.#read(options),
        session: this.#state,
      }),
    );
  }

  /**
   * {@link KVClient.batchPut} in this session.
   *
   * @example
   * ```ts
   * import type { KVSession } from "../../mod.ts";
   * async function seed(session: KVSession): Promise<void> {
   *   await session.batchPut({ a: "1", b: "2" });
   * }
   * ```
   */
  async batchPut(
    pairs: Iterable<readonly [KVKey, KVValue]> | Readonly<Record<string, KVValue>>,
    options?: KVWriteOptions,
  ): Promise<void> {
    const parts = batchParts(pairs);
    if (parts.length === 1) return;
    expectOk(
      await this.#call({
        kind: "write",
        parts,
        idempotent: true,
        write: this.#write(options),
        session: this.#state,
      }),
    );
  }

  /**
   * {@link KVClient.delete} in this session.
   *
   * @example
   * ```ts
   * import type { KVSession } from "../../mod.ts";
   * async function forget(session: KVSession): Promise<boolean> {
   *   return await session.delete("k");
   * }
   * ```
   */
  async delete(key: KVKey, options?: KVWriteOptions): Promise<boolean> {
    const reply = await this.#call({
      kind: "write",
      parts: ["DELETE", key],
      idempotent: true,
      write: this.#write(options),
      session: this.#state,
    });
    return existed(reply);
  }
}
