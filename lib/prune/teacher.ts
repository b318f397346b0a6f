/**
 * The full teacher's mask-tuning targets recorded during the Fisher pass. Mask tuning with the
 * unpruned model as teacher (METHOD.md §6, `teacher: "full"`) needs, per layer and sample batch,
 * the teacher's pre-LN₁ and pre-LN₂ sums; the Fisher pass (§3) computes exactly these — it runs the
 * unpruned model (all masks 1, no dropout) forward on the same batches before its backward — so
 * keeping copies of them spares tuning one whole forward pass of the unpruned model. The copies
 * are [B·S, d] per batch, layer and sum; past `maxBytes` in all, recording stops, what was kept is
 * released and tuning recomputes the teacher as before (`complete` is false).
 * @module
 */
import { InvalidArgumentError } from "../errors.ts";
import type { Tensor } from "../gpu/tensor.ts";
import type { LayerState } from "../model/encoder.ts";
import type { ModelInput } from "../model/inputs.ts";
import { selectRowsBackward } from "../ops/rows.ts";

/**
 * FNV-1a (one step per 32-bit value) over a batch's shape, token ids, types and attention mask:
 * what the forward reads.
 */
export function inputFingerprint(x: ModelInput): number {
  let h = 0x811c9dc5;
  const mix = (v: number) => (h = Math.imul(h ^ v, 0x01000193));
  mix(x.size);
  mix(x.seqLen);
  for (const a of [x.inputIds, x.attentionMask, x.tokenTypeIds ?? new Int32Array(0)]) {
    mix(a.length);
    for (let i = 0; i < a.length; i++) mix(a[i]);
  }
  return h >>> 0;
}

/**
 * Default cap (bytes) on the recorded targets, which take 2 · layers · tokens · d · 4 bytes (by that
 * formula about 0.3 GB for the zoo's BERT — 4 layers, d = 128 — on 2048 SST-2 samples padded to
 * ~35 tokens, and 10 GB for BERT-base on 2048 samples of 64 tokens, which then recomputes its
 * teacher).
 */
export const TEACHER_TARGETS_MAX_BYTES = 1 << 30;

/** Per-batch, per-layer copies of the full teacher's pre-LN sums, filled by `collectFisher`. */
export class TeacherTargets {
  /** sum1[batch][layer]: the pre-LN₁ sum X + MHA(X) [B·S, d]. */
  readonly sum1: Tensor[][] = [];
  /** sum2[batch][layer]: the pre-LN₂ sum U + FFN(U) [B·S, d]. */
  readonly sum2: Tensor[][] = [];
  /** Per batch: `inputFingerprint` of the input the sums were recorded on. */
  readonly inputs: number[] = [];
  readonly #maxBytes: number;
  #bytes = 0;
  #overflow = false;

  /** `maxBytes`: the most GPU memory the copies may take (default `TEACHER_TARGETS_MAX_BYTES`). */
  constructor(maxBytes = TEACHER_TARGETS_MAX_BYTES) {
    this.#maxBytes = maxBytes;
  }

  /** Batches recorded (0 after an overflow). */
  get batches(): number {
    return this.sum1.length;
  }

  /** Whether recording overflowed `maxBytes` (then nothing is kept). */
  get overflowed(): boolean {
    return this.#overflow;
  }

  /** Whether the targets of exactly `batches` batches are held. */
  complete(batches: number): boolean {
    return !this.#overflow && this.sum1.length === batches;
  }

  /**
   * Whether the targets were recorded on exactly these batches (same inputs, same order): the
   * targets of other samples must not be used.
   */
  matches(batches: ModelInput[]): boolean {
    return this.complete(batches.length) &&
      batches.every((x, b) => this.inputs[b] === inputFingerprint(x));
  }

  /**
   * Records the pre-LN sums of the layers of one batch's saving forward pass on `input` (batch
   * index = the order of the calls); copies them, so the pass may release its state. Recorded, not
   * submitted.
   */
  record(layers: LayerState[], input: ModelInput): void {
    if (this.#overflow) return;
    const rows = input.size * input.seqLen;
    if (layers.some((st) => st.clsRows && !st.clsFfnOnly)) {
      throw new InvalidArgumentError(
        "teacher targets need every row's pre-LN₁ sum: record a pass without clsOnlyLastLayer, " +
          'or with clsOnlyLastLayer: "ffn"',
      );
    }
    const need = layers.reduce((n, st) => n + 8 * rows * st.sum1.shape[1], 0);
    if (this.#bytes + need > this.#maxBytes) {
      this.release();
      this.#overflow = true;
      return;
    }
    this.#bytes += need;
    const copy = (t: Tensor) => {
      const c = t.gpu.empty(t.shape);
      t.gpu.copy(t, c);
      return c;
    };
    this.sum1.push(layers.map((st) => copy(st.sum1)));
    // a [CLS]-only FFN's sum as tuning reads it: [B·S, d], zero but at [CLS] (the only rows a
    // classifier's last FFN is tuned on)
    this.sum2.push(
      layers.map((st) =>
        st.clsRows ? selectRowsBackward(st.sum2, st.clsRows, rows) : copy(st.sum2)
      ),
    );
    this.inputs.push(inputFingerprint(input));
  }

  /** Releases every copy still held (tuning releases those it used layer by layer). */
  release(): void {
    for (const t of [...this.sum1.flat(), ...this.sum2.flat()]) if (!t.released) t.release();
    this.sum1.length = 0;
    this.sum2.length = 0;
    this.inputs.length = 0;
    this.#bytes = 0;
  }
}
