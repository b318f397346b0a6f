/**
 * `deno task bench` section "model": forward latency and forward+backward time of randomly
 * initialised BERT and DistilBERT classifiers on our kernels, against PyTorch CPU (the same math in
 * float32, `bench/torch_bert.py`, 2 threads) and onnxruntime-node (CPU EP, on the ONNX export of
 * that PyTorch model), measured in the same run. `--quick` runs the small shape only; the full run
 * adds BERT-base and DistilBERT shapes at batch 32 × 128 and 1 × 128.
 * @module
 */
import { makeConfig } from "../../lib/model/config.ts";
import { uploadBatch, uploadMasks } from "../../lib/model/inputs.ts";
import { createRandomModel } from "../../lib/model/model.ts";
import { backward, forward } from "../../lib/model/run.ts";
import { type BenchSection, median, printTable, pythonPath } from "./common.ts";
import { loadOrt } from "./ort.ts";

interface Shape {
  name: string;
  arch: "bert" | "distilbert";
  L: number;
  d: number;
  H: number;
  F: number;
  V: number;
  B: number;
  S: number;
}

const SMALL: Shape[] = [{
  name: "small L4/H256",
  arch: "bert",
  L: 4,
  d: 256,
  H: 4,
  F: 1024,
  V: 8000,
  B: 32,
  S: 64,
}];
const FULL: Shape[] = [
  ...SMALL,
  { name: "BERT-base", arch: "bert", L: 12, d: 768, H: 12, F: 3072, V: 30522, B: 1, S: 128 },
  { name: "DistilBERT", arch: "distilbert", L: 6, d: 768, H: 12, F: 3072, V: 30522, B: 1, S: 128 },
  { name: "BERT-base", arch: "bert", L: 12, d: 768, H: 12, F: 3072, V: 30522, B: 32, S: 128 },
  { name: "DistilBERT", arch: "distilbert", L: 6, d: 768, H: 12, F: 3072, V: 30522, B: 32, S: 128 },
];

async function torchAndOnnx(
  s: Shape,
  runs: number,
): Promise<{ torchFwd?: number; torchFb?: number; ortFwd?: number; note?: string }> {
  // Export to ONNX only when onnxruntime-node loads (an offline machine has no npm cache for it).
  const ortLoaded = await loadOrt();
  const onnx = ortLoaded.ok ? await Deno.makeTempFile({ suffix: ".onnx" }) : "";
  const cfg = {
    arch: s.arch,
    L: s.L,
    d: s.d,
    H: s.H,
    F: s.F,
    V: s.V,
    B: s.B,
    S: s.S,
    runs,
    threads: navigator.hardwareConcurrency,
    onnx,
  };
  let out: { forward_s?: number; forward_backward_s?: number; onnx?: string; onnx_error?: string } =
    {};
  try {
    const r = await new Deno.Command(pythonPath(), {
      args: [new URL("../../bench/torch_bert.py", import.meta.url).pathname, JSON.stringify(cfg)],
      stdout: "piped",
      stderr: "piped",
    }).output();
    if (r.code !== 0) {
      return {
        note: `PyTorch baseline failed: ${
          new TextDecoder().decode(r.stderr).trim().split("\n").pop()
        }`,
      };
    }
    out = JSON.parse(new TextDecoder().decode(r.stdout).trim().split("\n").pop()!);
  } catch (e) {
    return {
      note: `PyTorch baseline unavailable (${(e as Error).message}); install python3-torch`,
    };
  }
  const res: { torchFwd?: number; torchFb?: number; ortFwd?: number; note?: string } = {
    torchFwd: out.forward_s,
    torchFb: out.forward_backward_s,
  };
  if (out.onnx) {
    try {
      if (!ortLoaded.ok) throw new Error(ortLoaded.reason);
      const ort = ortLoaded.ort;
      const session = await ort.InferenceSession.create(onnx, {
        intraOpNumThreads: navigator.hardwareConcurrency,
      });
      const n = s.B * s.S;
      const ids = new ort.Tensor(
        "int64",
        BigInt64Array.from({ length: n }, (_, i) => BigInt(1 + (i * 7) % (s.V - 1))),
        [s.B, s.S],
      );
      const zeros = new ort.Tensor("int64", new BigInt64Array(n), [s.B, s.S]);
      const ones = new ort.Tensor("int64", new BigInt64Array(n).fill(1n), [s.B, s.S]);
      const feeds: Record<string, unknown> = {};
      for (const name of session.inputNames) {
        feeds[name] = name === "input_ids" ? ids : name === "attention_mask" ? ones : zeros;
      }
      await session.run(feeds as never);
      const ts: number[] = [];
      for (let i = 0; i < runs; i++) {
        const t0 = performance.now();
        await session.run(feeds as never);
        ts.push((performance.now() - t0) / 1000);
      }
      res.ortFwd = median(ts);
    } catch (e) {
      res.note = `onnxruntime-node failed: ${(e as Error).message.split("\n")[0]}`;
    }
  } else if (out.onnx_error) res.note = `ONNX export failed: ${out.onnx_error}`;
  else if (!ortLoaded.ok) res.note = `onnxruntime-node unavailable: ${ortLoaded.reason}`;
  if (onnx !== "") await Deno.remove(onnx).catch(() => {});
  return res;
}

/** The model section. */
export const modelSection: BenchSection = {
  name: "model",
  async run(ctx) {
    const shapes = ctx.quick ? SMALL : FULL;
    const runs = ctx.quick ? 3 : 5;
    const rows = [[
      "model",
      "batch×seq",
      "ours fwd ms",
      "unfused fwd ms",
      "fused gain",
      "ours fwd+bwd ms",
      "torch fwd ms",
      "torch fwd+bwd ms",
      "ort fwd ms",
      "ours/ort fwd",
      "ours/torch fwd+bwd",
    ]];
    const results: unknown[] = [];
    for (const s of shapes) {
      const config = makeConfig({
        arch: s.arch,
        head: "classification",
        numLabels: 2,
        vocabSize: s.V,
        hiddenSize: s.d,
        numLayers: s.L,
        numHeads: s.H,
        intermediateSize: s.F,
        maxPositions: 512,
        typeVocabSize: s.arch === "bert" ? 2 : 0,
      });
      const model = await createRandomModel(config, 1, ctx.gpu);
      const n = s.B * s.S;
      const input = {
        size: s.B,
        seqLen: s.S,
        inputIds: Int32Array.from({ length: n }, (_, i) => 1 + (i * 7) % (s.V - 1)),
        attentionMask: new Int32Array(n).fill(1),
        labels: new Int32Array(s.B),
      };
      const batch = uploadBatch(ctx.gpu, config, input);
      const masks = uploadMasks(ctx.gpu, config, s.B);
      const time = async (fn: () => void) => {
        fn();
        await ctx.gpu.sync();
        const ts: number[] = [];
        for (let i = 0; i < runs; i++) {
          const t0 = performance.now();
          fn();
          await ctx.gpu.sync();
          ts.push(performance.now() - t0);
        }
        return median(ts);
      };
      const fwd = await time(() => forward(model, batch, undefined, {}).release());
      // the same inference pass without the fused CPU-adapter kernels (lib/ops/attention.ts,
      // addLayerNormInference, activation in the matmul epilogue), timed in the same run
      const unfused = await time(() =>
        forward(model, batch, undefined, { fused: false }).release()
      );
      const fb = await time(() => {
        const f = forward(model, batch, masks, { save: true, withLoss: true });
        const grads = new Map();
        backward(model, f, batch, masks, { lossScale: 1 / s.B, grads }).release();
        f.release();
        for (const g of grads.values()) g.release();
      });
      masks.release();
      batch.release();
      model.release();
      const peer = await torchAndOnnx(s, runs);
      const f = (x?: number) => (x === undefined ? "—" : x.toFixed(1));
      rows.push([
        s.name,
        `${s.B}×${s.S}`,
        f(fwd),
        f(unfused),
        (unfused / fwd).toFixed(2),
        f(fb),
        f(peer.torchFwd && peer.torchFwd * 1000),
        f(peer.torchFb && peer.torchFb * 1000),
        f(peer.ortFwd && peer.ortFwd * 1000),
        peer.ortFwd ? (fwd / (peer.ortFwd * 1000)).toFixed(2) : "—",
        peer.torchFb ? (fb / (peer.torchFb * 1000)).toFixed(2) : "—",
      ]);
      results.push({
        shape: s,
        oursForwardMs: fwd,
        oursForwardUnfusedMs: unfused,
        oursForwardBackwardMs: fb,
        ...peer,
      });
      if (peer.note) console.error(`model bench: ${peer.note}`);
    }
    console.log(
      "\n## Model forward / forward+backward (median ms; ratios > 1 mean we are slower)\n",
    );
    printTable(rows);
    return results;
  },
};
