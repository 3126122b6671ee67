/**
 * The README and the manual in docs/ stay true: the configuration table matches src/config.ts,
 * every relative link (and its #anchor) leads somewhere, every TypeScript example type-checks, and
 * the README stays a front door that links every document of the manual.
 */
import assert from "node:assert/strict";
import { expectedSettingsDoc, SETTINGS_DOC } from "../scripts/settings_table.ts";

const ROOT = new URL("../", import.meta.url);
/** The README is the front door; the manual grows in docs/, not here. */
const README_MAX_LINES = 200;

async function documents(): Promise<string[]> {
  const paths = ["README.md"];
  for await (const entry of Deno.readDir(new URL("docs/", ROOT))) {
    if (entry.isFile && entry.name.endsWith(".md")) paths.push(`docs/${entry.name}`);
  }
  return paths.sort();
}

function read(path: string): Promise<string> {
  return Deno.readTextFile(new URL(path, ROOT));
}

/** The document's text outside fenced code blocks, line by line. */
function proseLines(markdown: string): string[] {
  let fenced = false;
  const lines: string[] = [];
  for (const line of markdown.split("\n")) {
    if (/^\s*(```|~~~)/.test(line)) fenced = !fenced;
    else if (!fenced) lines.push(line);
  }
  return lines;
}

/** GitHub's anchor for a heading: lower case, punctuation dropped, spaces to hyphens. */
function anchorOf(heading: string): string {
  return heading.trim().toLowerCase().replace(/[^\p{L}\p{N}\s_-]/gu, "").replace(/\s/g, "-");
}

function anchorsOf(markdown: string): Set<string> {
  const anchors = new Set<string>();
  for (const line of proseLines(markdown)) {
    const heading = /^#{1,6}\s+(.*)$/.exec(line);
    if (heading) anchors.add(anchorOf(heading[1]));
  }
  return anchors;
}

/** Relative link targets ([text](target)) in the prose of a document. */
function relativeLinks(markdown: string): string[] {
  const links: string[] = [];
  for (const line of proseLines(markdown)) {
    for (const match of line.matchAll(/\]\(([^)\s]+)\)/g)) {
      if (!/^[a-z]+:/i.test(match[1])) links.push(match[1]);
    }
  }
  return links;
}

Deno.test("docs/configuration.md's table matches src/config.ts", async () => {
  const markdown = await read(SETTINGS_DOC);
  assert.ok(
    markdown === await expectedSettingsDoc(markdown),
    `${SETTINGS_DOC}'s settings table is stale: run deno run -A scripts/settings_table.ts`,
  );
});

Deno.test("every relative link in the README and docs/ leads to a file and a heading", async () => {
  const broken: string[] = [];
  for (const path of await documents()) {
    const base = new URL(path, ROOT);
    for (const link of relativeLinks(await read(path))) {
      const [file, anchor] = link.split("#");
      const target = file === "" ? base : new URL(file, base);
      let text: string;
      try {
        text = await Deno.readTextFile(target);
      } catch {
        broken.push(`${path}: ${link} (no such file)`);
        continue;
      }
      if (anchor !== undefined && target.pathname.endsWith(".md") && !anchorsOf(text).has(anchor)) {
        broken.push(`${path}: ${link} (no such heading)`);
      }
    }
  }
  assert.deepEqual(broken, []);
});

Deno.test("the TypeScript examples in the README and docs/ type-check", async () => {
  const output = await new Deno.Command(Deno.execPath(), {
    args: ["check", "--doc-only", ...await documents()],
    cwd: ROOT,
    stdout: "piped",
    stderr: "piped",
  }).output();
  assert.ok(output.success, new TextDecoder().decode(output.stderr));
});

Deno.test("the README is a front door, and both indexes link every document", async () => {
  const readme = await read("README.md");
  const lineCount = readme.trimEnd().split("\n").length;
  assert.ok(
    lineCount <= README_MAX_LINES,
    `README.md has ${lineCount} lines (at most ${README_MAX_LINES}): manual text goes into docs/`,
  );
  const manual = (await documents()).filter((path) => path.startsWith("docs/"));
  for (const index of ["README.md", "docs/README.md"]) {
    const base = new URL(index, ROOT);
    const linked = new Set(
      relativeLinks(await read(index)).map((link) => new URL(link.split("#")[0], base).href),
    );
    const unlinked = manual.filter((path) =>
      path !== index && !linked.has(new URL(path, ROOT).href)
    );
    assert.deepEqual(unlinked, [], `documents in docs/ that ${index} does not link`);
  }
});
