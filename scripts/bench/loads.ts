/**
 * Memory-load cost section of `deno task bench` (`--only loads`): how much one storage or
 * workgroup-memory load costs per invocation on this adapter, next to the same loop without
 * loads. On Mesa llvmpipe 22.x every such load runs lane by lane, which is what bounds the
 * matmul there (bench/README.md); on a GPU the numbers are tiny and this is a sanity check.
 * Each variant runs `K` iterations of 64 fused multiply-adds per invocation and one load
 * (scalar or vec4; from storage or workgroup memory; uniform or per-lane address).
 * @module
 */
import type { KernelSpec } from "../../lib/gpu/context.ts";
import { type BenchSection, median, printTable, timeGpu } from "./common.ts";

const HEAD = `override WG: u32 = 64u;
struct Params { K: u32 }
@group(0) @binding(0) var<uniform> p: Params;
@group(0) @binding(1) var<storage, read> a: array<vec4f>;
@group(0) @binding(2) var<storage, read_write> c: array<vec4f>;
var<workgroup> sh: array<vec4f, 1024>;
@compute @workgroup_size(WG)
fn main(@builtin(workgroup_id) wid: vec3u, @builtin(local_invocation_id) lid: vec3u) {
  let g = wid.x * WG + lid.x;
  for (var i = lid.x; i < 1024u; i += WG) { sh[i] = a[i]; }
  workgroupBarrier();
  var x0 = vec4f(f32(g)); var x1 = x0 + 1.0; var x2 = x0 + 2.0; var x3 = x0 + 3.0;
  for (var k = 0u; k < p.K; k++) {
`;
const TAIL =
  `    x0 = fma(x0, v, x1); x1 = fma(x1, v, x2); x2 = fma(x2, v, x3); x3 = fma(x3, v, x0);
    x0 = fma(x0, v, x1); x1 = fma(x1, v, x2); x2 = fma(x2, v, x3); x3 = fma(x3, v, x0);
    x0 = fma(x0, v, x1); x1 = fma(x1, v, x2); x2 = fma(x2, v, x3); x3 = fma(x3, v, x0);
    x0 = fma(x0, v, x1); x1 = fma(x1, v, x2); x2 = fma(x2, v, x3); x3 = fma(x3, v, x0);
  }
  c[g] = x0 + x1 + x2 + x3;
}
`;
const VARIANTS: Record<string, string> = {
  "no load": "    let v = vec4f(f32(k) * 1e-9);\n",
  "storage f32, uniform address": "    let v = vec4f(a[k % 1024u].x);\n",
  "storage f32, per-lane address": "    let v = vec4f(a[(k + g) % 1024u].x);\n",
  "storage vec4, per-lane address": "    let v = a[(k + g) % 1024u];\n",
  "workgroup f32, per-lane address": "    let v = vec4f(sh[(k + g) % 1024u].x);\n",
  "workgroup vec4, per-lane address": "    let v = sh[(k + g) % 1024u];\n",
};

/** The load-cost section. */
export const loadsSection: BenchSection = {
  name: "loads",
  async run(ctx) {
    const { gpu, quick } = ctx;
    const K = 512;
    const invocations = 64 * 256;
    const a = gpu.upload(new Float32Array(4096).fill(0.5), [1024, 4]);
    const c = gpu.empty([invocations, 4]);
    const rows = [["loop body (64 FMAs +)", "ms", "ns per invocation·iteration"]];
    const results = [];
    for (const [name, body] of Object.entries(VARIANTS)) {
      const spec: KernelSpec = {
        name: `loads:${name}`,
        source: HEAD + body + TAIL,
        entry: "main",
        bindings: ["read", "rw"],
        constants: { WG: 64 },
      };
      const ms = median(
        await timeGpu(
          gpu,
          () => gpu.dispatch(spec, [K], [a, c], [invocations / 64]),
          quick ? 3 : 5,
        ),
      );
      const ns = (ms * 1e6) / (invocations * K);
      results.push({ name, ms, nsPerInvocationIteration: ns });
      rows.push([name, ms.toFixed(1), ns.toFixed(2)]);
    }
    console.log(
      `\nload cost (${invocations} invocations × ${K} iterations; wall time over all CPU threads):`,
    );
    printTable(rows);
    a.release();
    c.release();
    return { invocations, iterations: K, variants: results };
  },
};
