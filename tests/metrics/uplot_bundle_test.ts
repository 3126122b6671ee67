/**
 * The status page's uPlot is embedded as a generated module (`scripts/embed_uplot.ts`); it must
 * equal the npm package pinned in deno.json, byte for byte, so an upgrade cannot half happen.
 */
import assert from "node:assert/strict";
import uplotJs from "uplot/dist/uPlot.iife.min.js" with { type: "text" };
import uplotCss from "uplot/dist/uPlot.min.css" with { type: "text" };
import uplotPackage from "uplot/package.json" with { type: "json" };
import { UPLOT_CSS, UPLOT_JS, UPLOT_VERSION } from "../../src/metrics/uplot_bundle.ts";

Deno.test("uplot bundle: the embedded uPlot is the pinned npm package's (run scripts/embed_uplot.ts)", async () => {
  assert.equal(UPLOT_VERSION, uplotPackage.version);
  assert.ok(UPLOT_JS === uplotJs, "UPLOT_JS differs from the package's uPlot.iife.min.js");
  assert.ok(UPLOT_CSS === uplotCss, "UPLOT_CSS differs from the package's uPlot.min.css");
  const config = JSON.parse(await Deno.readTextFile(new URL("../../deno.json", import.meta.url)));
  assert.equal(config.imports.uplot, `npm:uplot@${UPLOT_VERSION}`);
});
