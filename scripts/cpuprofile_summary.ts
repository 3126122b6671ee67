/**
 * `deno run --allow-read scripts/cpuprofile_summary.ts <file.cpuprofile> [top]`: the self time of
 * a V8 CPU profile (written by `deno run --cpu-prof`, e.g. through `deno task bench server
 * --cpu-prof DIR`) by function and by file, largest first, as a share of all samples. `(idle)` is
 * the main thread waiting in the event loop; `op_*` rows are Deno's native operations (their
 * system calls included).
 *
 * @module
 */

interface ProfileNode {
  id: number;
  callFrame: { functionName: string; url: string; lineNumber: number };
}

interface Profile {
  nodes: ProfileNode[];
  startTime: number;
  endTime: number;
  samples: number[];
  timeDeltas: number[];
}

/** Self time in microseconds by function (`name file:line`) and by file. */
export function selfTimes(profile: Profile): {
  byFunction: Map<string, number>;
  byFile: Map<string, number>;
  totalUs: number;
} {
  const selfUs = new Map<number, number>();
  for (let i = 0; i < profile.samples.length; i++) {
    // A sample's time is the delta to the next one.
    const deltaUs = profile.timeDeltas[i + 1] ?? 0;
    selfUs.set(profile.samples[i], (selfUs.get(profile.samples[i]) ?? 0) + deltaUs);
  }
  const byFunction = new Map<string, number>();
  const byFile = new Map<string, number>();
  let totalUs = 0;
  for (const node of profile.nodes) {
    const us = selfUs.get(node.id) ?? 0;
    if (us === 0) continue;
    totalUs += us;
    const { functionName, url, lineNumber } = node.callFrame;
    const file = url.replace(/^file:\/\/.*?\/(src|scripts|tests)\//, "$1/");
    const name = functionName === "" ? "(anonymous)" : functionName;
    const key = `${name} ${file}:${lineNumber + 1}`;
    byFunction.set(key, (byFunction.get(key) ?? 0) + us);
    const fileKey = file === "" ? name : file;
    byFile.set(fileKey, (byFile.get(fileKey) ?? 0) + us);
  }
  return { byFunction, byFile, totalUs };
}

function table(times: Map<string, number>, totalUs: number, top: number): string {
  return [...times].sort((a, b) => b[1] - a[1]).slice(0, top).map(([key, us]) =>
    `${(us / totalUs * 100).toFixed(1).padStart(5)}%  ${
      (us / 1000).toFixed(0).padStart(7)
    } ms  ${key}`
  ).join("\n");
}

if (import.meta.main) {
  const [path, topText] = Deno.args;
  if (path === undefined) {
    console.error("usage: cpuprofile_summary.ts <file.cpuprofile> [top]");
    Deno.exit(2);
  }
  const top = Number(topText ?? 40);
  const profile: Profile = JSON.parse(await Deno.readTextFile(path));
  const { byFunction, byFile, totalUs } = selfTimes(profile);
  console.log(
    `${path}: ${(totalUs / 1e6).toFixed(2)} s sampled over ` +
      `${((profile.endTime - profile.startTime) / 1e6).toFixed(2)} s`,
  );
  console.log(`--- self time by function\n${table(byFunction, totalUs, top)}`);
  console.log(`--- self time by file\n${table(byFile, totalUs, 25)}`);
}
