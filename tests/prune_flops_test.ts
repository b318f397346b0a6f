/**
 * Tests of lib/prune/flops.ts against hand-computed values from METHOD.md §2.1 (BERT-base:
 * mac_head = 196,608s + 128s², mac_neuron = 1,536s, 11.17 GMAC at s = 128; DistilBERT = 6 layers).
 */
import { assert, assertClose, assertEquals, assertRejects } from "./helpers.ts";
import {
  countFlops,
  countMacs,
  macPerHead,
  macPerNeuron,
  TASK_SEQ_LEN,
} from "../lib/prune/flops.ts";
import { InvalidArgumentError } from "../lib/errors.ts";

const BERT = { L: 12, H: 12, F: 3072, d: 768, dh: 64 };
const DISTIL = { ...BERT, L: 6 };
const full = (dims: typeof BERT) => ({
  heads: Array(dims.L).fill(dims.H),
  neurons: Array(dims.L).fill(dims.F),
});

Deno.test("macPerHead / macPerNeuron match the BERT-base closed forms", () => {
  for (const s of [1, 11.67, 39.05, 128, 170, 384]) {
    assertClose([macPerHead(s, 768, 64)], [196608 * s + 128 * s * s], 1e-9 * s * s, 0, `head ${s}`);
    assertClose([macPerNeuron(s, 768)], [1536 * s], 1e-9 * s, 0, `neuron ${s}`);
    // A head costs 128 + s/12 neurons.
    assertClose([macPerHead(s, 768, 64) / macPerNeuron(s, 768)], [128 + s / 12], 1e-12, 0, "ratio");
  }
});

Deno.test("full BERT-base at s = 128 is 11.17 GMAC; DistilBERT half of it", () => {
  // 12·(12·(196608·128 + 128·128²) + 3072·1536·128) = 12·(327,155,712 + 603,979,776).
  const bert = countMacs(BERT, 128, full(BERT).heads, full(BERT).neurons);
  assertEquals(bert, 11_173_625_856);
  assertEquals(countFlops(BERT, 128, full(BERT).heads, full(BERT).neurons), 22_347_251_712);
  const distil = countMacs(DISTIL, 128, full(DISTIL).heads, full(DISTIL).neurons);
  assertEquals(distil, 5_586_812_928);
});

Deno.test("MHA share of BERT-base MACs at s = 39 is about 0.34", () => {
  const s = 39;
  const mha = countMacs(BERT, s, Array(12).fill(12), Array(12).fill(0));
  const all = countMacs(BERT, s, Array(12).fill(12), Array(12).fill(3072));
  const share = mha / all;
  assert(Math.abs(share - 0.34) < 0.005, `share ${share}`);
});

Deno.test("countMacs of pruned counts (fractional s) matches a hand sum", () => {
  const s = 39.05;
  const heads = [12, 6, 0, 1, 12, 12];
  const neurons = [3072, 100, 0, 0, 1536, 7];
  const a = 196608 * s + 128 * s * s;
  const b = 1536 * s;
  const expected = (12 + 6 + 0 + 1 + 12 + 12) * a + (3072 + 100 + 0 + 0 + 1536 + 7) * b;
  assertClose([countMacs(DISTIL, s, heads, neurons)], [expected], 1e-12 * expected, 0, "macs");
  assertClose([countFlops(DISTIL, s, heads, neurons)], [2 * expected], 2e-12 * expected, 0, "fl");
  assertEquals(countMacs(DISTIL, s, Array(6).fill(0), Array(6).fill(0)), 0);
});

Deno.test("TASK_SEQ_LEN holds the official constants", () => {
  assertEquals(TASK_SEQ_LEN, {
    mnli: 39.05,
    qqp: 30.55,
    qnli: 50.97,
    sst2: 25.16,
    stsb: 31.47,
    mrpc: 53.24,
    rte: 64.59,
    cola: 11.67,
    squad: 170,
    squad_v2: 170,
  });
});

Deno.test("countMacs rejects wrong lengths, out-of-range counts and bad s", async () => {
  await assertRejects(() => countMacs(DISTIL, 10, [1, 2], Array(6).fill(0)), InvalidArgumentError);
  await assertRejects(
    () => countMacs(DISTIL, 10, Array(6).fill(13), Array(6).fill(0)),
    InvalidArgumentError,
    "keptHeads[0]",
  );
  await assertRejects(
    () => countMacs(DISTIL, 10, Array(6).fill(1), Array(6).fill(1.5)),
    InvalidArgumentError,
  );
  await assertRejects(
    () => countMacs(DISTIL, 0, Array(6).fill(1), Array(6).fill(1)),
    InvalidArgumentError,
  );
});

Deno.test("countFlops(config, seqLen, masks) counts kept units of a config (BERT-base by hand)", async () => {
  const { makeConfig } = await import("../lib/model/config.ts");
  const { countFlops } = await import("../lib/prune/flops.ts");
  const c = makeConfig({ arch: "bert", head: "classification", numLabels: 2 });
  // full BERT-base at s = 128: 11,173,625,856 MACs (hand value)
  if (countFlops(c, 128) !== 2 * 11_173_625_856) throw new Error(`full ${countFlops(c, 128)}`);
  const L = 12, H = 12, F = 3072;
  const head = new Float64Array(L * H).fill(1), ffn = new Float64Array(L * F).fill(1);
  head.fill(0, 0, 6); // layer 0 keeps 6 heads
  ffn.fill(0, F, 2 * F); // layer 1 keeps no neurons
  const s = 39.05;
  const a = 4 * s * 768 * 64 + 2 * s * s * 64, b = 2 * s * 768;
  const want = 2 * ((L * H - 6) * a + (L * F - F) * b);
  const got = countFlops(c, s, { head, ffn, L, H, F });
  if (Math.abs(got - want) > 1e-9 * want) throw new Error(`${got} vs ${want}`);
});
