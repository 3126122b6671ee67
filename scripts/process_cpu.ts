/**
 * CPU time of a process from `/proc/<pid>/stat` (user + system, every thread, in seconds), for
 * benchmarks that report CPU per operation next to throughput: on a 2-core machine that hosts
 * servers and load generators together, throughput alone mixes a process's own cost with the
 * CPU the others took from it.
 *
 * @module
 */

/** Clock ticks per second of `/proc` times (`getconf CLK_TCK`; 100 on Linux x86_64). */
const TICKS_PER_SECOND = 100;

/** User + system CPU seconds `pid` used so far, or NaN when it cannot be read (not Linux). */
export function cpuSecondsOf(pid: number | undefined): number {
  if (pid === undefined) return NaN;
  // Deno grants `/proc/<pid>` reads only with --allow-all; `cat` needs just --allow-run.
  let stat: string;
  try {
    const output = new Deno.Command("cat", { args: [`/proc/${pid}/stat`], stderr: "null" })
      .outputSync();
    if (!output.success) return NaN;
    stat = new TextDecoder().decode(output.stdout);
  } catch {
    return NaN;
  }
  // The command name (field 2) is in parentheses and may hold spaces: count fields after it.
  const fields = stat.slice(stat.lastIndexOf(")") + 2).split(" ");
  // Fields 14 (utime) and 15 (stime) of the whole line are 11 and 12 after the name.
  return (Number(fields[11]) + Number(fields[12])) / TICKS_PER_SECOND;
}

/** CPU used by `pids` between two calls: `const done = cpuMeter(pids); ...; done()`. */
export function cpuMeter(pids: readonly (number | undefined)[]): () => number[] {
  const before = pids.map(cpuSecondsOf);
  return () => pids.map((pid, i) => cpuSecondsOf(pid) - before[i]);
}
