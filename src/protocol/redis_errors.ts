/**
 * Redis 7's texts for the errors every command shares, so a RESP client reads from kvstore the
 * words it reads from Redis (clients match on them: redis-py maps "wrong number of arguments" and
 * "unknown command" to its own exception types). The text protocol keeps the original system's
 * words (`Unknown command: FOO`).
 *
 * @module
 */

const decoder = new TextDecoder();

/** Redis prints at most this many characters of a name or of the arguments in an error. */
const SHOWN_CHARS = 128;

/** `%s` of a C string: the text up to its first NUL byte. */
function cString(bytes: Uint8Array): string {
  const nul = bytes.indexOf(0);
  return decoder.decode(nul === -1 ? bytes : bytes.subarray(0, nul));
}

/**
 * Redis's reply to a command it does not know:
 * `unknown command 'FOO', with args beginning with: 'a' 'b' ` (at most 128 characters of
 * arguments, each quoted and followed by a space).
 *
 * @example
 * ```ts
 * import { unknownCommandMessage } from "./redis_errors.ts";
 * const bytes = (text: string) => new TextEncoder().encode(text);
 * console.log(unknownCommandMessage(bytes("FOO"), [bytes("a")]));
 * // unknown command 'FOO', with args beginning with: 'a'
 * ```
 */
export function unknownCommandMessage(name: Uint8Array, args: readonly Uint8Array[]): string {
  let shown = "";
  for (let i = 0; i < args.length && shown.length < SHOWN_CHARS; i++) {
    shown += `'${cString(args[i]).slice(0, SHOWN_CHARS - shown.length)}' `;
  }
  return `unknown command '${
    cString(name).slice(0, SHOWN_CHARS)
  }', with args beginning with: ${shown}`;
}

/**
 * Redis's reply to a subcommand its container does not know:
 * `unknown subcommand 'FOO'. Try CLIENT HELP.`
 */
export function unknownSubcommandMessage(container: string, sub: Uint8Array): string {
  return `unknown subcommand '${
    cString(sub).slice(0, SHOWN_CHARS)
  }'. Try ${container.toUpperCase()} HELP.`;
}

/**
 * Redis's reply to a wrong number of arguments; `fullName` is the command's name, or
 * `container|sub` for a subcommand, in any case (Redis prints it in lower case).
 *
 * @example
 * ```ts
 * import { wrongArityMessage } from "./redis_errors.ts";
 * console.log(wrongArityMessage("CLIENT|ID")); // wrong number of arguments for 'client|id' command
 * ```
 */
export function wrongArityMessage(fullName: string): string {
  return `wrong number of arguments for '${fullName.toLowerCase()}' command`;
}

/** Redis's reply to an argument that must be an integer. */
export const NOT_AN_INTEGER = "value is not an integer or out of range";

/** Redis's reply to options it cannot parse. */
export const SYNTAX_ERROR = "syntax error";
