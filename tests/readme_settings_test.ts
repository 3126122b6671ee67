import assert from "node:assert/strict";
import { expectedReadme } from "../scripts/readme_settings.ts";

Deno.test("the README's configuration table matches src/config.ts", async () => {
  const readme = await Deno.readTextFile(new URL("../README.md", import.meta.url));
  assert.ok(
    readme === await expectedReadme(readme),
    "README.md's settings table is stale: run deno run -A scripts/readme_settings.ts",
  );
});
