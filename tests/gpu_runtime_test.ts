import { assert, assertEquals } from "./helpers.ts";
import { getGpu } from "../lib/gpu/context.ts";
import { add, addInto, axpby, mul, scale } from "../lib/ops/elementwise.ts";
import { InvalidArgumentError, ReleasedTensorError, ShapeError } from "../lib/errors.ts";

Deno.test("elementwise ops match direct computation and steady state allocates nothing", async () => {
  const gpu = await getGpu();
  const n = 70001; // not a multiple of the workgroup size
  const a = Float32Array.from({ length: n }, (_, i) => Math.sin(i));
  const b = Float32Array.from({ length: n }, (_, i) => Math.cos(i * 0.5));
  const ta = gpu.upload(a);
  const tb = gpu.upload(b);
  const run = async () => {
    const s = add(ta, tb);
    const m = mul(s, tb, 2);
    const r = await m.read();
    s.release();
    m.release();
    return r;
  };
  const r = await run();
  for (let i = 0; i < n; i += 997) {
    const want = Math.fround(2 * Math.fround(Math.fround(a[i] + b[i]) * b[i]));
    assert(Math.abs(r[i] - want) <= 1e-6 * (1 + Math.abs(want)), `i=${i}: ${r[i]} vs ${want}`);
  }
  const before = { ...gpu.counters };
  await run();
  assertEquals(gpu.counters.buffersCreated, before.buffersCreated);
  assertEquals(gpu.counters.pipelinesCreated, before.pipelinesCreated);
  assertEquals(gpu.counters.bindGroupsCreated, before.bindGroupsCreated);
  assertEquals(gpu.counters.submits, before.submits + 1);
  ta.release();
  tb.release();
});

Deno.test("upload after release in the same recording keeps earlier results intact", async () => {
  const gpu = await getGpu();
  const x = gpu.upload([1, 2, 3, 4]);
  const y = axpby(x, x, 3, 0); // 3x, recorded
  x.release();
  const z = gpu.upload([10, 20, 30, 40]); // must not reuse x's buffer before the recording runs
  assertEquals(Array.from(await y.read()), [3, 6, 9, 12]);
  assertEquals(Array.from(await z.read()), [10, 20, 30, 40]);
  y.release();
  z.release();
});

Deno.test("bad input raises typed errors", async () => {
  const gpu = await getGpu();
  const a = gpu.upload([1, 2, 3]);
  const b = gpu.upload([1, 2]);
  let err: unknown;
  try {
    add(a, b);
  } catch (e) {
    err = e;
  }
  assert(err instanceof ShapeError, "shape mismatch must raise ShapeError");
  a.release();
  err = undefined;
  try {
    add(a, a);
  } catch (e) {
    err = e;
  }
  assert(err instanceof ReleasedTensorError, "use after release must raise");
  b.release();
});

Deno.test("in-place accumulation and scale alias safely", async () => {
  const gpu = await getGpu();
  const acc = gpu.upload([1, 2, 3]);
  const x = gpu.upload([10, 20, 30]);
  addInto(acc, x, 0.5);
  scale(acc, 2, acc);
  assertEquals(Array.from(await acc.read()), [12, 24, 36]);
  acc.release();
  x.release();
});

Deno.test("startRecording / replay: a recorded dispatch re-runs on the buffers' current contents", async () => {
  const gpu = await getGpu();
  const x = gpu.upload([1, 2, 3]);
  gpu.startRecording();
  gpu.recordingLabel = "double";
  const y = scale(x, 2);
  const recs = gpu.stopRecording();
  gpu.recordingLabel = "";
  assertEquals(recs.length, 1);
  assertEquals([recs[0].name, recs[0].entry, recs[0].label], [
    "elementwise.wgsl",
    "scale",
    "double",
  ]);
  assertEquals([...await y.read()], [2, 4, 6]);
  gpu.write(x, [5, 6, 7]);
  gpu.replay(recs[0], 3);
  assertEquals([...await y.read()], [10, 12, 14]);
  // nothing is kept once recording stopped
  scale(x, 3).release();
  assertEquals(gpu.stopRecording().length, 0);
  x.release();
  y.release();
});

Deno.test("a buffer bound both read-only and read-write in one dispatch raises (WebGPU would drop the whole submit)", async () => {
  const gpu = await getGpu();
  const spec = {
    name: "test_read_rw",
    source: `@group(0) @binding(0) var<uniform> p: vec4<u32>;
@group(0) @binding(1) var<storage, read> a: array<f32>;
@group(0) @binding(2) var<storage, read_write> b: array<f32>;
@compute @workgroup_size(1)
fn main() {
  b[0] = a[0] + f32(p.x);
}`,
    entry: "main",
    bindings: ["read", "rw"] as const,
  };
  const t = gpu.upload([1, 2, 3, 4]);
  const u = gpu.upload([0, 0, 0, 0]);
  let err: unknown;
  try {
    gpu.dispatch(spec, [5, 0, 0, 0], [t, t], [1]);
  } catch (e) {
    err = e;
  }
  assert(err instanceof InvalidArgumentError, "read + read-write of one buffer must raise");
  gpu.dispatch(spec, [5, 0, 0, 0], [t, u], [1]); // distinct buffers run
  assertEquals(Array.from(await u.read()), [6, 0, 0, 0]);
  t.release();
  u.release();
});
