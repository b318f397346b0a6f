/**
 * Tests of the latency measurements (lib/prune/latency.ts): the on-disk cache of the latency
 * table (a second call returns the stored table, not a new measurement), the table's shape, and
 * the alternating whole-model timer's contract. No wall-clock values are asserted.
 */
import { assert, assertEquals, assertRejects } from "./helpers.ts";
import { getGpu } from "../lib/gpu/context.ts";
import { InvalidArgumentError } from "../lib/errors.ts";
import { makeConfig } from "../lib/model/config.ts";
import { createRandomModel } from "../lib/model/model.ts";
import { measureLatencyTable, measureModelLatencies } from "../lib/prune/latency.ts";
import { setMatmulPath } from "../lib/ops/matmul.ts";
import { TEXTURE_NARROW_MIN_M } from "../lib/ops/matmul_presets.ts";

const shape = {
  arch: "bert",
  head: "classification",
  vocabSize: 50,
  hiddenSize: 16,
  numLayers: 2,
  numHeads: 2,
  intermediateSize: 12,
  maxPositions: 32,
} as const;
const config = makeConfig(shape);

Deno.test("latency table: one entry per head count and FFN width; a second call reads the cache file", async () => {
  const gpu = await getGpu();
  const model = await createRandomModel(config, 3, gpu);
  const dir = await Deno.makeTempDir();
  try {
    const o = { batch: 2, seqLen: 8, runs: 2, warmup: 0, step: 4, cacheDir: dir };
    const first = await measureLatencyTable(model, o);
    assertEquals(first.mha.length, config.numHeads + 1);
    assertEquals(first.ffn.length, config.intermediateSize + 1);
    assertEquals(first.ffnTimed, [0, 1, 4, 8, 12]);
    for (const v of [...first.mha, ...first.ffn]) assert(Number.isFinite(v) && v >= 0, `${v}`);
    assert(first.cacheFile, "the table was written to the cache directory");
    const files = [...Deno.readDirSync(dir)].map((e) => e.name);
    assertEquals(files.length, 1);
    // a re-measurement would not reproduce every timing to the last bit: equality proves the
    // second call read the stored table
    const second = await measureLatencyTable(model, o);
    assertEquals([...second.mha], [...first.mha]);
    assertEquals([...second.ffn], [...first.ffn]);
    // another shape is another cache entry
    await measureLatencyTable(model, { ...o, seqLen: 4 });
    assertEquals([...Deno.readDirSync(dir)].length, 2);
  } finally {
    model.release();
    await Deno.remove(dir, { recursive: true });
  }
});

Deno.test("latency table on the texture path: widths timed at 0, 1, 16, 32, each multiple of the step and F; under 1024 rows a step past 32 where padding applies, linear elsewhere", async () => {
  const gpu = await getGpu();
  const model = await createRandomModel(makeConfig({ ...shape, intermediateSize: 130 }), 3, gpu);
  setMatmulPath("texture");
  try {
    // 16 × 32 rows: the narrow FFN products run SIMD batches of 64 columns (a step); 32 × 32 =
    // TEXTURE_NARROW_MIN_M rows: swapped tiles, whose cost grows in small steps (interpolated)
    for (const batch of [16, 32]) {
      const t = await measureLatencyTable(model, {
        batch,
        seqLen: 32,
        runs: 1,
        warmup: 0,
        step: 64,
        cacheDir: null,
      });
      assertEquals(t.ffnTimed, [0, 1, 16, 32, 64, 128, 130]);
      const lin = (a: number, b: number, n: number) =>
        t.ffn[a] + (t.ffn[b] - t.ffn[a]) * (n - a) / (b - a);
      for (const [a, b, n] of [[1, 16, 2], [16, 32, 21], [128, 130, 129]]) {
        assertEquals(t.ffn[n], lin(a, b, n), `n = ${n}`);
      }
      if (batch * 32 < TEXTURE_NARROW_MIN_M) {
        // past 32 neurons (B·S·d·n = 8192·n is past TEXTURE_MIN_MACS there): ⌈n/64⌉·64's timing
        for (let n = 33; n < 64; n++) assertEquals(t.ffn[n], t.ffn[64], `n = ${n}`);
        for (let n = 65; n < 128; n++) assertEquals(t.ffn[n], t.ffn[128], `n = ${n}`);
      } else {
        for (let n = 33; n < 64; n++) assertEquals(t.ffn[n], lin(32, 64, n), `n = ${n}`);
        for (let n = 65; n < 128; n++) assertEquals(t.ffn[n], lin(64, 128, n), `n = ${n}`);
      }
      for (const v of t.ffn) assert(Number.isFinite(v) && v >= 0, `${v}`);
    }
  } finally {
    setMatmulPath("auto");
    model.release();
  }
});

Deno.test("measureModelLatencies: one median per model, in order; bad run counts are typed errors", async () => {
  const gpu = await getGpu();
  const a = await createRandomModel(config, 4, gpu);
  const b = await createRandomModel(makeConfig({ ...shape, numLayers: 1 }), 5, gpu);
  try {
    const t = await measureModelLatencies([a, b], { batch: 2, seqLen: 8, runs: 3, warmup: 1 });
    assertEquals(t.length, 2);
    for (const v of t) assert(Number.isFinite(v) && v > 0, `${v}`);
    // a second measurement allocates nothing new: inputs are released, pooled buffers reused
    await measureModelLatencies([a, b], { batch: 2, seqLen: 8, runs: 1, warmup: 0 });
    const again = gpu.counters.buffersCreated;
    await measureModelLatencies([a, b], { batch: 2, seqLen: 8, runs: 1, warmup: 0 });
    assertEquals(gpu.counters.buffersCreated, again);
    await assertRejects(() => measureModelLatencies([a], { runs: 0 }), InvalidArgumentError);
    await assertRejects(() => measureModelLatencies([a], { warmup: -1 }), InvalidArgumentError);
  } finally {
    a.release();
    b.release();
  }
});
