/**
 * Fisher information of the head and FFN-neuron masks (METHOD.md §3): per-example gradients
 * g(x) = ∂ℓ(x)/∂m at m = 1 from the hand-written backward, their squares summed over the sample
 * set (the diagonal empirical Fisher), and the per-example gradient rows kept for the block-Fisher
 * rearrangement (§5). `groupSize` > 1 reproduces the official code's batch-mean gradients.
 * `labelFree` uses the expected Fisher (§11.1): the model's own predictive distribution replaces
 * the gold label, so no labels are needed.
 * @module
 */
import { FastpruneError, InvalidArgumentError } from "../errors.ts";
import type { Tensor } from "../gpu/tensor.ts";
import { type ModelInput, uploadBatch, uploadMasks } from "../model/inputs.ts";
import type { Model } from "../model/model.ts";
import { backward, forward } from "../model/run.ts";
import type { OnProgress } from "../util/progress.ts";
import { Pcg32 } from "../util/pcg32.ts";
import type { TeacherTargets } from "./teacher.ts";

/** Options of `collectFisher`. */
export interface FisherOptions {
  /** Use the expected (label-free) Fisher instead of the gold-label loss. Default false. */
  labelFree?: boolean;
  /** Sum gradients of this many consecutive examples before squaring (official code: 32 / 12). */
  groupSize?: number;
  /** Keep the per-example gradient rows (needed by rearrangement). Default true. */
  keepRows?: boolean;
  /** QA: exclude padding from the start/end softmax (METHOD §3). Default true. */
  qaMaskPads?: boolean;
  /** Seed for label-free QA position sampling. */
  seed?: number;
  /** Progress callback (examples done, total). */
  onProgress?: OnProgress;
  /**
   * Records the unpruned model's pre-LN sums of every batch and layer here, for mask tuning with
   * the full teacher on the same batches (`TuneOptions.teacherTargets`).
   */
  teacherTargets?: TeacherTargets;
}

/** Fisher information and gradient rows. Flat layouts: head[l·H + h], ffn[l·F + j]. */
export interface FisherResult {
  /** Σ_x g_head(x)² [L·H]. */
  head: Float64Array;
  /** Σ_x g_ffn(x)² [L·F]. */
  ffn: Float64Array;
  /** Per layer: gradient rows [rows × H] (row-major), when kept. */
  headRows?: Float32Array[];
  /** Per layer: gradient rows [rows × F], when kept. */
  ffnRows?: Float32Array[];
  /** Number of gradient rows (examples, groups, or example×class for label-free). */
  rows: number;
  /** Number of examples used. */
  examples: number;
  /** Layers, heads per layer, neurons per layer. */
  L: number;
  /** Heads per layer. */
  H: number;
  /** Neurons per layer. */
  F: number;
}

/** Raised when a gradient is NaN or infinite (a broken checkpoint or overflowing inputs). */
export class NonFiniteGradientError extends FastpruneError {}

/** Checks the model is unpruned (uniform layers with all original heads and neurons). */
export function requireUniform(model: Model): { L: number; H: number; F: number } {
  const c = model.config;
  for (let l = 0; l < c.numLayers; l++) {
    if (c.layerHeads[l].length !== c.numHeads || c.layerFfn[l] !== c.intermediateSize) {
      throw new InvalidArgumentError(
        "this model is already pruned (uneven layers): prune the original, unpruned checkpoint",
      );
    }
  }
  return { L: c.numLayers, H: c.numHeads, F: c.intermediateSize };
}

/**
 * One forward and backward of per-example mask gradients, read back with one submit: per layer,
 * head rows [B·H] and FFN rows [B·F].
 */
async function perExampleGrads(
  model: Model,
  input: ModelInput,
  qaMaskPads: boolean,
  targets?: TeacherTargets,
): Promise<{ head: Float32Array[]; ffn: Float32Array[] }> {
  const c = model.config;
  const gpu = model.gpu;
  const batch = uploadBatch(gpu, c, input);
  const masks = uploadMasks(gpu, c, batch.B);
  // only [CLS] reaches a classifier's head: its last layer runs at the [CLS] rows only — all of
  // it, or (teacher targets to record: tuning reads every row's pre-LN₁ sum) its FFN
  const pass = { qaMaskPads, clsOnlyLastLayer: targets ? "ffn" as const : true };
  const fwd = forward(model, batch, masks, { ...pass, save: true, withLoss: true });
  // all masks are 1 and there is no dropout: these are the full teacher's sums
  targets?.record(fwd.saved!.layers, input);
  const mg = backward(model, fwd, batch, masks, { ...pass, lossScale: 1 });
  const L = c.numLayers, B = batch.B;
  const H = c.numHeads, F = c.intermediateSize;
  const per = B * (H + F);
  const packed = gpu.empty([L * per]);
  for (let l = 0; l < L; l++) {
    if (mg.head[l]) gpu.copy(mg.head[l]!, packed, 0, l * per);
    if (mg.ffn[l]) gpu.copy(mg.ffn[l]!, packed, 0, l * per + B * H);
  }
  const host = await packed.read();
  packed.release();
  mg.release();
  fwd.release();
  masks.release();
  batch.release();
  const head: Float32Array[] = [], ffn: Float32Array[] = [];
  for (let l = 0; l < L; l++) {
    head.push(host.subarray(l * per, l * per + B * H));
    ffn.push(host.subarray(l * per + B * H, (l + 1) * per));
  }
  return { head, ffn };
}

function softmax(row: ArrayLike<number>): Float64Array {
  let m = -Infinity;
  for (let i = 0; i < row.length; i++) m = Math.max(m, row[i]);
  const p = new Float64Array(row.length);
  let s = 0;
  for (let i = 0; i < row.length; i++) s += p[i] = Math.exp(row[i] - m);
  for (let i = 0; i < row.length; i++) p[i] /= s;
  return p;
}

/**
 * Collects the Fisher information over `batches` (the sample set, already batched with dynamic
 * padding). One forward and one backward per batch (label-free classification: one per class).
 */
export async function collectFisher(
  model: Model,
  batches: ModelInput[],
  o: FisherOptions = {},
): Promise<FisherResult> {
  const { L, H, F } = requireUniform(model);
  const c = model.config;
  const group = o.groupSize ?? 1;
  if (!Number.isInteger(group) || group < 1) {
    throw new InvalidArgumentError(`groupSize must be a positive integer, got ${group}`);
  }
  if (group > 1 && o.labelFree) {
    throw new InvalidArgumentError("groupSize > 1 (batch-mean Fisher) needs the labelled loss");
  }
  const total = batches.reduce((s, b) => s + b.size, 0);
  if (total === 0) {
    throw new InvalidArgumentError("the sample set is empty: give at least one example");
  }
  const keepRows = o.keepRows ?? true;
  const headI = new Float64Array(L * H), ffnI = new Float64Array(L * F);
  const headRows: number[][] = Array.from({ length: L }, () => []);
  const ffnRows: number[][] = Array.from({ length: L }, () => []);
  let rows = 0, done = 0;
  const rng = new Pcg32(o.seed ?? 0);
  // group accumulators
  let gHead = Array.from({ length: L }, () => new Float64Array(H));
  let gFfn = Array.from({ length: L }, () => new Float64Array(F));
  let inGroup = 0;
  const emit = (
    hRow: (l: number) => ArrayLike<number>,
    fRow: (l: number) => ArrayLike<number>,
    weight = 1,
  ) => {
    const sw = Math.sqrt(weight);
    for (let l = 0; l < L; l++) {
      const h = hRow(l), f = fRow(l);
      for (let j = 0; j < H; j++) {
        if (!Number.isFinite(h[j])) {
          throw new NonFiniteGradientError(
            `head gradient of layer ${l} is not finite: check the checkpoint and inputs`,
          );
        }
        headI[l * H + j] += weight * h[j] * h[j];
        if (keepRows) headRows[l].push(sw * h[j]);
      }
      for (let j = 0; j < F; j++) {
        if (!Number.isFinite(f[j])) {
          throw new NonFiniteGradientError(
            `FFN gradient of layer ${l} is not finite: check the checkpoint and inputs`,
          );
        }
        ffnI[l * F + j] += weight * f[j] * f[j];
        if (keepRows) ffnRows[l].push(sw * f[j]);
      }
    }
    rows++;
  };
  const addExample = (g: { head: Float32Array[]; ffn: Float32Array[] }, b: number, weight = 1) => {
    if (group === 1) {
      emit(
        (l) => g.head[l].subarray(b * H, (b + 1) * H),
        (l) => g.ffn[l].subarray(b * F, (b + 1) * F),
        weight,
      );
      return;
    }
    // official code: gradient of the group's mean loss
    for (let l = 0; l < L; l++) {
      for (let j = 0; j < H; j++) gHead[l][j] += g.head[l][b * H + j] / group;
      for (let j = 0; j < F; j++) gFfn[l][j] += g.ffn[l][b * F + j] / group;
    }
    if (++inGroup === group) flushGroup();
  };
  const flushGroup = () => {
    if (inGroup === 0) return;
    const gh = gHead, gf = gFfn;
    emit((l) => gh[l], (l) => gf[l]);
    gHead = Array.from({ length: L }, () => new Float64Array(H));
    gFfn = Array.from({ length: L }, () => new Float64Array(F));
    inGroup = 0;
  };
  const qaMaskPads = o.qaMaskPads ?? true;
  for (const input of batches) {
    if (!o.labelFree) {
      if (c.head === "classification" && !input.labels) {
        throw new InvalidArgumentError(
          "the labelled Fisher needs labels: give labelled data or use labelFree",
        );
      }
      if (c.head === "regression" && !input.targets) {
        throw new InvalidArgumentError(
          "the labelled Fisher needs regression targets: give labelled data or use labelFree",
        );
      }
      if (c.head === "qa" && !(input.startPositions && input.endPositions)) {
        throw new InvalidArgumentError(
          "the labelled Fisher needs answer positions: give labelled data or use labelFree",
        );
      }
      const g = await perExampleGrads(model, input, qaMaskPads, o.teacherTargets);
      for (let b = 0; b < input.size; b++) addExample(g, b);
    } else {
      await labelFreeBatch(model, input, qaMaskPads, rng, addExample, o.teacherTargets);
    }
    done += input.size;
    o.onProgress?.(done, total);
  }
  flushGroup();
  return {
    head: headI,
    ffn: ffnI,
    headRows: keepRows ? headRows.map((r) => Float32Array.from(r)) : undefined,
    ffnRows: keepRows ? ffnRows.map((r) => Float32Array.from(r)) : undefined,
    rows,
    examples: total,
    L,
    H,
    F,
  };
}

/** Expected-Fisher contributions of one batch (§11.1). */
async function labelFreeBatch(
  model: Model,
  input: ModelInput,
  qaMaskPads: boolean,
  rng: Pcg32,
  addExample: (
    g: { head: Float32Array[]; ffn: Float32Array[] },
    b: number,
    weight?: number,
  ) => void,
  teacher?: TeacherTargets,
): Promise<void> {
  const c = model.config;
  const B = input.size, S = input.seqLen;
  // predictions of the unpruned model
  const probe = await perExampleGradsNoLabels(model, input);
  if (c.head === "classification") {
    for (let k = 0; k < c.numLabels; k++) {
      const labels = new Int32Array(B).fill(k);
      // the forward is the same for every class: its sums are recorded once
      const g = await perExampleGrads(
        model,
        { ...input, labels },
        qaMaskPads,
        k === 0 ? teacher : undefined,
      );
      for (let b = 0; b < B; b++) {
        const p = softmax(probe.logits!.subarray(b * c.numLabels, (b + 1) * c.numLabels));
        addExample(g, b, p[k]);
      }
    }
  } else if (c.head === "regression") {
    // (∂f/∂m)²: with target f − ½, ∂(f − y)²/∂m = ∂f/∂m
    const targets = Float32Array.from(probe.logits!, (v) => v - 0.5);
    const g = await perExampleGrads(model, { ...input, targets }, qaMaskPads, teacher);
    for (let b = 0; b < B; b++) addExample(g, b);
  } else {
    // sample start/end from the model's own distribution over real positions (seeded)
    const sp = new Int32Array(B), ep = new Int32Array(B);
    for (let b = 0; b < B; b++) {
      const draw = (logits: Float32Array) => {
        const row = Array.from(
          logits.subarray(b * S, (b + 1) * S),
          (v, s) => input.attentionMask[b * S + s] ? v : -Infinity,
        );
        const p = softmax(row);
        let u = rng.nextU32() / 2 ** 32, s = 0;
        for (; s < S - 1; s++) {
          u -= p[s];
          if (u < 0) break;
        }
        return s;
      };
      sp[b] = draw(probe.start!);
      ep[b] = draw(probe.end!);
    }
    const g = await perExampleGrads(
      model,
      { ...input, startPositions: sp, endPositions: ep },
      qaMaskPads,
      teacher,
    );
    for (let b = 0; b < B; b++) addExample(g, b);
  }
}

async function perExampleGradsNoLabels(
  model: Model,
  input: ModelInput,
): Promise<{ logits?: Float32Array; start?: Float32Array; end?: Float32Array }> {
  const batch = uploadBatch(model.gpu, model.config, {
    ...input,
    labels: undefined,
    targets: undefined,
  });
  const fwd = forward(model, batch, undefined, { clsOnlyLastLayer: true });
  const read = async (t?: Tensor) => (t ? await t.read() : undefined);
  const r = {
    logits: await read(fwd.logits),
    start: await read(fwd.start),
    end: await read(fwd.end),
  };
  fwd.release();
  batch.release();
  return r;
}
