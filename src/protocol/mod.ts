/**
 * Wire formats of kvstore: the text line protocol of the original system, RESP2 and RESP3 (and
 * Redis's inline commands), parsed incrementally from bytes and encoded into reusable buffers. Pure code: no I/O, no npm imports,
 * so the server, the replication stream and the client library all share it.
 *
 * @module
 */
export {
  CHALLENGE_OFF_MESSAGE,
  challengeProof,
  isChallengeOff,
  isHex64,
  newNonce,
  NONCE_BYTES,
  proofMatches,
  type ProofRole,
} from "./challenge.ts";
export { CommandTable, describeCommandName } from "./command_table.ts";
export { escapedLength, escapeInto, escapeValue, unescapeValue } from "./escape.ts";
export { OutputBuffer } from "./output_buffer.ts";
export {
  NOT_AN_INTEGER,
  SYNTAX_ERROR,
  unknownCommandMessage,
  unknownSubcommandMessage,
  wrongArityMessage,
} from "./redis_errors.ts";
export { formatDouble, type Reply, ReplyWriter } from "./reply_writer.ts";
export {
  type Framing,
  type ParseResult,
  parseTextLine,
  type Request,
  type RequestError,
  type RequestLimit,
  RequestParser,
  type RequestParserOptions,
  scanFirstArguments,
  splitInlineArgs,
} from "./request_parser.ts";
export {
  type CommandArgument,
  INCOMPLETE,
  RespCommandWriter,
  RespErrorReply,
  RespProtocolError,
  RespReplyParser,
  type RespReplyParserOptions,
  type RespValue,
} from "./resp.ts";
