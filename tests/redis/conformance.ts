/**
 * The Redis conformance harness: the same inputs go to a real `redis-server` (Debian's, started
 * by the test on a free loopback port, no persistence, one database) and to a real kvstore
 * process, and every reply is compared byte for byte, per command family. kvstore is asked on
 * both of its ports: the main one (RESP beside the text protocol) and the RESP-only one
 * (`--resp-port`, where Redis's inline commands work too).
 *
 * A family is data: a table of cases, each a list of steps sent in order on one fresh connection
 * to each server. A step is a command (its words), or raw bytes (inline commands, broken
 * framing) with how many replies they produce. Where a reply holds values that differ between
 * any two servers (ids, times, addresses) the step compares its shape or masks them; where
 * kvstore deliberately answers otherwise, the step says why (`differs`) and what kvstore must
 * answer instead (`kvstore`), so no difference is silent.
 *
 * To add a family: write its table (see `families/connection.ts`), add it to `families/mod.ts`.
 *
 * @module
 */
import assert from "node:assert/strict";
import { hasCommand, type RedisServer, startRedis } from "../helpers/redis.ts";
import { RawRespConnection, render, replyEnd, shapeOf } from "../helpers/resp3.ts";
import { type ServerProcess, startServerProcess } from "../helpers/server_process.ts";

/** The token the servers of `auth` families require (Redis's `requirepass`, kvstore's token). */
export const CONFORMANCE_TOKEN = "conformance-token-0123456789abcdef";

/** One step of a case: a command's words, or a step with options. */
export type Step = readonly (string | Uint8Array)[] | StepOptions;

/** A step with options. */
export interface StepOptions {
  /** The command's words (sent as a RESP array), or raw text sent as it is. */
  send: readonly (string | Uint8Array)[] | string;
  /** Replies the step produces (default 1; 0 for input Redis answers nothing to). */
  replies?: number;
  /**
   * `shape`: compare types and sizes only (the values differ between any two servers);
   * `sorted`: an array whose items may come in another order (KEYS: Redis's is its hash
   * table's), compared once sorted; in a SCAN-shaped reply (cursor, keys) the keys are sorted.
   * `pairs`: a map (RESP2: a flat array of keys and values) whose entries may come in another
   * order (CONFIG GET: Redis's is a hash table's, seeded at random at each start), compared
   * once its entries are sorted.
   */
  compare?: "bytes" | "shape" | "sorted" | "pairs";
  /** Replaced by `#` in both replies before they are compared (an id inside a bigger reply). */
  mask?: RegExp;
  /** The server closes the connection after this step's replies (QUIT, a fatal error). */
  closes?: boolean;
  /**
   * Sent on a second connection to the same server, opened at its first such step (another
   * client: a write a `WATCH` on the first connection must see, or not).
   */
  other?: boolean;
  /** Only on the RESP-only port (inline commands: the main port reads the text protocol). */
  respPortOnly?: boolean;
  /** A deliberate difference from Redis: why. {@link kvstore} is then what kvstore answers. */
  differs?: string;
  /** With {@link differs}: kvstore's reply (rendered, `\r\n` written as such), or a pattern. */
  kvstore?: string | RegExp;
}

/** One case: steps sent in order on a fresh connection to each server. */
export interface ConformanceCase {
  name: string;
  steps: Step[];
}

/** A command family's table. */
export interface ConformanceFamily {
  /** Its name in the test output (`connection`, `strings`, ...). */
  family: string;
  /** The servers require a password / token (`AUTH` cases). */
  auth?: boolean;
  /**
   * Commands sent (on their own connection, replies not compared) to both servers before each
   * case, e.g. to delete the keys the cases use.
   */
  setup?: readonly (readonly string[])[];
  cases: ConformanceCase[];
}

/** True when the harness can run here (a test that uses it skips itself otherwise, saying so). */
export const REDIS_SERVER_INSTALLED = hasCommand("redis-server");

/** The servers one test run compares: Redis and kvstore, without and with a password. */
export class ConformanceServers implements AsyncDisposable {
  #open: Promise<[RedisServer, ServerProcess]> | undefined;
  #auth: Promise<[RedisServer, ServerProcess]> | undefined;

  /** The pair for `family` (started the first time it is needed). */
  pair(family: ConformanceFamily): Promise<[RedisServer, ServerProcess]> {
    if (family.auth) return this.#auth ??= startPair(true);
    return this.#open ??= startPair(false);
  }

  async [Symbol.asyncDispose](): Promise<void> {
    for (const pair of [this.#open, this.#auth]) {
      if (pair === undefined) continue;
      const [redis, kvstore] = await pair;
      await redis.stop();
      await kvstore.kill();
    }
  }
}

async function startPair(auth: boolean): Promise<[RedisServer, ServerProcess]> {
  const redis = await startRedis([
    "--databases",
    "1",
    ...(auth ? ["--requirepass", CONFORMANCE_TOKEN] : []),
  ]);
  try {
    const kvstore = await startServerProcess({
      args: ["--fsync", "no", "--resp-port", "0", "--auth-max-failures", "100000"],
      env: auth ? { KVSTORE_AUTH_TOKEN: CONFORMANCE_TOKEN } : {},
    });
    return [redis, kvstore];
  } catch (error) {
    await redis.stop();
    throw error;
  }
}

function stepOptions(step: Step): StepOptions {
  return Array.isArray(step) ? { send: step } : step as StepOptions;
}

function describeStep(options: StepOptions): string {
  return typeof options.send === "string"
    ? JSON.stringify(options.send)
    : options.send.map((word) => typeof word === "string" ? word : `<${word.length} bytes>`)
      .join(" ");
}

/** Runs `commands` on a fresh connection to `port`, reading (and dropping) their replies. */
async function runSetup(port: number, commands: readonly (readonly string[])[], auth: boolean) {
  if (commands.length === 0) return;
  await using conn = await RawRespConnection.open(port);
  if (auth) {
    await conn.send(["AUTH", CONFORMANCE_TOKEN]);
    await conn.readReply();
  }
  for (const command of commands) {
    await conn.send(command);
    await conn.readReply();
  }
}

/** Sends one step and reads its replies. */
async function exchange(conn: RawRespConnection, options: StepOptions): Promise<Uint8Array[]> {
  await conn.send(
    typeof options.send === "string" ? new TextEncoder().encode(options.send) : options.send,
  );
  const replies: Uint8Array[] = [];
  for (let i = 0; i < (options.replies ?? 1); i++) replies.push(await conn.readReply());
  return replies;
}

function masked(reply: Uint8Array, mask: RegExp | undefined): string {
  const text = render(reply);
  return mask === undefined ? text : text.replace(mask, "#");
}

/** Runs one case against Redis and against kvstore on `port` (`which` names it). */
async function runCase(
  family: ConformanceFamily,
  testCase: ConformanceCase,
  redisPort: number,
  kvstorePort: number,
  which: "main port" | "RESP port",
): Promise<void> {
  const steps = testCase.steps.map(stepOptions);
  if (which === "main port" && steps.some((step) => step.respPortOnly)) return;
  await runSetup(redisPort, family.setup ?? [], family.auth ?? false);
  await runSetup(kvstorePort, family.setup ?? [], family.auth ?? false);
  await using redisMain = await RawRespConnection.open(redisPort);
  await using kvstoreMain = await RawRespConnection.open(kvstorePort);
  await using others = new AsyncDisposableStack();
  let redisOther: RawRespConnection | undefined;
  let kvstoreOther: RawRespConnection | undefined;
  for (const [index, step] of steps.entries()) {
    if (step.other && redisOther === undefined) {
      redisOther = others.use(await RawRespConnection.open(redisPort));
      kvstoreOther = others.use(await RawRespConnection.open(kvstorePort));
    }
    const redis = step.other && redisOther !== undefined ? redisOther : redisMain;
    const kvstore = step.other && kvstoreOther !== undefined ? kvstoreOther : kvstoreMain;
    const where = `${family.family} / ${testCase.name} / step ${index + 1} (${
      describeStep(step)
    }) on kvstore's ${which}`;
    const expected = await exchange(redis, step).catch((error) => {
      throw new Error(`${where}: Redis: ${error.message}`);
    });
    const actual = await exchange(kvstore, step).catch((error) => {
      throw new Error(`${where}: kvstore: ${error.message}`);
    });
    for (let i = 0; i < expected.length; i++) {
      if (step.differs !== undefined) {
        const want = step.kvstore;
        assert.ok(want !== undefined, `${where}: a difference must say what kvstore answers`);
        const got = render(actual[i]);
        if (typeof want === "string") assert.equal(got, want, `${where}: ${step.differs}`);
        else assert.match(got, want, `${where}: ${step.differs}`);
        assert.notEqual(render(expected[i]), got, `${where}: listed as a difference, but equal`);
      } else if (step.compare === "sorted") {
        assert.equal(sortedItems(actual[i]), sortedItems(expected[i]), `${where}: sorted`);
      } else if (step.compare === "pairs") {
        assert.equal(sortedPairs(actual[i]), sortedPairs(expected[i]), `${where}: pairs`);
      } else if (step.compare === "shape") {
        assert.equal(shapeOf(actual[i]), shapeOf(expected[i]), `${where}: shape`);
      } else {
        assert.equal(masked(actual[i], step.mask), masked(expected[i], step.mask), where);
      }
    }
    if (step.closes) {
      assert.ok(await redis.closesWithin(), `${where}: Redis was expected to close`);
      assert.ok(await kvstore.closesWithin(), `${where}: kvstore did not close the connection`);
      return;
    }
  }
}

/**
 * An array reply rendered with its items sorted (a two-item array whose second item is an array,
 * SCAN's shape, has that inner array sorted instead).
 */
function sortedItems(reply: Uint8Array): string {
  const items = arrayItems(reply, 0);
  if (items === undefined) return render(reply);
  const [header, parts] = items;
  if (parts.length === 2 && parts[1][0] === 0x2a) {
    return render(header) + render(parts[0]) + sortedItems(parts[1]);
  }
  return render(header) + parts.map(render).sort().join("");
}

/**
 * A map (or a flat array of keys and values) rendered with its entries sorted: its header, then
 * each key with its value, in key order.
 */
function sortedPairs(reply: Uint8Array): string {
  const items = arrayItems(reply, 0);
  if (items === undefined) return render(reply);
  const [header, parts] = items;
  const pairs: string[] = [];
  for (let i = 0; i + 1 < parts.length; i += 2) pairs.push(render(parts[i]) + render(parts[i + 1]));
  return render(header) + pairs.sort().join("");
}

/**
 * The header and items of the RESP array (or map: its keys and values in turn) at `offset`, or
 * undefined if it is neither.
 */
function arrayItems(reply: Uint8Array, offset: number): [Uint8Array, Uint8Array[]] | undefined {
  const map = reply[offset] === 0x25;
  if (reply[offset] !== 0x2a && !map) return undefined;
  const lineEnd = reply.indexOf(0x0a, offset);
  const entries = Number(new TextDecoder().decode(reply.subarray(offset + 1, lineEnd - 1)));
  if (entries < 0) return undefined;
  const count = map ? 2 * entries : entries;
  const parts: Uint8Array[] = [];
  let at = lineEnd + 1;
  for (let i = 0; i < count; i++) {
    const end = replyEnd(reply, at);
    parts.push(reply.subarray(at, end));
    at = end;
  }
  return [reply.subarray(offset, lineEnd + 1), parts];
}

/** Runs every case of `family` on both of kvstore's ports, each against Redis. */
export async function runFamily(
  family: ConformanceFamily,
  servers: ConformanceServers,
): Promise<void> {
  const [redis, kvstore] = await servers.pair(family);
  const respPort = kvstore.respPort;
  assert.ok(respPort !== undefined, "kvstore was started with --resp-port");
  for (const testCase of family.cases) {
    await runCase(family, testCase, redis.port, kvstore.port, "main port");
    await runCase(family, testCase, redis.port, respPort, "RESP port");
  }
}
