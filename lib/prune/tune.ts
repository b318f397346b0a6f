/**
 * Mask tuning by layer-wise least squares (METHOD.md §6). For each layer, the kept heads' mask
 * values are fitted so the student's pre-LN₁ sum reconstructs the teacher's, then the kept
 * neurons' values so the pre-LN₂ sum does. Normal equations are accumulated per batch on the GPU in
 * f32 (G from Ctxᵀ·Ctx and Wᵀ·W, q from Ctx∘(R·W)), summed in f64 on the host and solved there
 * (`solveMaskLs`); the per-batch results are read back in groups (`GroupedReads`: one sync per
 * group, not per batch). Teacher and student layer inputs are cached on the GPU per batch; with
 * `teacherTargets` from the Fisher pass (lib/prune/teacher.ts) the teacher is not run at all.
 * @module
 */
import { InvalidArgumentError } from "../errors.ts";
import type { Tensor } from "../gpu/tensor.ts";
import { mergeHeads } from "../ops/heads.ts";
import { attentionShape, fusedAttention, fusedAttentionApplies } from "../ops/attention.ts";
import { scaleColsGrouped, scaleRows } from "../ops/masks.ts";
import { matmul } from "../ops/matmul.ts";
import { dotAll, dotGroups, sumRows } from "../ops/reduce.ts";
import { residualRows } from "../ops/residual_rows.ts";
import {
  attentionContext,
  attentionOutput,
  attentionProjection,
  embeddingsForward,
  ffnForward,
  layerForward,
  type LayerState,
  releaseLayerState,
  residualNorm,
} from "../model/encoder.ts";
import { linear } from "../ops/matmul.ts";
import { type BatchTensors, type ModelInput, uploadBatch } from "../model/inputs.ts";
import type { Model } from "../model/model.ts";
import type { OnProgress } from "../util/progress.ts";
import { requireUniform } from "./fisher.ts";
import { solveMaskLs } from "./lsq.ts";
import type { TeacherTargets } from "./teacher.ts";
import type { MaskSet } from "./types.ts";

/** Options of `tuneMasks` (defaults are METHOD.md's; `kwonCode` values in brackets). */
export interface TuneOptions {
  /** "full" (default): the unpruned model; "ta": the binary mask `taMask` searched at √c. */
  teacher?: "full" | "ta";
  /** The teacher's binary mask for `teacher: "ta"`. */
  taMask?: MaskSet;
  /** Mask the TA teacher's FFN in the layer being tuned (the code does not). Default false. */
  taMaskCurrentFfn?: boolean;
  /** Tune layer 0's MHA too (the code skips it). Default false. */
  tuneFirstMha?: boolean;
  /** Fit the last MHA on [CLS] only for classification. Default false. */
  clsOnlyLastMha?: boolean;
  /** On a rejected solve: keep the binary mask and continue ("skip", default) or stop ("break"). */
  onTuneFailure?: "skip" | "break";
  /** Damping λ (default 1). */
  lambda?: number;
  /** Progress callback over sub-layers. */
  onProgress?: OnProgress;
  /**
   * The full teacher's pre-LN sums of these very batches, recorded by `collectFisher` on the
   * unpruned model: used instead of a teacher pass (`teacher: "full"` only, and only when it holds
   * every batch; else ignored). They stay the caller's (reusable across budgets; release them).
   */
  teacherTargets?: TeacherTargets;
}

/** What happened to one sub-layer. */
export interface SubLayerTuning {
  /** Layer index. */
  layer: number;
  /** Sub-layer kind. */
  kind: "mha" | "ffn";
  /** tuned, rejected (binary kept), or skipped (not attempted). */
  status: "tuned" | "rejected" | "skipped";
  /** Why it was rejected or skipped. */
  reason?: string;
  /** Number of kept units solved for. */
  units: number;
  /** Reconstruction error at the binary mask. */
  e1?: number;
  /** Reconstruction error at the solution. */
  ev?: number;
  /** Smallest solved value. */
  min?: number;
  /** Largest solved value. */
  max?: number;
  /** Host seconds of the least-squares solve (tuned or rejected sub-layers). */
  solveSeconds?: number;
  /** LSMR iterations of the solve (absent for the dense and closed-form solvers). */
  iterations?: number;
  /**
   * Wall seconds of the sub-layer: the teacher pass and the normal equations' accumulation (MHA:
   * from the layer's start), the read-backs and the solve. Where the time goes on a fast GPU.
   */
  seconds?: number;
}

/** Result of `tuneMasks`. */
export interface TuneResult {
  /** Real-valued masks (kept units tuned, pruned units 0). */
  mask: MaskSet;
  /** One entry per sub-layer. */
  layers: SubLayerTuning[];
  /** Where the teacher's targets came from: recorded by the Fisher pass, or a teacher pass here. */
  teacherTargets: "fisher pass" | "teacher pass";
}

function uploadLayerMask(
  model: Model,
  B: number,
  values: Float64Array,
  off: number,
  n: number,
  asRows: boolean,
): Tensor | undefined {
  if (n === 0) return undefined;
  const data = new Float32Array(B * n);
  for (let b = 0; b < B; b++) for (let j = 0; j < n; j++) data[b * n + j] = values[off + j];
  return model.gpu.upload(data, asRows ? [B * n] : [B, n]);
}

/** Reads several tensors with one submit, as f64 arrays; optionally releases them. */
/**
 * The FFN weights of layer l restricted to the kept neurons, on the GPU: W₁ rows [k, d], b₁ [k] and
 * W₂ columns [d, k] (gathered on the host), so the LS system costs O(T·k²), not O(T·F²).
 */
async function keptFfnWeights(
  model: Model,
  l: number,
  keptNeurons: number[],
): Promise<{ w1: Tensor; b1: Tensor; w2: Tensor; w2Host: Float32Array }> {
  const d = model.config.hiddenSize, F = model.ffn(l), k = keptNeurons.length;
  const w1 = await model.param(`l${l}.ffn1.w`).read();
  const b1 = await model.param(`l${l}.ffn1.b`).read();
  const w2 = await model.param(`l${l}.ffn2.w`).read();
  const w1k = new Float32Array(k * d), b1k = new Float32Array(k), w2k = new Float32Array(d * k);
  keptNeurons.forEach((j, a) => {
    w1k.set(w1.subarray(j * d, (j + 1) * d), a * d);
    b1k[a] = b1[j];
    for (let i = 0; i < d; i++) w2k[i * k + a] = w2[i * F + j];
  });
  const gpu = model.gpu;
  return {
    w1: gpu.upload(w1k, [k, d]),
    b1: gpu.upload(b1k, [k]),
    w2: gpu.upload(w2k, [d, k]),
    w2Host: w2k,
  };
}

async function readAll(ts: Tensor[], release = false): Promise<Float64Array[]> {
  const gpu = ts[0].gpu;
  const total = ts.reduce((s, t) => s + t.size, 0);
  const packed = gpu.empty([total]);
  let off = 0;
  for (const t of ts) {
    gpu.copy(t, packed, 0, off, t.size);
    off += t.size;
  }
  const host = await packed.read();
  packed.release();
  if (release) { for (const t of ts) t.release(); }
  off = 0;
  return ts.map((t) => {
    const a = Float64Array.from(host.subarray(off, off + t.size));
    off += t.size;
    return a;
  });
}

/**
 * Per-batch results read back in groups, one sync per group instead of one per batch (a sync costs
 * ≥ 11 ms in Deno 2.9, whatever it reads), and handed to `use` batch by batch in the order they
 * were added — so host sums are formed in exactly the order of a read per batch. A group is read
 * once its results pass `maxBytes` (and by `flush`); they are released after reading.
 */
export class GroupedReads {
  #pending: Tensor[][] = [];
  #bytes = 0;
  readonly #use: (values: Float64Array[]) => void;
  readonly #maxBytes: number;

  constructor(use: (values: Float64Array[]) => void, maxBytes = 32 << 20) {
    this.#use = use;
    this.#maxBytes = maxBytes;
  }

  /** Queues one batch's results; reads the group when it is full. */
  async add(ts: Tensor[]): Promise<void> {
    this.#pending.push(ts);
    this.#bytes += ts.reduce((n, t) => n + 4 * t.size, 0);
    if (this.#bytes >= this.#maxBytes) await this.flush();
  }

  /** Reads every queued result in one sync and hands them over, batch by batch. */
  async flush(): Promise<void> {
    const groups = this.#pending;
    if (groups.length === 0) return;
    this.#pending = [];
    this.#bytes = 0;
    const values = await readAll(groups.flat(), true);
    let i = 0;
    for (const g of groups) {
      this.#use(values.slice(i, i + g.length));
      i += g.length;
    }
  }
}

/**
 * Tunes the kept units' mask values. `keep` is the binary mask after search and rearrangement;
 * the returned mask has tuned values on kept units and 0 elsewhere.
 */
export async function tuneMasks(
  model: Model,
  batches: ModelInput[],
  keep: MaskSet,
  o: TuneOptions = {},
): Promise<TuneResult> {
  const { L, H, F } = requireUniform(model);
  if (keep.L !== L || keep.H !== H || keep.F !== F) {
    throw new InvalidArgumentError(`mask is ${keep.L}×${keep.H}/${keep.F}, model ${L}×${H}/${F}`);
  }
  if (batches.length === 0) throw new InvalidArgumentError("mask tuning needs at least one batch");
  const teacherKind = o.teacher ?? "full";
  if (teacherKind === "ta" && !o.taMask) {
    throw new InvalidArgumentError('teacher "ta" needs taMask');
  }
  const c = model.config, gpu = model.gpu;
  const d = c.hiddenSize, dh = c.headDim;
  const cur: MaskSet = {
    head: Float64Array.from(keep.head),
    ffn: Float64Array.from(keep.ffn),
    L,
    H,
    F,
  };
  const ones: MaskSet = {
    head: new Float64Array(L * H).fill(1),
    ffn: new Float64Array(L * F).fill(1),
    L,
    H,
    F,
  };
  const teacher = teacherKind === "ta" ? o.taMask! : ones;
  const report: SubLayerTuning[] = [];
  const lambda = o.lambda ?? 1;
  let stopped = false;

  const cached = teacherKind === "full" && o.teacherTargets?.complete(batches.length) === true
    ? o.teacherTargets
    : undefined;
  const fits = (t: Tensor[], x: ModelInput) =>
    t.length === L && t.every((u) => u.size === x.size * x.seqLen * d);
  if (cached && (!cached.matches(batches) || !batches.every((x, b) => fits(cached.sum1[b], x)))) {
    throw new InvalidArgumentError(
      "teacherTargets were recorded on other batches or another model than these",
    );
  }
  const bt: BatchTensors[] = batches.map((x) => uploadBatch(gpu, c, x));
  const tokenRows: Tensor[] = bt.map((b) => b.keyMask.view([b.B * b.S]));
  const clsRows: Tensor[] = bt.map((b) => {
    const m = new Float32Array(b.B * b.S);
    for (let i = 0; i < b.B; i++) m[i * b.S] = 1;
    return gpu.upload(m);
  });
  const realTokens = batches.map((x) => x.attentionMask.reduce((s, v) => s + v, 0));
  // layer inputs, cached per batch
  let xt: Tensor[] = [], xs: Tensor[] = [];
  for (const b of bt) {
    const e = embeddingsForward(model, b, {}); // eval: out is the LayerNorm output
    xt.push(e.out);
    xs.push(e.out);
    for (const t of [e.sum, e.mean, e.rstd]) t?.release();
  }
  const runLayer = (
    l: number,
    x: Tensor,
    b: number,
    m: MaskSet | undefined,
    maskFfn = true,
  ): LayerState => {
    const hm = m ? uploadLayerMask(model, bt[b].B, m.head, l * H, H, true) : undefined;
    const fm = m && maskFfn ? uploadLayerMask(model, bt[b].B, m.ffn, l * F, F, false) : undefined;
    // the teacher's targets are pre-LN sums: only the attention takes the fused inference kernel
    const st = layerForward(model, l, x, bt[b], hm, fm, { fused: "attention" });
    hm?.release();
    fm?.release();
    return st;
  };
  /** Records a sub-layer's solve; applies accepted values, or stops tuning under "break". */
  const accept = (
    layer: number,
    kind: "mha" | "ffn",
    units: number[],
    res: ReturnType<typeof solveMaskLs>,
    target: Float64Array,
    offset: number,
    started: number,
    solveStarted: number,
  ) => {
    const now = performance.now();
    report.push({
      layer,
      kind,
      status: res.accepted ? "tuned" : "rejected",
      reason: res.reason,
      units: units.length,
      e1: res.e1,
      ev: res.ev,
      min: res.min,
      max: res.max,
      solveSeconds: (now - solveStarted) / 1000,
      iterations: res.iterations,
      seconds: (now - started) / 1000,
    });
    if (res.accepted) units.forEach((u, a) => (target[offset + u] = res.x[a]));
    else if ((o.onTuneFailure ?? "skip") === "break") stopped = true;
  };
  const total = 2 * L;
  for (let l = 0; l < L; l++) {
    const mhaStarted = performance.now();
    // ---- teacher pass for layer l: targets and next input
    const tSum1: Tensor[] = [], tSum2: Tensor[] = [], tNext: Tensor[] = [];
    for (let b = 0; cached && b < bt.length; b++) {
      tSum1.push(cached.sum1[b][l]);
      tSum2.push(cached.sum2[b][l]);
    }
    for (let b = 0; !cached && b < bt.length; b++) {
      // the full teacher's masks are all ones: run it unmasked (no mask multiplications)
      const st = teacherKind === "full"
        ? runLayer(l, xt[b], b, undefined)
        : runLayer(l, xt[b], b, teacher, !!o.taMaskCurrentFfn);
      tSum1.push(st.sum1);
      tSum2.push(st.sum2);
      if (teacherKind === "ta" && !o.taMaskCurrentFfn) {
        // the code's quirk: the FFN target is the teacher's unmasked FFN; its output is masked
        const st2 = runLayer(l, xt[b], b, teacher, true);
        tNext.push(st2.y);
        releaseLayerState(st2);
        releaseLayerState(st, true, new Set([st.sum1, st.sum2]));
      } else {
        tNext.push(st.y);
        releaseLayerState(st, false, new Set([st.sum1, st.sum2]));
      }
    }
    const lastCls = l === L - 1 && c.head !== "qa";

    // ---- MHA: one attention pass of the student with its current (binary) head mask; the
    // unmasked per-head context is kept for the FFN pass, so attention runs once per layer.
    const keptHeads = [...Array(H).keys()].filter((h) => keep.head[l * H + h] === 1);
    // the student's unmasked attention context per batch: merged [B·S, H·d_h] from the fused
    // inference kernel where it applies (CPU adapters), else per head [B·H, S, d_h]
    const ctxs: ({ t: Tensor; merged: boolean } | undefined)[] = [];
    const studentContext = (b: number): { t: Tensor; merged: boolean } | undefined => {
      if (H === 0) return undefined;
      const shape = attentionShape(bt[b].B, bt[b].S, H, dh, c.arch);
      if (fusedAttentionApplies(model.gpu, shape)) {
        const qkv = linear(xs[b], model.param(`l${l}.qkv.w`), model.param(`l${l}.qkv.b`));
        const t = fusedAttention(qkv, bt[b].keyMask, undefined, shape)!;
        qkv.release();
        return { t, merged: true };
      }
      const st: Partial<LayerState> = {};
      attentionContext(model, l, xs[b], bt[b], st);
      for (const t of [st.q, st.k, st.v, st.probs]) t?.release();
      return { t: st.ctx!, merged: false };
    };
    const tuneMha = !stopped && keptHeads.length > 0 && (l > 0 || !!o.tuneFirstMha);
    const hd = H * dh;
    const wo = model.param(`l${l}.o.w`);
    const Gacc = new Float64Array(tuneMha ? hd * hd : 0),
      qAcc = new Float64Array(hd),
      cAcc = new Float64Array(hd);
    let rSum = 0, rrMha = 0, tokens = 0;
    const mhaReads = new GroupedReads(([a, q, cc, rsv, rqv]) => {
      for (let i = 0; i < a.length; i++) Gacc[i] += a[i];
      for (let i = 0; i < hd; i++) {
        qAcc[i] += q[i];
        cAcc[i] += cc[i];
      }
      for (const v of rsv) rSum += v;
      for (const v of rqv) rrMha += v;
    });
    for (let b = 0; b < bt.length; b++) {
      const ctx = studentContext(b);
      ctxs.push(ctx);
      if (!tuneMha) continue;
      const rows = o.clsOnlyLastMha && lastCls ? clsRows[b] : tokenRows[b];
      tokens += o.clsOnlyLastMha && lastCls ? bt[b].B : realTokens[b];
      const merged = ctx!.merged ? ctx!.t : mergeHeads(ctx!.t, bt[b].B, bt[b].S, H);
      const ctxM = scaleRows(merged, rows);
      if (!ctx!.merged) merged.release();
      // R = (teacher's pre-LN₁ sum − X − b_o) on the fitted rows
      const R = residualRows(tSum1[b], xs[b], model.param(`l${l}.o.b`), rows);
      const RW = matmul(R, wo); // [T, d]·[d, hd]
      const T = R.shape[0];
      await mhaReads.add([
        matmul(ctxM, ctxM, { transA: true }),
        dotGroups(ctxM, RW, T), // Σ_t ctxM ∘ RW per column
        sumRows(ctxM),
        sumRows(R),
        dotAll(R, R),
      ]);
      for (const t of [ctxM, R, RW]) t.release();
    }
    await mhaReads.flush();
    if (!tuneMha) {
      report.push({
        layer: l,
        kind: "mha",
        status: "skipped",
        units: keptHeads.length,
        reason: stopped
          ? "tuning stopped earlier"
          : keptHeads.length === 0
          ? "no kept heads"
          : "first layer (tuneFirstMha off)",
      });
    } else {
      const [W, wcol] = await readAll([matmul(wo, wo, { transA: true }), sumRows(wo)], true);
      const k = keptHeads.length;
      const G = new Float64Array(k * k), q = new Float64Array(k), gBeta = new Float64Array(k);
      keptHeads.forEach((h, a) => {
        for (let i = h * dh; i < (h + 1) * dh; i++) {
          q[a] += qAcc[i];
          gBeta[a] += cAcc[i] * wcol[i];
        }
        keptHeads.forEach((g, bIdx) => {
          let sum = 0;
          for (let i = h * dh; i < (h + 1) * dh; i++) {
            for (let j = g * dh; j < (g + 1) * dh; j++) sum += Gacc[i * hd + j] * W[i * hd + j];
          }
          G[a * k + bIdx] = sum;
        });
      });
      const solveStarted = performance.now();
      const res = solveMaskLs(G, q, rrMha, {
        lambda,
        intercept: { gBeta, gBetaBeta: tokens * d, qBeta: rSum },
      });
      accept(l, "mha", keptHeads, res, cur.head, l * H, mhaStarted, solveStarted);
    }
    o.onProgress?.(2 * l + 1, total);

    // ---- FFN: the student's U with the tuned head mask, from the kept context
    const ffnStarted = performance.now();
    const keptNeurons = [...Array(F).keys()].filter((j) => keep.ffn[l * F + j] === 1);
    const tuneFfn = !stopped && keptNeurons.length > 0;
    const us: Tensor[] = [];
    // only the kept neurons enter the LS system: W₁ rows, b₁ and W₂ columns of the kept ones
    const kept = tuneFfn ? await keptFfnWeights(model, l, keptNeurons) : undefined;
    const kF = keptNeurons.length;
    const GaccF = new Float64Array(tuneFfn ? kF * kF : 0), qAccF = new Float64Array(kF);
    let rrFfn = 0;
    const ffnReads = new GroupedReads(([a, q, rqv]) => {
      for (let i = 0; i < a.length; i++) GaccF[i] += a[i];
      for (let i = 0; i < kF; i++) qAccF[i] += q[i];
      for (const v of rqv) rrFfn += v;
    });
    // the kept neurons' activations Z_k per batch, reused to advance the student past this FFN
    const zs: Tensor[] = [];
    for (let b = 0; b < bt.length; b++) {
      const ctx = ctxs[b];
      const st: Partial<LayerState> = {};
      if (ctx?.merged) {
        // head mask on the merged layout: each head's d_h columns scaled by its value
        const cols = new Float64Array(H * dh);
        for (let h = 0; h < H; h++) cols.fill(cur.head[l * H + h], h * dh, (h + 1) * dh);
        const hm = uploadLayerMask(model, bt[b].B, cols, 0, H * dh, false)!;
        st.merged = scaleColsGrouped(ctx.t, hm, bt[b].S);
        hm.release();
        attentionProjection(model, l, xs[b], st, {});
      } else {
        const hm = uploadLayerMask(model, bt[b].B, cur.head, l * H, H, true);
        st.ctx = ctx?.t;
        attentionOutput(model, l, xs[b], bt[b], hm, st);
        hm?.release();
      }
      ctx?.t.release();
      for (const t of [st.merged, st.sum1, st.mean1, st.rstd1]) t?.release();
      us.push(st.u!);
      if (!tuneFfn) continue;
      const rows = lastCls ? clsRows[b] : tokenRows[b];
      // [T, k], the activation fused into the matmul's epilogue
      const z = linear(st.u!, kept!.w1, kept!.b1, c.hiddenAct === "relu" ? "relu" : "gelu");
      const zM = scaleRows(z, rows);
      zs.push(z);
      const R = residualRows(tSum2[b], st.u!, model.param(`l${l}.ffn2.b`), rows);
      const RW = matmul(R, kept!.w2); // [T, d]·[d, k]
      const T = R.shape[0];
      await ffnReads.add([matmul(zM, zM, { transA: true }), dotGroups(zM, RW, T), dotAll(R, R)]);
      for (const t of [zM, R, RW]) t.release();
    }
    await ffnReads.flush();
    if (!tuneFfn) {
      report.push({
        layer: l,
        kind: "ffn",
        status: "skipped",
        units: keptNeurons.length,
        reason: stopped ? "tuning stopped earlier" : "no kept neurons",
      });
    } else {
      const [W] = await readAll([matmul(kept!.w2, kept!.w2, { transA: true })], true);
      const G = new Float64Array(kF * kF), q = Float64Array.from(qAccF);
      for (let i = 0; i < kF * kF; i++) G[i] = GaccF[i] * W[i];
      for (const t of [kept!.w1, kept!.b1, kept!.w2]) t.release();
      const solveStarted = performance.now();
      const res = solveMaskLs(G, q, rrFfn, { lambda });
      accept(l, "ffn", keptNeurons, res, cur.ffn, l * F, ffnStarted, solveStarted);
    }
    o.onProgress?.(2 * l + 2, total);

    // ---- advance both models to layer l + 1 (the student's FFN with its tuned mask). When the
    // kept neurons' activations are at hand, Y = LN₂(U + Z_k·diag(m_k)·W₂,ₖᵀ + b₂): the pruned
    // neurons (mask 0) contribute nothing, so the full-width FFN need not run again. Past the
    // last layer there is nothing to advance to.
    const nextXs: Tensor[] = [];
    const last = l === L - 1;
    let w2m: Tensor | undefined;
    if (kept && !last) {
      const w2s = Float32Array.from(kept.w2Host);
      for (let i = 0; i < d; i++) {
        for (let a = 0; a < kF; a++) w2s[i * kF + a] *= cur.ffn[l * F + keptNeurons[a]];
      }
      w2m = gpu.upload(w2s, [d, kF]);
    }
    for (let b = 0; b < bt.length; b++) {
      if (last) {
        us[b].release();
        continue;
      }
      if (w2m) {
        const f = linear(zs[b], w2m, model.param(`l${l}.ffn2.b`));
        const r = residualNorm(model, `l${l}.ln2`, f, us[b], 0, {}); // consumes f
        nextXs.push(r.y);
        for (const t of [r.sum, r.mean, r.rstd, us[b]]) t?.release();
        continue;
      }
      const fm = uploadLayerMask(model, bt[b].B, cur.ffn, l * F, F, false);
      const st: Partial<LayerState> = {};
      ffnForward(model, l, us[b], bt[b], fm, st);
      fm?.release();
      nextXs.push(st.y!);
      for (const t of new Set([st.h, st.z, st.zm, st.sum2, st.mean2, st.rstd2, us[b]])) {
        t?.release();
      }
    }
    w2m?.release();
    for (const z of zs) z.release();
    for (let b = 0; b < bt.length; b++) {
      if (xs[b] !== xt[b]) xs[b].release();
      if (!xt[b].released) xt[b].release();
      if (!cached) {
        tSum1[b].release();
        tSum2[b].release();
      }
    }
    xt = cached ? nextXs : tNext;
    xs = nextXs;
  }
  for (const t of [...xt, ...xs]) if (!t.released) t.release();
  for (const t of clsRows) t.release();
  for (const b of bt) b.release();
  // pruned units stay exactly 0
  for (let i = 0; i < cur.head.length; i++) if (keep.head[i] !== 1) cur.head[i] = 0;
  for (let i = 0; i < cur.ffn.length; i++) if (keep.ffn[i] !== 1) cur.ffn[i] = 0;
  return { mask: cur, layers: report, teacherTargets: cached ? "fisher pass" : "teacher pass" };
}
