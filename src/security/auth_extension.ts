/**
 * Token authentication plugged into the server: the `AUTH <token>` command (text and RESP; also
 * Redis's `AUTH default <token>`, so `redis-cli -a` works) and the gate that refuses every
 * command but `PING`, `AUTH` and `QUIT` on a connection that has not authenticated.
 *
 * Two tokens: the client token (`AUTH_TOKEN`) lets a connection run client commands; the
 * replication token (`REPLICATION_TOKEN`, by default the client token) lets it run `REPLICATE`,
 * which only a master sends. Tokens are compared in constant time. Failed attempts are counted
 * per client address: past `AUTH_MAX_FAILURES` in `AUTH_FAILURE_WINDOW_SECONDS`, `AUTH` from that
 * address is refused until the window ends; the first failure and the one that blocks are
 * logged with the address (not every attempt, so a flood cannot flood the log).
 *
 * @module
 */
import type { Config } from "../config.ts";
import { getLog } from "../log.ts";
import { Counter, type Registry } from "../metrics/registry.ts";
import type { Reply, ReplyWriter } from "../protocol/mod.ts";
import type {
  CommandContext,
  CommandSpec,
  ConnectionInfo,
  ServerExtension,
  ServerHooks,
} from "../server/hooks.ts";
import { FailureLimiter, tokensEqual } from "./auth.ts";

const log = getLog("security");

/** Connection state key: the connection presented the client token. */
export const CLIENT_AUTHENTICATED = "auth.client";
/** Connection state key: the connection presented the replication token. */
export const REPLICATION_AUTHENTICATED = "auth.replication";

/** Commands a connection may send before it authenticated. */
const OPEN_COMMANDS: ReadonlySet<string> = new Set(["PING", "AUTH", "QUIT"]);

/** The tokens a node checks (`undefined`: that kind of authentication is off). */
export interface AuthTokens {
  /** Token of clients (`AUTH_TOKEN`). */
  client?: string;
  /** Token a master presents to send `REPLICATE` (`REPLICATION_TOKEN`, else the client one). */
  replication?: string;
}

/** The reply to a command sent before `AUTH`. */
export const NOAUTH_MESSAGE = "Authentication required: send AUTH <token> first";
/** The reply to `REPLICATE` on a connection without the replication token. */
export const NOAUTH_REPLICATE_MESSAGE =
  "Authentication required: REPLICATE is accepted only after AUTH with the replication token";
/** The reply to `AUTH` on a node without tokens. */
export const AUTH_OFF_MESSAGE =
  "AUTH called, but this node has no AUTH_TOKEN or REPLICATION_TOKEN (authentication is off)";

const NOAUTH: Reply = { type: "error", code: "NOAUTH", message: NOAUTH_MESSAGE };
const NOAUTH_REPLICATE: Reply = {
  type: "error",
  code: "NOAUTH",
  message: NOAUTH_REPLICATE_MESSAGE,
};

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
    if (tokens.client === undefined && tokens.replication === undefined) {
      return {
        commands: {
          AUTH: {
            minArgs: 1,
            maxArgs: 2,
            handler: (_args, out) => out.error(AUTH_OFF_MESSAGE),
          },
        },
      };
    }
    const failures = registry?.add(
      new Counter(
        "kvstore_auth_failures_total",
        "AUTH attempts refused: a wrong token, or an address past AUTH_MAX_FAILURES.",
        ["reason"],
      ),
    );
    const wrongToken = failures?.labels("wrong_token");
    const blocked = failures?.labels("blocked");
    const windowMs = config.AUTH_FAILURE_WINDOW_SECONDS * 1000;
    const limiter = new FailureLimiter({
      maxFailures: config.AUTH_MAX_FAILURES,
      windowMs,
      maxPeers: config.AUTH_MAX_TRACKED_PEERS,
    });

    const auth = (args: Uint8Array[], out: ReplyWriter, ctx: CommandContext): void => {
      const connection = ctx.connection;
      const address = peerHost(connection.peer);
      const nowMs = Date.now();
      if (limiter.isBlocked(address, nowMs)) {
        blocked?.inc();
        out.error(
          `too many failed AUTH attempts from ${address} (AUTH_MAX_FAILURES is ` +
            `${config.AUTH_MAX_FAILURES} per ${config.AUTH_FAILURE_WINDOW_SECONDS} s); ` +
            `try again later`,
        );
        return;
      }
      const presented = args[args.length - 1];
      const userOk = args.length === 1 || decoder.decode(args[0]) === "default";
      let accepted = false;
      if (userOk && tokens.client !== undefined && tokensEqual(presented, tokens.client)) {
        connection.state.set(CLIENT_AUTHENTICATED, true);
        accepted = true;
      }
      if (
        userOk && tokens.replication !== undefined && tokensEqual(presented, tokens.replication)
      ) {
        connection.state.set(REPLICATION_AUTHENTICATED, true);
        accepted = true;
      }
      if (accepted) {
        limiter.recordSuccess(address);
        out.ok();
        return;
      }
      wrongToken?.inc();
      const verdict = limiter.recordFailure(address, nowMs);
      if (verdict.shouldLog) {
        log.warn(
          verdict.blocked
            ? "AUTH failed from {peer}: {failures} failures within {windowSeconds} s reach " +
              "AUTH_MAX_FAILURES; AUTH from {address} is refused until the window ends"
            : "AUTH failed from {peer}: wrong token (failure {failures} of at most " +
              "{maxFailures} within {windowSeconds} s; further failures are counted, not logged)",
          {
            event: "auth_failed",
            peer: connection.peer,
            address,
            failures: verdict.failuresInWindow,
            maxFailures: config.AUTH_MAX_FAILURES,
            windowSeconds: config.AUTH_FAILURE_WINDOW_SECONDS,
            blocked: verdict.blocked,
          },
        );
      }
      out.error("invalid token", "WRONGPASS");
    };

    const command: CommandSpec = { minArgs: 1, maxArgs: 2, handler: auth };
    return {
      commands: { AUTH: command },
      authorize(name: string, connection: ConnectionInfo): Reply | undefined {
        if (OPEN_COMMANDS.has(name)) return undefined;
        if (name === "REPLICATE") {
          if (tokens.replication === undefined) {
            return tokens.client === undefined || connection.state.has(CLIENT_AUTHENTICATED)
              ? undefined
              : NOAUTH;
          }
          return connection.state.has(REPLICATION_AUTHENTICATED) ? undefined : NOAUTH_REPLICATE;
        }
        if (tokens.client === undefined || connection.state.has(CLIENT_AUTHENTICATED)) {
          return undefined;
        }
        return NOAUTH;
      },
    };
  };
}
