/**
 * `INFO [section]`: Redis-style `key:value` lines under `# Section` headers, so operators and
 * tools that read Redis's INFO read ours. Sections: `server`, `clients`, `stats`, `storage`
 * (from `store.stats()`), `replication` (the role, plus whatever replication registers), and any
 * section an extension adds. `INFO` alone and `INFO all` give every section.
 *
 * @module
 */
import { VERSION } from "../version.ts";
import type { InfoFields, ServerNode } from "./hooks.ts";

/** The built-in sections, in the order `INFO` prints them. */
function builtInSections(node: ServerNode): Map<string, () => InfoFields> {
  return new Map<string, () => InfoFields>([
    ["server", () => [
      ["kvstore_version", VERSION],
      ["deno_version", Deno.version.deno],
      ["os", `${Deno.build.os} ${Deno.build.arch}`],
      ["process_id", Deno.pid],
      ["run_id", node.runId],
      ["tcp_host", node.host],
      ["tcp_port", node.port],
      ["uptime_in_seconds", Math.floor((Date.now() - node.startedAtMs) / 1000)],
      ["data_dir", node.config.DATA_DIR],
      ["fsync", node.config.FSYNC],
    ]],
    ["clients", () => [
      ["connected_clients", node.stats.connectedClients],
      ["max_connections", node.config.MAX_CONNECTIONS],
      ["rejected_connections", node.stats.rejectedConnections],
      ["evicted_unauthenticated_connections", node.stats.evictedUnauthenticated],
      ["client_memory_bytes", node.stats.clientMemoryBytes],
      ["max_client_memory_bytes", node.config.MAX_CLIENT_MEMORY_BYTES],
      ["evicted_for_memory_connections", node.stats.evictedForMemory],
      ["closed_for_output_connections", node.stats.closedForOutput],
    ]],
    ["stats", () => [
      ["total_connections_received", node.stats.totalConnections],
      ["total_commands_processed", node.stats.totalCommands],
    ]],
    ["storage", () => storageFields(node)],
    ["replication", () => [["role", node.replica ? "replica" : "master"]]],
  ]);
}

function storageFields(node: ServerNode): InfoFields {
  const fields: InfoFields = [];
  for (const [name, value] of Object.entries(node.store.stats())) {
    if (typeof value === "number" || typeof value === "string" || typeof value === "boolean") {
      fields.push([snakeCase(name), value]);
    }
  }
  return fields;
}

function snakeCase(name: string): string {
  return name.replace(/[A-Z]/g, (letter) => `_${letter.toLowerCase()}`);
}

function title(name: string): string {
  return name[0].toUpperCase() + name.slice(1);
}

/**
 * Builds the INFO text. `extra` sections (from extensions) replace built-in ones of the same
 * name, except `replication`, whose fields follow the built-in role line. An unknown section
 * gives an empty text, as in Redis.
 */
export function formatInfo(
  node: ServerNode,
  section: string,
  extra: ReadonlyMap<string, () => InfoFields>,
  lineEnd: string,
): string {
  const sections = builtInSections(node);
  for (const [name, fields] of extra) {
    const builtIn = sections.get(name);
    if (name === "replication" && builtIn !== undefined) {
      sections.set(name, () => [...builtIn(), ...fields()]);
    } else {
      sections.set(name, fields);
    }
  }
  const wanted = section.toLowerCase();
  const names = wanted === "all" || wanted === "default" || wanted === "everything"
    ? [...sections.keys()]
    : sections.has(wanted)
    ? [wanted]
    : [];
  const lines: string[] = [];
  for (const name of names) {
    const fields = sections.get(name);
    if (fields === undefined) continue;
    if (lines.length > 0) lines.push("");
    lines.push(`# ${title(name)}`);
    for (const [key, value] of fields()) {
      lines.push(`${key}:${typeof value === "boolean" ? (value ? 1 : 0) : value}`);
    }
  }
  return lines.length === 0 ? "" : lines.join(lineEnd) + lineEnd;
}
