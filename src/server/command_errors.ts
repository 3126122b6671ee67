/**
 * What a connection answers to a request it refuses or that failed: an unknown command or a wrong
 * number of arguments (worded as Redis does on RESP, as the text protocol does otherwise), a request
 * the parser refused, a bad request's message, or an internal error (logged, rate-limited).
 *
 * @module
 */
import {
  describeCommandName,
  type Reply,
  type ReplyWriter,
  type Request,
  type RequestError,
  unknownCommandMessage,
  wrongArityMessage,
} from "../protocol/mod.ts";
import { StorageError } from "../storage/mod.ts";
import { CommandError, type CommandSpec } from "./hooks.ts";
import type { LimitLog } from "./limit_log.ts";
import type { ConnectionHost } from "./connection.ts";

/** Errors that are the request's fault (or the store's refusal): answered, not logged. */
function isRequestError(error: unknown): error is CommandError | StorageError {
  return error instanceof CommandError || error instanceof StorageError;
}

/** The reply to a request that failed with `error` (a bad request's message, or an internal error). */
export function errorReply(error: unknown): Reply {
  return {
    type: "error",
    message: describeError(error),
    code: error instanceof CommandError ? error.code : undefined,
  };
}

function describeError(error: unknown): string {
  if (isRequestError(error)) return error.message;
  return `Internal error: ${error instanceof Error ? error.message : String(error)}`;
}

/**
 * The reply to a command that threw (or rejected) `error`. A bad request is answered, and
 * logged only when it asks to be (once a minute per kind); anything else is an internal error,
 * logged with its stack once a minute (a peer that can trigger one must not flood the log).
 */
export function failureReply(
  limits: LimitLog,
  command: string,
  peer: string,
  error: unknown,
): Reply {
  if (error instanceof CommandError && error.report !== undefined) {
    limits.note(
      error.report,
      "warning",
      "refused {command} from {peer}: {error}",
      { command, peer, error: error.message },
    );
  } else if (!isRequestError(error)) {
    limits.note(
      "internal_error",
      "error",
      "command {command} from {peer} failed: {error}",
      {
        command,
        peer,
        error: error instanceof Error ? (error.stack ?? error.message) : String(error),
      },
    );
  }
  return errorReply(error);
}

/**
 * The refusal of a request whose command is unknown (`command` undefined) or that has a wrong
 * number of arguments; undefined when neither.
 */
export function malformedRefusal(
  command: (CommandSpec & { name: string }) | undefined,
  request: Request,
  resp: boolean,
): Reply | undefined {
  if (command === undefined) {
    return {
      type: "error",
      message: resp
        ? unknownCommandMessage(request.name, request.args)
        : request.name.length === 0
        ? "Empty command line"
        : `Unknown command: ${describeCommandName(request.name)}`,
    };
  }
  const argCount = request.args.length;
  if (argCount < command.minArgs || argCount > command.maxArgs) {
    return {
      type: "error",
      message: resp
        ? wrongArityMessage(command.name)
        : `wrong number of arguments for '${command.name}'`,
    };
  }
  return undefined;
}

/**
 * Answers a request the parser refused (too large, or malformed) and logs a bound it broke (once
 * a minute per bound); true when the framing is lost and the connection must close once its
 * replies are written.
 */
export function answerParseError(
  request: RequestError,
  writer: ReplyWriter,
  host: Pick<ConnectionHost, "limits" | "log" | "node">,
  peer: string,
): boolean {
  writer.error(request.message);
  if (request.limit !== undefined) {
    host.limits.hit(
      request.limit,
      host.node.config[request.limit],
      "connection {peer} sent a request that is too large; it was refused and skipped",
      { peer },
    );
  }
  if (request.fatal) {
    host.log.info("closing connection {peer}: {error}", { peer, error: request.message });
  }
  return request.fatal;
}
