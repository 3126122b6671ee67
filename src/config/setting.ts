/**
 * What one row of the settings table says: its kind, default, bounds, group, flag aliases and
 * description ({@link SettingSpec}), and the size units the rows are written in. The rows live in
 * one file per area (`server.ts`, `storage.ts`, `replication.ts`, `security.ts`,
 * `operations.ts`); `src/config.ts` assembles them.
 *
 * @module
 */

/** A `host:port` pair, e.g. a replica address. */
export interface HostPort {
  host: string;
  port: number;
  /**
   * A replica's key filter (`host:port[p1,p2]` in `--replicas`): it receives only keys that start
   * with one of these; absent for a replica that receives everything.
   */
  keyPrefixes?: string[];
}

/** What a setting's value may be: each kind's type. */
export type SettingValue = string | number | boolean | HostPort[];

/** How a setting's text is read: `int`, `float`, `bool`, `string`, `enum` or `addresses`. */
export type SettingKind = "int" | "float" | "bool" | "string" | "enum" | "addresses";

/** One row of the settings table. */
export interface SettingSpec {
  kind: SettingKind;
  default: SettingValue;
  group: "server" | "storage" | "replication" | "security" | "operations";
  description: string;
  /** A secret (a token): never shown by `CONFIG GET` or in logs. */
  secret?: boolean;
  /** Inclusive numeric bounds for int/float settings. */
  min?: number;
  max?: number;
  /** Allowed values for enum settings. */
  choices?: readonly string[];
  /** Extra flag names accepted for this setting (the spec's spellings). */
  aliases?: readonly string[];
  /** Other spellings of enum values people type, mapped to the value (`warn` → `warning`). */
  choiceAliases?: Readonly<Record<string, string>>;
  /** What `--help` shows after the flag when the kind alone does not say it (`<file>`). */
  placeholder?: string;
}

/** 1024 bytes. */
export const KIB = 1024;
/** 1024 KiB. */
export const MIB = 1024 * KIB;
/** 1024 MiB. */
export const GIB = 1024 * MIB;
