/**
 * `deno task forward --model DIR|URL --input in.json [--out out.json]`: runs a checkpoint on a JSON
 * batch and writes logits, losses and per-example mask gradients (a debugging and cross-checking
 * tool). Input keys: input_ids [B][S], optional attention_mask, token_type_ids, labels (or
 * start_positions/end_positions, or float labels for regression), head_mask/ffn_mask as [L][n_l]
 * (shared) or [B][L][n_l] (per example).
 * @module
 */
import { parseArgs } from "node:util";
import { InvalidArgumentError } from "../lib/errors.ts";
import { loadCheckpoint } from "../lib/model/model.ts";
import type { EncoderConfig } from "../lib/model/config.ts";
import type { MaskValues, ModelInput } from "../lib/model/inputs.ts";
import { runModel } from "../lib/model/run.ts";
import { runCli } from "./cli.ts";

const USAGE = "usage: deno task forward --model DIR|URL --input in.json [--out out.json]";

function matrix(name: string, v: unknown, B: number, S: number, integer = true): number[] {
  if (!Array.isArray(v) || v.length !== B) {
    throw new InvalidArgumentError(`${name} must be an array of ${B} rows`);
  }
  const out: number[] = [];
  v.forEach((row, b) => {
    if (!Array.isArray(row) || row.length !== S) {
      throw new InvalidArgumentError(
        `${name}[${b}] must have ${S} values (ragged arrays are not allowed)`,
      );
    }
    for (const x of row) {
      if (typeof x !== "number" || !Number.isFinite(x) || (integer && !Number.isInteger(x))) {
        throw new InvalidArgumentError(
          `${name}[${b}] holds a non-${integer ? "integer" : "number"} value ${x}`,
        );
      }
      out.push(x);
    }
  });
  return out;
}

function vector(name: string, v: unknown, B: number, integer: boolean): number[] {
  if (!Array.isArray(v) || v.length !== B) {
    throw new InvalidArgumentError(`${name} must have ${B} values`);
  }
  for (const x of v) {
    if (typeof x !== "number" || !Number.isFinite(x) || (integer && !Number.isInteger(x))) {
      throw new InvalidArgumentError(`${name} holds an invalid value ${x}`);
    }
  }
  return v as number[];
}

/** Parses and validates the JSON input against the model config. */
export function parseForwardInput(
  json: unknown,
  c: EncoderConfig,
): { input: ModelInput; masks: MaskValues } {
  if (typeof json !== "object" || json === null) {
    throw new InvalidArgumentError("input must be a JSON object");
  }
  const j = json as Record<string, unknown>;
  const ids = j.input_ids;
  if (!Array.isArray(ids) || ids.length === 0 || !Array.isArray(ids[0])) {
    throw new InvalidArgumentError("input_ids must be a non-empty [B][S] array");
  }
  const B = ids.length, S = (ids[0] as unknown[]).length;
  const input: ModelInput = {
    size: B,
    seqLen: S,
    inputIds: Int32Array.from(matrix("input_ids", ids, B, S)),
    attentionMask: j.attention_mask === undefined
      ? new Int32Array(B * S).fill(1)
      : Int32Array.from(matrix("attention_mask", j.attention_mask, B, S)),
    tokenTypeIds: j.token_type_ids === undefined
      ? undefined
      : Int32Array.from(matrix("token_type_ids", j.token_type_ids, B, S)),
  };
  if (c.head === "qa") {
    if ((j.start_positions === undefined) !== (j.end_positions === undefined)) {
      throw new InvalidArgumentError("give both start_positions and end_positions, or neither");
    }
    if (j.start_positions !== undefined) {
      input.startPositions = Int32Array.from(vector("start_positions", j.start_positions, B, true));
      input.endPositions = Int32Array.from(vector("end_positions", j.end_positions, B, true));
      for (const p of [...input.startPositions, ...input.endPositions]) {
        if (p < 0) throw new InvalidArgumentError(`QA positions must be ≥ 0, got ${p}`);
      }
    }
  } else if (j.labels !== undefined) {
    if (c.head === "regression") {
      input.targets = Float32Array.from(vector("labels", j.labels, B, false));
    } else input.labels = Int32Array.from(vector("labels", j.labels, B, true));
  }
  const masks: MaskValues = {};
  for (const kind of ["head", "ffn"] as const) {
    const v = j[`${kind}_mask`];
    if (v === undefined) continue;
    if (!Array.isArray(v)) throw new InvalidArgumentError(`${kind}_mask must be an array`);
    const perExample = v.length > 0 && Array.isArray(v[0]) && Array.isArray((v[0] as unknown[])[0]);
    if (perExample) {
      if (v.length !== B) {
        throw new InvalidArgumentError(`${kind}_mask given per example must have ${B} entries`);
      }
      masks.perExample = true;
    } else if (masks.perExample) {
      throw new InvalidArgumentError(
        "head_mask and ffn_mask must both be shared or both per example",
      );
    }
    masks[kind] = v as number[][];
  }
  if (masks.perExample && (masks.head === undefined) !== (masks.ffn === undefined)) {
    // the missing one is all ones and shared: expand it
    const kind = masks.head === undefined ? "head" : "ffn";
    const widths = kind === "head" ? c.layerHeads.map((h) => h.length) : c.layerFfn;
    masks[kind] = Array.from({ length: B }, () => widths.map((w) => new Array(w).fill(1)));
  }
  return { input, masks };
}

/** HF's batch loss from logits, in float64 on the host. */
function hfLoss(
  c: EncoderConfig,
  input: ModelInput,
  r: Awaited<ReturnType<typeof runModel>>,
): number {
  const logSoftmaxAt = (row: number[], k: number) => {
    const m = Math.max(...row);
    const lse = m + Math.log(row.reduce((s, x) => s + Math.exp(x - m), 0));
    return row[k] - lse;
  };
  if (c.head === "qa") {
    const S = input.seqLen;
    const side = (logits: number[][], pos: Int32Array) => {
      let sum = 0, n = 0;
      pos.forEach((p0, b) => {
        const p = Math.min(Math.max(p0, 0), S);
        if (p === S) return;
        sum -= logSoftmaxAt(logits[b], p);
        n++;
      });
      return n > 0 ? sum / n : 0;
    };
    return (side(r.startLogits!, input.startPositions!) + side(r.endLogits!, input.endPositions!)) /
      2;
  }
  if (c.head === "regression") {
    return r.logits!.reduce((s, row, b) => s + (row[0] - input.targets![b]) ** 2, 0) / input.size;
  }
  let sum = 0, n = 0;
  input.labels!.forEach((y, b) => {
    if (y === -100) return;
    sum -= logSoftmaxAt(r.logits![b], y);
    n++;
  });
  return n > 0 ? sum / n : 0;
}

if (import.meta.main) {
  await runCli(async () => {
    const { values } = parseArgs({
      args: Deno.args,
      options: { model: { type: "string" }, input: { type: "string" }, out: { type: "string" } },
    });
    if (!values.model || !values.input) throw new InvalidArgumentError(USAGE);
    let json: unknown;
    try {
      json = JSON.parse(await Deno.readTextFile(values.input));
    } catch (e) {
      throw new InvalidArgumentError(`cannot read ${values.input}: ${(e as Error).message}`);
    }
    const model = await loadCheckpoint(values.model);
    const { input, masks } = parseForwardInput(json, model.config);
    const r = await runModel(model, input, { masks });
    const out: Record<string, unknown> = {};
    if (r.logits) out.logits = r.logits;
    if (r.startLogits) out.start_logits = r.startLogits;
    if (r.endLogits) out.end_logits = r.endLogits;
    if (r.perExampleLoss) {
      out.loss = hfLoss(model.config, input, r);
      out.per_example_loss = r.perExampleLoss;
      out.head_mask_grad = r.headMaskGrad;
      out.ffn_mask_grad = r.ffnMaskGrad;
      const fisher = (g: number[][][]) =>
        g[0].map((layer, l) => layer.map((_, u) => g.reduce((s, ex) => s + ex[l][u] ** 2, 0)));
      out.head_fisher = fisher(r.headMaskGrad!);
      out.ffn_fisher = fisher(r.ffnMaskGrad!);
    }
    const text = JSON.stringify(out);
    if (values.out) {
      const tmp = `${values.out}.tmp-${Deno.pid}`;
      await Deno.writeTextFile(tmp, text);
      await Deno.rename(tmp, values.out);
      console.error(`wrote ${values.out}`);
    } else console.log(text);
  }, USAGE);
}
