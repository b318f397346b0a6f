/**
 * `deno task bench`: prints the adapter, runs the benchmark sections (scripts/bench/*.ts) and
 * writes bench/results/<iso-date>-<adapter-kind>.json. Flags: `--quick` (fewer repeats),
 * `--only a,b` (run only the named sections), `--sweep [presets]` (matmul preset sweep).
 * @module
 */
import { parseArgs } from "node:util";
import { helpIfAsked } from "./cli.ts";
import { getGpu } from "../lib/gpu/context.ts";
import type { BenchSection } from "./bench/common.ts";
import { matmulSection } from "./bench/matmul.ts";
import { normsSection } from "./bench/norms.ts";
import { loadsSection } from "./bench/loads.ts";
import { modelSection } from "./bench/model.ts";
import { prunedSection } from "./bench/pruned.ts";
import { benchOps } from "./bench/ops.ts";
import { trainSection } from "./bench/train.ts";

/** Every section, in run order. Add new ones (model forward/backward, training) here. */
const opsSection: BenchSection = {
  name: "ops",
  run: (ctx) => benchOps(ctx.gpu, { quick: ctx.quick }),
};

const SECTIONS: BenchSection[] = [
  matmulSection,
  normsSection,
  opsSection,
  loadsSection,
  modelSection,
  prunedSection,
  trainSection,
];

helpIfAsked(
  "usage: deno task bench [--quick] [--only matmul,norms,model,pruned,train,…] [--sweep [presets]] " +
    "[--out DIR]",
);
const { values } = parseArgs({
  args: Deno.args,
  options: {
    quick: { type: "boolean", default: false },
    only: { type: "string" },
    sweep: { type: "string" },
    out: { type: "string", default: "bench/results" },
  },
});

const only = values.only?.split(",").map((s) => s.trim()).filter((s) => s !== "");
const unknown = only?.filter((n) => !SECTIONS.some((s) => s.name === n)) ?? [];
if (unknown.length > 0) {
  console.error(
    `bench: unknown section(s) ${unknown.join(", ")}; known: ${
      SECTIONS.map((s) => s.name).join(", ")
    }`,
  );
  Deno.exit(2);
}

const gpu = await getGpu();
console.log(`adapter: ${gpu.adapter.summary}`);
console.log(`cpu threads: ${navigator.hardwareConcurrency}, deno ${Deno.version.deno}`);
const results: Record<string, unknown> = {
  date: new Date().toISOString(),
  adapter: gpu.adapter,
  deno: Deno.version.deno,
  cpuThreads: navigator.hardwareConcurrency,
  quick: values.quick,
  sections: {},
};
const ctx = { gpu, quick: values.quick ?? false, flags: { sweep: values.sweep } };
for (const section of SECTIONS) {
  if (only && !only.includes(section.name)) continue;
  (results.sections as Record<string, unknown>)[section.name] = await section.run(ctx);
}

const dir = values.out ?? "bench/results";
await Deno.mkdir(dir, { recursive: true });
const stamp = (results.date as string).replace(/[:.]/g, "-");
const file = `${dir}/${stamp}-${gpu.adapter.kind}.json`;
await Deno.writeTextFile(file, JSON.stringify(results, null, 2) + "\n");
console.log(`\nwrote ${file}`);
