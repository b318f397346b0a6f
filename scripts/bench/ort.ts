/**
 * onnxruntime-node (CPU execution provider) as the reference peer of the matmul bench. The model
 * is one ONNX `Gemm` node with transA/transB attributes and both operands as graph inputs (so
 * ORT does the whole product every run); it is protobuf-encoded here by hand to avoid a
 * dependency on the `onnx` Python package.
 * @module
 */
import process from "node:process";
import { median, type Timing } from "./common.ts";

const ORT_SPEC = "npm:onnxruntime-node@1.20.1";

/** Protobuf writer for the handful of ONNX fields the Gemm model needs. */
class Pb {
  bytes: number[] = [];
  varint(v: number): this {
    while (v > 0x7f) {
      this.bytes.push((v & 0x7f) | 0x80);
      v = Math.floor(v / 128);
    }
    this.bytes.push(v);
    return this;
  }
  int(field: number, v: number): this {
    return this.varint(field << 3).varint(v);
  }
  bytesField(field: number, data: number[] | Uint8Array): this {
    this.varint((field << 3) | 2).varint(data.length);
    this.bytes.push(...data);
    return this;
  }
  str(field: number, s: string): this {
    return this.bytesField(field, new TextEncoder().encode(s));
  }
  msg(field: number, m: Pb): this {
    return this.bytesField(field, m.bytes);
  }
}

function valueInfo(name: string, shape: readonly number[]): Pb {
  const dims = new Pb();
  for (const d of shape) dims.msg(1, new Pb().int(1, d));
  const tensorType = new Pb().int(1, 1 /* FLOAT */).msg(2, dims);
  return new Pb().str(1, name).msg(2, new Pb().msg(1, tensorType));
}

/** Bytes of an ONNX model computing Y = op(A)·op(B) with a single Gemm node (opset 13). */
export function gemmModel(
  aShape: readonly number[],
  bShape: readonly number[],
  yShape: readonly number[],
  transA: boolean,
  transB: boolean,
): Uint8Array {
  const node = new Pb().str(1, "A").str(1, "B").str(2, "Y").str(4, "Gemm");
  node.msg(5, new Pb().str(1, "transA").int(3, transA ? 1 : 0).int(20, 2 /* INT */));
  node.msg(5, new Pb().str(1, "transB").int(3, transB ? 1 : 0).int(20, 2));
  const graph = new Pb().msg(1, node).str(2, "gemm");
  graph.msg(11, valueInfo("A", aShape)).msg(11, valueInfo("B", bShape));
  graph.msg(12, valueInfo("Y", yShape));
  const model = new Pb().int(1, 8 /* ir_version */).str(2, "fastprune-bench");
  model.msg(7, graph).msg(8, new Pb().str(1, "").int(2, 13));
  return new Uint8Array(model.bytes);
}

/** A loaded onnxruntime-node module, or the reason it could not be loaded. */
export type OrtModule = { ok: true; ort: typeof import("npm:onnxruntime-node@1.20.1") } | {
  ok: false;
  reason: string;
};

/** Imports onnxruntime-node; returns the reason instead of throwing when it cannot run. */
export async function loadOrt(): Promise<OrtModule> {
  try {
    const ort = await import(ORT_SPEC);
    return { ok: true, ort };
  } catch (e) {
    return { ok: false, reason: `${ORT_SPEC} could not be loaded under Deno: ${e}` };
  }
}

/**
 * Median wall and process-CPU milliseconds of one ORT Gemm run on the given shapes (CPU EP,
 * `threads` intra-op threads, sequential execution), after one warm-up run.
 */
export async function timeOrtGemm(
  ort: typeof import("npm:onnxruntime-node@1.20.1"),
  a: Float32Array,
  aShape: readonly number[],
  b: Float32Array,
  bShape: readonly number[],
  yShape: readonly number[],
  transA: boolean,
  transB: boolean,
  repeats: number,
  threads: number,
): Promise<Timing> {
  const session = await ort.InferenceSession.create(
    gemmModel(aShape, bShape, yShape, transA, transB),
    {
      executionProviders: ["cpu"],
      intraOpNumThreads: threads,
      interOpNumThreads: 1,
      executionMode: "sequential",
      graphOptimizationLevel: "all",
    },
  );
  const feeds = {
    A: new ort.Tensor("float32", a, [...aShape]),
    B: new ort.Tensor("float32", b, [...bShape]),
  };
  await session.run(feeds);
  const ms: number[] = [];
  const cpu: number[] = [];
  for (let r = 0; r < repeats; r++) {
    const c0 = process.cpuUsage();
    const t0 = performance.now();
    await session.run(feeds);
    ms.push(performance.now() - t0);
    const c = process.cpuUsage(c0);
    cpu.push((c.user + c.system) / 1000);
  }
  await session.release();
  return { ms: median(ms), cpuMs: median(cpu) };
}
