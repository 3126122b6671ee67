/**
 * A small etcd v3 client over etcd's JSON gateway (`POST /v3/kv/range` and friends) with
 * `fetch`: no dependency, no gRPC. Keys and values travel base64-encoded, 64-bit numbers as
 * decimal strings; lease IDs stay strings here (they do not fit a double), revisions become
 * numbers (they grow by one per write: 2^53 is far away).
 *
 * Every request has a deadline (`timeoutMs`) and is tried on each endpoint at most once (a lone
 * endpoint twice), starting with the one that answered last: a cluster that lost a member keeps working through the others.
 * A watch is a streamed response of JSON lines; {@link EtcdClient.watch} reads it until the
 * stream ends or the caller aborts.
 *
 * @module
 */

/** An etcd request failed on every endpoint, or etcd refused it. */
export class EtcdError extends Error {
  override name = "EtcdError";
}

/** One key as etcd stores it (value decoded as UTF-8 text). */
export interface EtcdKeyValue {
  key: string;
  value: string;
  createRevision: number;
  modRevision: number;
  /** The lease the key is bound to ("0": none). */
  lease: string;
}

/** A range's keys and the store's revision when it was read. */
export interface RangeResult {
  kvs: EtcdKeyValue[];
  revision: number;
}

/** A condition of a transaction (etcd's `Compare`), on one key. */
export type Compare =
  | { key: string; target: "CREATE"; createRevision: number }
  | { key: string; target: "MOD"; modRevision: number }
  | { key: string; target: "VALUE"; value: string }
  | { key: string; target: "LEASE"; lease: string };

/** An operation of a transaction. */
export type TxnOp =
  | { put: { key: string; value: string; lease?: string } }
  | { deleteRange: { key: string } };

/** A change a watch saw. */
export interface WatchEvent {
  type: "PUT" | "DELETE";
  kv: EtcdKeyValue;
}

/** Options of {@link EtcdClient}. */
export interface EtcdClientOptions {
  /** Base URLs (`http://127.0.0.1:2379`), tried in turn. */
  endpoints: readonly string[];
  /** Deadline of one request on one endpoint. */
  timeoutMs: number;
}

const encoder = new TextEncoder();
const decoder = new TextDecoder();

/** Text → base64 of its UTF-8 bytes. */
export function toBase64(text: string): string {
  let binary = "";
  for (const byte of encoder.encode(text)) binary += String.fromCharCode(byte);
  return btoa(binary);
}

/** Base64 of UTF-8 bytes → text ("" for undefined: etcd leaves empty fields out). */
export function fromBase64(encoded: string | undefined): string {
  if (encoded === undefined || encoded === "") return "";
  const binary = atob(encoded);
  const bytes = new Uint8Array(binary.length);
  for (let i = 0; i < binary.length; i++) bytes[i] = binary.charCodeAt(i);
  return decoder.decode(bytes);
}

/** The end of the range of every key that starts with `prefix` (its last byte + 1). */
export function prefixEnd(prefix: string): string {
  const bytes = encoder.encode(prefix);
  for (let i = bytes.length - 1; i >= 0; i--) {
    if (bytes[i] < 0xff) {
      const end = bytes.slice(0, i + 1);
      end[i]++;
      let binary = "";
      for (const byte of end) binary += String.fromCharCode(byte);
      return btoa(binary);
    }
  }
  return btoa("\0");
}

type Json = Record<string, unknown>;

function num(value: unknown): number {
  return value === undefined ? 0 : Number(value);
}

function keyValueOf(raw: Json): EtcdKeyValue {
  return {
    key: fromBase64(raw.key as string | undefined),
    value: fromBase64(raw.value as string | undefined),
    createRevision: num(raw.create_revision),
    modRevision: num(raw.mod_revision),
    lease: String(raw.lease ?? "0"),
  };
}

function revisionOf(body: Json): number {
  return num((body.header as Json | undefined)?.revision);
}

function compareJson(compare: Compare): Json {
  const base = { key: toBase64(compare.key), result: "EQUAL", target: compare.target };
  switch (compare.target) {
    case "CREATE":
      return { ...base, create_revision: String(compare.createRevision) };
    case "MOD":
      return { ...base, mod_revision: String(compare.modRevision) };
    case "VALUE":
      return { ...base, value: toBase64(compare.value) };
    case "LEASE":
      return { ...base, lease: compare.lease };
  }
}

function opJson(op: TxnOp): Json {
  if ("put" in op) {
    const { key, value, lease } = op.put;
    return {
      request_put: { key: toBase64(key), value: toBase64(value), ...(lease ? { lease } : {}) },
    };
  }
  return { request_delete_range: { key: toBase64(op.deleteRange.key) } };
}

/** See the module comment. */
export class EtcdClient {
  readonly #endpoints: readonly string[];
  readonly #timeoutMs: number;
  /** The endpoint that answered last: tried first. */
  #preferred = 0;

  constructor(options: EtcdClientOptions) {
    if (options.endpoints.length === 0) throw new EtcdError("no etcd endpoints given");
    this.#endpoints = options.endpoints.map((e) => e.replace(/\/+$/, ""));
    this.#timeoutMs = options.timeoutMs;
  }

  /** The endpoint that answered last (tried first; a new watch starts there). */
  get preferredEndpoint(): string {
    return this.#endpoints[this.#preferred];
  }

  /** The endpoints, in the order given. */
  get endpoints(): readonly string[] {
    return this.#endpoints;
  }

  /** The value of `key`, or every key under `key` as a prefix. */
  async range(key: string, options: { prefix?: boolean } = {}): Promise<RangeResult> {
    const body = await this.#call("/v3/kv/range", {
      key: toBase64(key),
      ...(options.prefix ? { range_end: prefixEnd(key) } : {}),
    });
    const kvs = (body.kvs as Json[] | undefined) ?? [];
    return { kvs: kvs.map(keyValueOf), revision: revisionOf(body) };
  }

  /** Writes `key` (bound to `lease` when given); resolves to the new revision. */
  async put(key: string, value: string, lease?: string): Promise<number> {
    const body = await this.#call("/v3/kv/put", {
      key: toBase64(key),
      value: toBase64(value),
      ...(lease ? { lease } : {}),
    });
    return revisionOf(body);
  }

  /** Deletes `key`; resolves to how many keys were deleted. */
  async delete(key: string): Promise<number> {
    const body = await this.#call("/v3/kv/deleterange", { key: toBase64(key) });
    return num(body.deleted);
  }

  /** A transaction: `success` runs if every comparison holds, else `failure`. */
  async txn(
    compare: readonly Compare[],
    success: readonly TxnOp[],
    failure: readonly TxnOp[] = [],
  ): Promise<{ succeeded: boolean; revision: number }> {
    const body = await this.#call("/v3/kv/txn", {
      compare: compare.map(compareJson),
      success: success.map(opJson),
      failure: failure.map(opJson),
    });
    return { succeeded: body.succeeded === true, revision: revisionOf(body) };
  }

  /** A new lease of `ttlSeconds`; resolves to its ID and the TTL etcd granted. */
  async grantLease(ttlSeconds: number): Promise<{ id: string; ttlSeconds: number }> {
    const body = await this.#call("/v3/lease/grant", { TTL: String(ttlSeconds) });
    if (body.error) throw new EtcdError(`etcd refused the lease: ${String(body.error)}`);
    return { id: String(body.ID), ttlSeconds: num(body.TTL) };
  }

  /**
   * Renews lease `id` once; resolves to its TTL from now in seconds, 0 when the lease is gone
   * (expired or revoked: it cannot be renewed any more).
   */
  async keepAlive(id: string): Promise<number> {
    const body = await this.#call("/v3/lease/keepalive", { ID: id });
    return num((body.result as Json | undefined)?.TTL);
  }

  /** Seconds lease `id` has left, or -1 when it is gone. */
  async timeToLive(id: string): Promise<number> {
    const body = await this.#call("/v3/kv/lease/timetolive", { ID: id });
    return num(body.TTL);
  }

  /** Revokes lease `id`: every key bound to it is deleted. A missing lease is no error. */
  async revoke(id: string): Promise<void> {
    try {
      await this.#call("/v3/kv/lease/revoke", { ID: id });
    } catch (error) {
      if (error instanceof EtcdError && /lease not found/.test(error.message)) return;
      throw error;
    }
  }

  /**
   * Watches every key under `prefix` from revision `fromRevision` on one endpoint, calling
   * `onEvents` for each batch of changes, until the stream ends (resolves to the last revision
   * seen), `signal` aborts, or `idleMs` pass without a byte (etcd sends progress on its own
   * only when asked; the caller re-reads then). Throws {@link EtcdError} when it cannot start.
   */
  async watch(
    prefix: string,
    fromRevision: number,
    onEvents: (events: WatchEvent[], revision: number) => void,
    signal: AbortSignal,
  ): Promise<number> {
    const endpoint = this.#endpoints[this.#preferred];
    let lastRevision = fromRevision - 1;
    const body = await this.#openWatch(endpoint, prefix, fromRevision, signal);
    if (body === undefined) return lastRevision;
    let pending = "";
    try {
      for await (const chunk of body.pipeThrough(new TextDecoderStream())) {
        pending += chunk;
        let newline;
        while ((newline = pending.indexOf("\n")) !== -1) {
          const line = pending.slice(0, newline).trim();
          pending = pending.slice(newline + 1);
          if (line === "") continue;
          const { events, revision } = parseWatchLine(line, endpoint);
          if (events.length > 0) {
            lastRevision = Math.max(lastRevision, ...events.map((e) => e.kv.modRevision));
            onEvents(events, revision);
          }
        }
      }
    } catch (error) {
      if (signal.aborted) return lastRevision;
      if (error instanceof EtcdError) throw error;
      throw new EtcdError(`the watch on ${endpoint} broke: ${describe(error)}`);
    }
    return lastRevision;
  }

  /**
   * Starts a watch stream on `endpoint`: its body, or undefined when `signal` aborted first. The
   * deadline covers the answer's start only: the stream itself lives as long as the caller wants
   * it. A failure moves the preference to the next endpoint.
   */
  async #openWatch(
    endpoint: string,
    prefix: string,
    fromRevision: number,
    signal: AbortSignal,
  ): Promise<ReadableStream<Uint8Array> | undefined> {
    let response: Response;
    const connect = new AbortController();
    const timer = setTimeout(
      () => connect.abort(new DOMException("", "TimeoutError")),
      this.#timeoutMs,
    );
    try {
      response = await fetch(`${endpoint}/v3/watch`, {
        method: "POST",
        body: JSON.stringify({
          create_request: {
            key: toBase64(prefix),
            range_end: prefixEnd(prefix),
            start_revision: String(fromRevision),
          },
        }),
        signal: AbortSignal.any([signal, connect.signal]),
      });
    } catch (error) {
      if (signal.aborted) return undefined;
      this.#preferred = (this.#preferred + 1) % this.#endpoints.length;
      throw new EtcdError(`cannot watch on ${endpoint}: ${describe(error)}`);
    } finally {
      clearTimeout(timer);
    }
    if (!response.ok || response.body === null) {
      await response.body?.cancel();
      this.#preferred = (this.#preferred + 1) % this.#endpoints.length;
      throw new EtcdError(`cannot watch on ${endpoint}: HTTP ${response.status}`);
    }
    return response.body;
  }

  /** POSTs `payload` to `path`, on each endpoint in turn until one answers. */
  async #call(path: string, payload: Json): Promise<Json> {
    const failures: string[] = [];
    const count = this.#endpoints.length;
    // Each endpoint once; a lone endpoint twice (a pooled connection etcd closed fails at once).
    const attempts = Math.max(2, count);
    // From the endpoint preferred now: concurrent calls may move the preference meanwhile.
    const first = this.#preferred;
    for (let attempt = 0; attempt < attempts; attempt++) {
      const index = (first + attempt) % count;
      const endpoint = this.#endpoints[index];
      let response: Response;
      let text: string;
      try {
        response = await fetch(endpoint + path, {
          method: "POST",
          body: JSON.stringify(payload),
          signal: AbortSignal.timeout(this.#timeoutMs),
        });
        text = await response.text();
      } catch (error) {
        failures.push(`${endpoint}: ${describe(error)}`);
        continue;
      }
      let body: Json;
      try {
        body = JSON.parse(text) as Json;
      } catch {
        failures.push(`${endpoint}: HTTP ${response.status}, not JSON: ${text.slice(0, 200)}`);
        continue;
      }
      if (!response.ok || body.error !== undefined) {
        const message = String(body.message ?? body.error ?? `HTTP ${response.status}`);
        // etcd's "no leader", "timed out" and "unavailable": another member may do better.
        if (response.status >= 500 || /leader|timed out|unavailable/i.test(message)) {
          failures.push(`${endpoint}: ${message}`);
          continue;
        }
        this.#preferred = index;
        throw new EtcdError(`etcd refused ${path}: ${message}`);
      }
      this.#preferred = index;
      return body;
    }
    throw new EtcdError(`etcd unreachable (${path}): ${failures.join("; ")}`);
  }
}

function describe(error: unknown): string {
  if (error instanceof DOMException && error.name === "TimeoutError") return "timed out";
  return error instanceof Error ? error.message : String(error);
}

/**
 * One line of etcd's watch stream (JSON): its events and the revision it was sent at. Throws
 * {@link EtcdError} for a line that is no result, or a watch etcd canceled (compacted past it).
 */
export function parseWatchLine(
  line: string,
  endpoint: string,
): { events: WatchEvent[]; revision: number } {
  const result = (JSON.parse(line) as Json).result as Json | undefined;
  if (result === undefined) {
    throw new EtcdError(`the watch on ${endpoint} failed: ${line.slice(0, 200)}`);
  }
  if (result.canceled === true || result.compact_revision !== undefined) {
    throw new EtcdError(
      `the watch on ${endpoint} was canceled (compacted at ${
        String(result.compact_revision ?? "?")
      })`,
    );
  }
  const events = ((result.events as Json[] | undefined) ?? []).map((e) => ({
    type: e.type === "DELETE" ? "DELETE" as const : "PUT" as const,
    kv: keyValueOf(e.kv as Json),
  }));
  return { events, revision: revisionOf(result) };
}
