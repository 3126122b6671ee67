/**
 * Token authentication plugged into the server: the `AUTH <token>` command (text and RESP; also
 * Redis's `AUTH default <token>`, so `redis-cli -a` works), the challenge-response proof of the
 * replication token (`CHALLENGE` / `PROVE`, see `src/protocol/challenge.ts`), and the gate that
 * refuses every command but `PING`, `AUTH`, `CHALLENGE`, `PROVE` and `QUIT` on a connection that
 * has not authenticated.
 *
 * Two credentials: the client token (`AUTH_TOKEN`) lets a connection run client commands; the
 * replication token (`REPLICATION_TOKEN`, by default the client token) also lets it run the admin
 * commands (`REPLICATE`, which only a master sends, and the topology changes `PROMOTE` and
 * `REPLICAS`). A master and `kvstore promote|replicas` prove the replication token with
 * `CHALLENGE`/`PROVE` and never send it; `AUTH <replication token>` is still accepted (operators
 * with `redis-cli`, masters of older versions).
 *
 * Failed attempts (a wrong token, a wrong proof) are counted per client address: the first
 * `AUTH_MAX_FAILURES` in `AUTH_FAILURE_WINDOW_SECONDS` are answered at once; each further one is
 * answered after `AUTH_FAILURE_DELAY_MS` and closes its connection, so guesses cost a connection
 * and a delay each. A correct credential is always accepted at once: a flood of wrong guesses
 * from a shared address never locks out the right token or a master's link. The first failure and
 * the first delayed one are logged with the address (not every attempt).
 *
 * @module
 */
import type { Config } from "../config.ts";
import { getLog } from "../log.ts";
import { Counter, type CounterChild, type Registry } from "../metrics/registry.ts";
import {
  CHALLENGE_OFF_MESSAGE,
  challengeProof,
  isHex64,
  newNonce,
  proofMatches,
} from "../protocol/mod.ts";
import type { Reply, ReplyWriter } from "../protocol/mod.ts";
import type {
  CommandContext,
  CommandSpec,
  ConnectionInfo,
  ServerExtension,
  ServerHooks,
} from "../server/hooks.ts";
import { tokensEqual } from "./auth.ts";
import { FailureLimiter } from "./auth.ts";

const log = getLog("security");

/** What authentication knows of one connection. */
interface ConnectionAuth {
  /** It presented the client token (or the replication token, which also allows this). */
  client: boolean;
  /** It proved (or presented) the replication token. */
  replication: boolean;
  /** The nonces of a `CHALLENGE` awaiting its `PROVE`. */
  challenge: PendingChallenge | undefined;
}

/**
 * Commands a connection may send before it authenticated (`HELLO` refuses itself unless it
 * carries `AUTH`, as Redis's does; `RESET` only forgets).
 */
const OPEN_COMMANDS: ReadonlySet<string> = new Set([
  "PING",
  "AUTH",
  "CHALLENGE",
  "PROVE",
  "QUIT",
  "HELLO",
  "RESET",
]);

/** Tokens shorter than this draw a warning at start. */
const SHORT_TOKEN_CHARS = 16;

/** The tokens a node checks (`undefined`: that kind of authentication is off). */
export interface AuthTokens {
  /** Token of clients (`AUTH_TOKEN`). */
  client?: string;
  /** Token a master proves to send `REPLICATE` (`REPLICATION_TOKEN`, else the client one). */
  replication?: string;
}

/** The reply to a command sent before `AUTH`. */
export const NOAUTH_MESSAGE = "Authentication required: send AUTH <token> first";
/** Redis's words for the same, sent to RESP requests (clients and tools know them). */
export const REDIS_NOAUTH_MESSAGE = "Authentication required.";
/** Redis's words for a refused `AUTH`, sent to RESP requests. */
export const REDIS_WRONGPASS_MESSAGE = "invalid username-password pair or user is disabled.";
/** Redis's reply to `AUTH <password>` on a node without a password (RESP and text). */
export const REDIS_AUTH_OFF_MESSAGE = "AUTH <password> called without any password configured " +
  "for the default user. Are you sure your configuration is correct?";
/** The reply to `REPLICATE` on a connection without the replication token. */
export const NOAUTH_REPLICATE_MESSAGE =
  "Authentication required: REPLICATE is accepted only after AUTH with the replication token";
/** The reply to `AUTH` on a node without tokens. */
export const AUTH_OFF_MESSAGE =
  "AUTH called, but this node has no AUTH_TOKEN or REPLICATION_TOKEN (authentication is off)";
/** The reply to `CHALLENGE` or `PROVE` on a node without tokens (the exchange's own words). */
export { CHALLENGE_OFF_MESSAGE };

const NOAUTH: Reply = {
  type: "error",
  code: "NOAUTH",
  message: NOAUTH_MESSAGE,
  respMessage: REDIS_NOAUTH_MESSAGE,
};
const NOAUTH_REPLICATE: Reply = {
  type: "error",
  code: "NOAUTH",
  message: NOAUTH_REPLICATE_MESSAGE,
};

function noAuthAdmin(name: string): Reply {
  return {
    type: "error",
    code: "NOAUTH",
    message: `Authentication required: ${name} changes the cluster and needs the replication ` +
      `token (kvstore --replication-token-file FILE ...), not the client token`,
  };
}

function isLoopback(host: string): boolean {
  const bare = host.startsWith("[") ? host.slice(1, -1) : host;
  return bare === "localhost" || bare === "::1" || /^127\.\d+\.\d+\.\d+$/.test(bare) ||
    bare === "::ffff:127.0.0.1";
}

/**
 * What the log must say loudly when a node listens beyond loopback: without a token, anyone who
 * reaches the port can read and overwrite everything; with a token but without TLS, the token and
 * the data cross the network in clear text. `undefined` on loopback.
 *
 * @example
 * ```ts
 * import { exposureWarning } from "./auth_extension.ts";
 * console.log(exposureWarning({ host: "127.0.0.1", port: 5555, auth: false, tls: false })); // undefined
 * console.log(exposureWarning({ host: "0.0.0.0", port: 5555, auth: false, tls: false })?.slice(0, 9));
 * ```
 */
export function exposureWarning(
  options: { host: string; port: number; auth: boolean; tls: boolean; replica?: boolean },
): string | undefined {
  if (isLoopback(options.host)) return undefined;
  const where = `${options.host}:${options.port}`;
  if (!options.auth) {
    return `listening on ${where}, which is not loopback, WITHOUT AUTHENTICATION: anyone who ` +
      `can reach this port can read, overwrite and delete every key` +
      (options.replica ? " (and replace this replica's data with REPLICATE)" : "") +
      `. Set --auth-token-file (or KVSTORE_AUTH_TOKEN) and --tls-cert/--tls-key, or listen on ` +
      `127.0.0.1`;
  }
  if (!options.tls) {
    return `listening on ${where}, which is not loopback, without TLS: the AUTH token and every ` +
      `key and value cross the network in clear text. Set --tls-cert and --tls-key`;
  }
  return undefined;
}

/** The address part of a `host:port` peer (IPv6 hosts contain colons). */
function peerHost(peer: string): string {
  const colon = peer.lastIndexOf(":");
  return colon === -1 ? peer : peer.slice(0, colon);
}

const decoder = new TextDecoder();

/** The nonces of a `CHALLENGE` awaiting its `PROVE`. */
interface PendingChallenge {
  dialerNonce: string;
  nodeNonce: string;
}

/** The commands of a node without tokens: AUTH as Redis's passwordless default user. */
function authOffHooks(): ServerHooks {
  const off = (message: string): CommandSpec => ({
    minArgs: 1,
    maxArgs: 2,
    handler: (_args, out) => out.error(message),
  });
  return {
    commands: {
      // As Redis's passwordless default user: `AUTH default <anything>` is accepted.
      AUTH: {
        minArgs: 1,
        maxArgs: Infinity,
        handler: (args, out, ctx) => {
          if (args.length > 2) out.error("syntax error");
          else if (args.length === 1) {
            out.error(ctx.framing === "resp" ? REDIS_AUTH_OFF_MESSAGE : AUTH_OFF_MESSAGE);
          } else if (decoder.decode(args[0]) === "default") out.ok();
          else out.error(REDIS_WRONGPASS_MESSAGE, "WRONGPASS");
        },
      },
      CHALLENGE: off(CHALLENGE_OFF_MESSAGE),
      PROVE: off(CHALLENGE_OFF_MESSAGE),
    },
  };
}

/** Warns about each token shorter than {@link SHORT_TOKEN_CHARS}. */
function warnShortTokens(tokens: AuthTokens): void {
  const named: [string, string | undefined][] = [
    ["AUTH_TOKEN", tokens.client],
    ["REPLICATION_TOKEN", tokens.replication],
  ];
  for (const [setting, token] of named) {
    if (token !== undefined && token.length < SHORT_TOKEN_CHARS) {
      log.warn(
        "{setting} is only {length} characters: a short token can be guessed; use 32 random " +
          "bytes (openssl rand -hex 32)",
        { event: "short_token", setting, length: token.length },
      );
    }
  }
}

type FailureReason = "wrong_token" | "wrong_proof";

/** Token authentication of one node: its commands, its gate, what each connection proved. */
class TokenAuth {
  readonly #tokens: AuthTokens;
  readonly #config: Config;
  readonly #limiter: FailureLimiter;
  readonly #counted: Record<FailureReason | "delayed", CounterChild | undefined>;
  /** Per connection: what it proved (forgotten with the connection). */
  readonly #auths = new WeakMap<ConnectionInfo, ConnectionAuth>();
  /** Delayed failure replies, each answered at once by calling it (on shutdown). */
  readonly #delayed = new Set<() => void>();

  constructor(tokens: AuthTokens, config: Config, registry?: Registry) {
    this.#tokens = tokens;
    this.#config = config;
    const failures = registry?.add(
      new Counter(
        "kvstore_auth_failures_total",
        "Failed AUTH or PROVE attempts: wrong_token, wrong_proof, or delayed (an address past " +
          "AUTH_MAX_FAILURES).",
        ["reason"],
      ),
    );
    this.#counted = {
      wrong_token: failures?.labels("wrong_token"),
      wrong_proof: failures?.labels("wrong_proof"),
      delayed: failures?.labels("delayed"),
    };
    this.#limiter = new FailureLimiter({
      maxFailures: config.AUTH_MAX_FAILURES,
      windowMs: config.AUTH_FAILURE_WINDOW_SECONDS * 1000,
      maxPeers: config.AUTH_MAX_TRACKED_PEERS,
    });
  }

  #authOf(connection: ConnectionInfo): ConnectionAuth {
    let auth = this.#auths.get(connection);
    if (auth === undefined) {
      auth = { client: false, replication: false, challenge: undefined };
      this.#auths.set(connection, auth);
    }
    return auth;
  }

  /** Grants the connection what `replication` (or only the client token) allows. */
  #grant(connection: ConnectionInfo, replication: boolean): void {
    const auth = this.#authOf(connection);
    auth.client = true;
    if (replication) auth.replication = true;
    connection.markAuthenticated();
  }

  /**
   * Answers a failed attempt: at once within AUTH_MAX_FAILURES, else after
   * AUTH_FAILURE_DELAY_MS, closing the connection (nothing more it sent is run).
   */
  #refuse(
    ctx: CommandContext,
    out: ReplyWriter,
    reason: FailureReason,
    message: string,
  ): undefined | Promise<Reply> {
    const config = this.#config;
    const address = peerHost(ctx.connection.peer);
    const verdict = this.#limiter.recordFailure(address, Date.now());
    if (verdict.shouldLog) this.#logFailure(ctx.connection.peer, address, reason, verdict);
    if (!verdict.penalized) {
      this.#counted[reason]?.inc();
      out.error(
        reason === "wrong_token" && ctx.framing === "resp" ? REDIS_WRONGPASS_MESSAGE : message,
        "WRONGPASS",
      );
      return undefined;
    }
    this.#counted.delayed?.inc();
    ctx.closeAfterReply();
    const reply: Reply = {
      type: "error",
      code: "WRONGPASS",
      message: `${message}; too many failures from ${address} (AUTH_MAX_FAILURES is ` +
        `${config.AUTH_MAX_FAILURES} per ${config.AUTH_FAILURE_WINDOW_SECONDS} s): closing`,
    };
    return new Promise((resolve) => {
      const answer = () => {
        clearTimeout(timer);
        this.#delayed.delete(answer);
        resolve(reply);
      };
      const timer = setTimeout(answer, config.AUTH_FAILURE_DELAY_MS);
      this.#delayed.add(answer);
    });
  }

  #logFailure(
    peer: string,
    address: string,
    reason: FailureReason,
    verdict: { penalized: boolean; failuresInWindow: number },
  ): void {
    const config = this.#config;
    log.warn(
      verdict.penalized
        ? "{command} failed from {peer}: {failures} failures within {windowSeconds} s pass " +
          "AUTH_MAX_FAILURES ({maxFailures}); each further failure from {address} is " +
          "answered after {delayMs} ms and closes its connection (a correct token is still " +
          "accepted at once)"
        : "{command} failed from {peer}: wrong {what} (failure {failures}; past " +
          "{maxFailures} within {windowSeconds} s they are delayed; further failures are " +
          "counted, not logged)",
      {
        event: "auth_failed",
        command: reason === "wrong_token" ? "AUTH" : "PROVE",
        what: reason === "wrong_token" ? "token" : "proof",
        peer,
        address,
        failures: verdict.failuresInWindow,
        maxFailures: config.AUTH_MAX_FAILURES,
        windowSeconds: config.AUTH_FAILURE_WINDOW_SECONDS,
        delayMs: config.AUTH_FAILURE_DELAY_MS,
        penalized: verdict.penalized,
      },
    );
  }

  /** `AUTH <token>` / `AUTH default <token>`. */
  readonly #auth: CommandSpec = {
    minArgs: 1,
    maxArgs: Infinity,
    handler: (args, out, ctx) => {
      if (args.length > 2) {
        out.error("syntax error");
        return;
      }
      const { client, replication } = this.#tokens;
      const presented = args[args.length - 1];
      const userOk = args.length === 1 || decoder.decode(args[0]) === "default";
      const asReplication = userOk && replication !== undefined &&
        tokensEqual(presented, replication);
      const asClient = userOk && client !== undefined && tokensEqual(presented, client);
      if (asReplication || asClient) {
        this.#grant(ctx.connection, asReplication);
        out.ok();
        return;
      }
      return this.#refuse(ctx, out, "wrong_token", "invalid token");
    },
  };

  /** `CHALLENGE <dialerNonce>`: answers a nonce of this node's. */
  readonly #challenge: CommandSpec = {
    minArgs: 1,
    maxArgs: 1,
    handler: (args, out, ctx) => {
      const dialerNonce = decoder.decode(args[0]);
      if (this.#tokens.replication === undefined) {
        out.error(CHALLENGE_OFF_MESSAGE);
        return;
      }
      if (!isHex64(dialerNonce)) {
        out.error("CHALLENGE needs a nonce of 64 lower-case hex digits");
        return;
      }
      const pending: PendingChallenge = { dialerNonce, nodeNonce: newNonce() };
      this.#authOf(ctx.connection).challenge = pending;
      out.status(pending.nodeNonce);
    },
  };

  /** `PROVE <dialerProof>`: checks it, then answers this node's proof. */
  readonly #prove: CommandSpec = {
    minArgs: 1,
    maxArgs: 1,
    handler: (args, out, ctx) => {
      const token = this.#tokens.replication;
      const auth = this.#authOf(ctx.connection);
      const pending = auth.challenge;
      if (token === undefined) {
        out.error(CHALLENGE_OFF_MESSAGE);
        return;
      }
      if (pending === undefined) {
        out.error("PROVE without CHALLENGE: send CHALLENGE <nonce> first");
        return;
      }
      // One proof per challenge: a wrong one spends it.
      auth.challenge = undefined;
      const { dialerNonce, nodeNonce } = pending;
      const expected = challengeProof(token, "dialer", dialerNonce, nodeNonce);
      if (!proofMatches(decoder.decode(args[0]), expected)) {
        return this.#refuse(ctx, out, "wrong_proof", "wrong proof of the replication token");
      }
      this.#grant(ctx.connection, true);
      out.status(challengeProof(token, "node", dialerNonce, nodeNonce));
    },
  };

  /** The gate: what a connection may run, by what it proved. */
  #authorize(name: string, connection: ConnectionInfo, spec: CommandSpec): Reply | undefined {
    if (OPEN_COMMANDS.has(name)) return undefined;
    const auth = this.#auths.get(connection);
    if (spec.admin && this.#tokens.replication !== undefined) {
      if (auth?.replication) return undefined;
      return name === "REPLICATE" ? NOAUTH_REPLICATE : noAuthAdmin(name);
    }
    if (this.#tokens.client === undefined && !spec.admin) return undefined;
    return auth?.client ? undefined : NOAUTH;
  }

  hooks(): ServerHooks {
    return {
      commands: { AUTH: this.#auth, CHALLENGE: this.#challenge, PROVE: this.#prove },
      // With only a replication token, clients need none: connections start authenticated.
      requiresAuthentication: this.#tokens.client !== undefined,
      stopping: () => {
        for (const answer of [...this.#delayed]) answer();
      },
      connectionReset: (connection) => {
        // Redis's RESET: the connection must authenticate again.
        this.#auths.delete(connection);
      },
      authorize: (name, connection, spec) => this.#authorize(name, connection, spec),
    };
  }
}

/**
 * The authentication extension of a node with `tokens` (resolved from the settings, e.g. read
 * from `AUTH_TOKEN_FILE`). Counts failures in `registry` when given.
 */
export function authExtension(tokens: AuthTokens, registry?: Registry): ServerExtension {
  return (node): ServerHooks => {
    const config: Config = node.config;
    const warning = exposureWarning({
      host: config.HOST,
      port: config.PORT,
      auth: tokens.client !== undefined,
      tls: config.TLS_CERT !== "",
      replica: node.replica,
    });
    if (warning !== undefined) log.warn(warning, { event: "exposed", host: config.HOST });
    if (tokens.client === undefined && tokens.replication === undefined) return authOffHooks();
    warnShortTokens(tokens);
    return new TokenAuth(tokens, config, registry).hooks();
  };
}
