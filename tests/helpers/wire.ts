/**
 * Raw TCP access to a server for protocol tests: send exact bytes, read text lines or RESP
 * replies, with a timeout on every read so a missing reply fails the test instead of hanging.
 *
 * @module
 */
import { INCOMPLETE, RespReplyParser, type RespValue } from "../../src/protocol/resp.ts";

const encoder = new TextEncoder();
const decoder = new TextDecoder();

/** A raw connection to 127.0.0.1:`port`. */
export class WireClient implements AsyncDisposable {
  readonly #conn: Deno.TcpConn;
  #buffer = new Uint8Array(0);
  #closed = false;
  readonly #parser = new RespReplyParser();

  private constructor(conn: Deno.TcpConn) {
    this.#conn = conn;
  }

  static async connect(port: number): Promise<WireClient> {
    return new WireClient(await Deno.connect({ hostname: "127.0.0.1", port }));
  }

  /** Sends text (UTF-8) or bytes, all of it. */
  async send(data: string | Uint8Array): Promise<void> {
    const bytes = typeof data === "string" ? encoder.encode(data) : data;
    let written = 0;
    while (written < bytes.length) written += await this.#conn.write(bytes.subarray(written));
  }

  /** Reads more bytes into the buffer; false at end of stream. */
  async #fill(deadlineMs: number): Promise<boolean> {
    const chunk = new Uint8Array(64 * 1024);
    let timer: ReturnType<typeof setTimeout> | undefined;
    const timeout = new Promise<never>((_, reject) => {
      timer = setTimeout(
        () => reject(new Error("no data from the server in time")),
        Math.max(0, deadlineMs - Date.now()),
      );
    });
    try {
      const count = await Promise.race([this.#conn.read(chunk), timeout]);
      if (count === null) return false;
      const grown = new Uint8Array(this.#buffer.length + count);
      grown.set(this.#buffer);
      grown.set(chunk.subarray(0, count), this.#buffer.length);
      this.#buffer = grown;
      return true;
    } finally {
      clearTimeout(timer);
    }
  }

  /** Reads one `\n`-terminated line (without the `\n`). */
  async readLine(timeoutMs = 10_000): Promise<string> {
    const deadline = Date.now() + timeoutMs;
    for (;;) {
      const newline = this.#buffer.indexOf(10);
      if (newline !== -1) {
        const line = decoder.decode(this.#buffer.subarray(0, newline));
        this.#buffer = this.#buffer.slice(newline + 1);
        return line;
      }
      if (!(await this.#fill(deadline))) throw new Error("connection closed before a line");
    }
  }

  /** Reads `count` lines. */
  async readLines(count: number, timeoutMs = 10_000): Promise<string[]> {
    const lines: string[] = [];
    for (let i = 0; i < count; i++) lines.push(await this.readLine(timeoutMs));
    return lines;
  }

  /** Reads one RESP reply. */
  async readReply(timeoutMs = 10_000): Promise<RespValue> {
    const deadline = Date.now() + timeoutMs;
    for (;;) {
      const reply = this.#parser.next(this.#buffer, 0);
      this.#buffer = this.#buffer.slice(this.#parser.offset);
      if (reply !== INCOMPLETE) return reply;
      if (!(await this.#fill(deadline))) throw new Error("connection closed before a reply");
    }
  }

  /** Reads until the server closes the connection; returns everything not read yet. */
  async readToEnd(timeoutMs = 10_000): Promise<Uint8Array> {
    const deadline = Date.now() + timeoutMs;
    while (await this.#fill(deadline));
    const rest = this.#buffer;
    this.#buffer = new Uint8Array(0);
    return rest;
  }

  close(): void {
    if (this.#closed) return;
    this.#closed = true;
    try {
      this.#conn.close();
    } catch {
      // Closed by the server already.
    }
  }

  [Symbol.asyncDispose](): Promise<void> {
    this.close();
    return Promise.resolve();
  }
}

/** Encodes a command as a RESP array of bulk strings. */
export function resp(...parts: (string | Uint8Array)[]): Uint8Array {
  const chunks: Uint8Array[] = [encoder.encode(`*${parts.length}\r\n`)];
  for (const part of parts) {
    const bytes = typeof part === "string" ? encoder.encode(part) : part;
    chunks.push(encoder.encode(`$${bytes.length}\r\n`), bytes, encoder.encode("\r\n"));
  }
  const out = new Uint8Array(chunks.reduce((sum, chunk) => sum + chunk.length, 0));
  let offset = 0;
  for (const chunk of chunks) {
    out.set(chunk, offset);
    offset += chunk.length;
  }
  return out;
}

/** A bulk string reply as text (for assertions). */
export function text(reply: RespValue): string | RespValue {
  return reply instanceof Uint8Array ? decoder.decode(reply) : reply;
}
