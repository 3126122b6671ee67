/**
 * RESP2 and RESP3 replies as raw bytes, for tests that compare kvstore's replies with Redis's
 * byte for byte: where one reply ends in a byte stream, its shape (types and sizes, without the
 * values) for replies that hold volatile values, a readable rendering for failure messages, a
 * decoder to plain values for assertions, and a raw connection that reads whole replies.
 *
 * @module
 */
import { resp } from "./wire.ts";

const CR = 0x0d;
const LF = 0x0a;
const decoder = new TextDecoder();

/** The index of the `\r\n` that ends the line starting at `from`, or -1 when not there yet. */
function lineEnd(data: Uint8Array, from: number): number {
  for (let i = from; i + 1 < data.length; i++) {
    if (data[i] === CR && data[i + 1] === LF) return i;
  }
  return -1;
}

/**
 * Where the reply that starts at `offset` ends (the index after it), or -1 when `data` does not
 * hold all of it yet. Throws on a byte that starts no RESP type.
 */
export function replyEnd(data: Uint8Array, offset: number): number {
  if (offset >= data.length) return -1;
  const type = String.fromCharCode(data[offset]);
  const end = lineEnd(data, offset + 1);
  if (end === -1) return -1;
  const header = decoder.decode(data.subarray(offset + 1, end));
  const after = end + 2;
  switch (type) {
    case "+":
    case "-":
    case ":":
    case "_":
    case "#":
    case ",":
    case "(":
      return after;
    case "$":
    case "=":
    case "!": {
      const length = Number(header);
      if (length < 0) return after;
      return after + length + 2 <= data.length ? after + length + 2 : -1;
    }
    case "*":
    case "~":
    case ">":
    case "%":
    case "|": {
      const count = Number(header);
      if (count < 0) return after;
      let at = after;
      const items = type === "%" || type === "|" ? count * 2 : count;
      for (let i = 0; i < items; i++) {
        at = replyEnd(data, at);
        if (at === -1) return -1;
      }
      // An attribute is followed by the reply it describes.
      return type === "|" ? replyEnd(data, at) : at;
    }
    default:
      throw new Error(`not RESP at byte ${offset}: ${render(data.subarray(offset, offset + 40))}`);
  }
}

/**
 * The shape of one whole reply: its types and aggregate sizes, not its values (`*2[$,$]`,
 * `%7[$:$$...]`), to compare replies holding times, ids or addresses.
 */
export function shapeOf(reply: Uint8Array): string {
  let at = 0;
  const walk = (): string => {
    const type = String.fromCharCode(reply[at]);
    const end = lineEnd(reply, at + 1);
    const header = decoder.decode(reply.subarray(at + 1, end));
    at = end + 2;
    switch (type) {
      case "$":
      case "=":
      case "!": {
        const length = Number(header);
        if (length < 0) return `${type}-1`;
        at += length + 2;
        return type;
      }
      case "*":
      case "~":
      case ">":
      case "%":
      case "|": {
        const count = Number(header);
        if (count < 0) return `${type}-1`;
        const items = type === "%" || type === "|" ? count * 2 : count;
        const parts: string[] = [];
        for (let i = 0; i < items; i++) parts.push(walk());
        return `${type}${count}[${parts.join(",")}]`;
      }
      case "-":
        return `-${header.split(" ")[0]}`;
      default:
        return type;
    }
  };
  return walk();
}

/** Bytes as readable text: CR, LF, and bytes outside printable ASCII escaped. */
export function render(bytes: Uint8Array): string {
  let text = "";
  for (const byte of bytes) {
    if (byte === CR) text += "\\r";
    else if (byte === LF) text += "\\n";
    else if (byte >= 0x20 && byte < 0x7f && byte !== 0x5c) text += String.fromCharCode(byte);
    else text += `\\x${byte.toString(16).padStart(2, "0")}`;
  }
  return text;
}

/** A RESP3 value decoded for assertions. */
export type Resp3Value =
  | string
  | number
  | bigint
  | boolean
  | null
  | { error: string }
  | { double: number }
  | { verbatim: string; format: string }
  | Resp3Value[]
  | Map<Resp3Value, Resp3Value>
  | Set<Resp3Value>;

/** Decodes one whole reply: bulk and simple strings as text, maps as `Map`, sets as `Set`. */
export function decodeReply(reply: Uint8Array): Resp3Value {
  let at = 0;
  const walk = (): Resp3Value => {
    const type = String.fromCharCode(reply[at]);
    const end = lineEnd(reply, at + 1);
    const header = decoder.decode(reply.subarray(at + 1, end));
    at = end + 2;
    switch (type) {
      case "+":
        return header;
      case "-":
        return { error: header };
      case ":":
        return Number(header);
      case "(":
        return BigInt(header);
      case "_":
        return null;
      case "#":
        return header === "t";
      case ",":
        return {
          double: Number(header === "inf" ? Infinity : header === "-inf" ? -Infinity : header),
        };
      case "$":
      case "=":
      case "!": {
        const length = Number(header);
        if (length < 0) return null;
        const text = decoder.decode(reply.subarray(at, at + length));
        at += length + 2;
        if (type === "=") return { format: text.slice(0, 3), verbatim: text.slice(4) };
        return type === "!" ? { error: text } : text;
      }
      case "%": {
        const map = new Map<Resp3Value, Resp3Value>();
        for (let i = Number(header); i > 0; i--) {
          const key = walk();
          map.set(key, walk());
        }
        return map;
      }
      case "~": {
        const set = new Set<Resp3Value>();
        for (let i = Number(header); i > 0; i--) set.add(walk());
        return set;
      }
      default: {
        const count = Number(header);
        if (count < 0) return null;
        const items: Resp3Value[] = [];
        for (let i = 0; i < count; i++) items.push(walk());
        return items;
      }
    }
  };
  return walk();
}

/** A RESP array of bulk strings: a request. */
export function encodeCommand(words: readonly (string | Uint8Array)[]): Uint8Array {
  return resp(...words);
}

/** A raw TCP connection that sends bytes and reads whole RESP replies as bytes. */
export class RawRespConnection implements AsyncDisposable {
  readonly #conn: Deno.TcpConn;
  #buffer = new Uint8Array(0);
  #eof = false;

  private constructor(conn: Deno.TcpConn) {
    this.#conn = conn;
  }

  /** Connects to 127.0.0.1:`port`. */
  static async open(port: number): Promise<RawRespConnection> {
    const conn = await Deno.connect({ hostname: "127.0.0.1", port });
    conn.setNoDelay(true);
    return new RawRespConnection(conn);
  }

  /** Sends bytes (or a command's words encoded as a RESP array). */
  async send(data: Uint8Array | readonly (string | Uint8Array)[]): Promise<void> {
    const bytes = data instanceof Uint8Array ? data : encodeCommand(data);
    let written = 0;
    while (written < bytes.length) written += await this.#conn.write(bytes.subarray(written));
  }

  /** True once the server closed the connection and every byte it sent was read. */
  get closed(): boolean {
    return this.#eof && this.#buffer.length === 0;
  }

  async #fill(deadlineMs: number): Promise<boolean> {
    if (this.#eof) return false;
    const chunk = new Uint8Array(64 * 1024);
    let timer: ReturnType<typeof setTimeout> | undefined;
    const timeout = new Promise<never>((_, reject) => {
      timer = setTimeout(
        () => reject(new Error(`no reply in time; buffered: ${render(this.#buffer)}`)),
        Math.max(0, deadlineMs - Date.now()),
      );
    });
    try {
      const count = await Promise.race([this.#conn.read(chunk), timeout]);
      if (count === null) {
        this.#eof = true;
        return false;
      }
      const grown = new Uint8Array(this.#buffer.length + count);
      grown.set(this.#buffer);
      grown.set(chunk.subarray(0, count), this.#buffer.length);
      this.#buffer = grown;
      return true;
    } catch (error) {
      if (error instanceof Deno.errors.ConnectionReset) {
        this.#eof = true;
        return false;
      }
      throw error;
    } finally {
      clearTimeout(timer);
    }
  }

  /** Reads one whole reply (its bytes); rejects if the connection closes first. */
  async readReply(timeoutMs = 10_000): Promise<Uint8Array> {
    const deadline = Date.now() + timeoutMs;
    for (;;) {
      const end = replyEnd(this.#buffer, 0);
      if (end !== -1) {
        const reply = this.#buffer.slice(0, end);
        this.#buffer = this.#buffer.slice(end);
        return reply;
      }
      if (!(await this.#fill(deadline))) {
        throw new Error(`connection closed before a whole reply: ${render(this.#buffer)}`);
      }
    }
  }

  /** True when the server closes the connection within `timeoutMs` (bytes it sent are kept). */
  async closesWithin(timeoutMs = 5_000): Promise<boolean> {
    const deadline = Date.now() + timeoutMs;
    try {
      while (await this.#fill(deadline));
      return true;
    } catch {
      return false;
    }
  }

  close(): void {
    try {
      this.#conn.close();
    } catch {
      // Closed already.
    }
  }

  [Symbol.asyncDispose](): Promise<void> {
    this.close();
    return Promise.resolve();
  }
}

/** Sends `words` on `conn` and decodes its reply. */
export async function call(
  conn: RawRespConnection,
  ...words: (string | Uint8Array)[]
): Promise<Resp3Value> {
  await conn.send(words);
  return decodeReply(await conn.readReply());
}
