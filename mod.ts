/**
 * fastprune — retraining-free structured pruning of BERT-family Transformers on WebGPU
 * (Kwon et al. 2022, "A Fast Post-Training Pruning Framework for Transformers"), with every
 * tensor operation hand-written in WGSL. This module re-exports the public API; see README.md.
 *
 * ```ts
 * import { loadCheckpoint, prune } from "https://…/mod.ts";
 * ```
 * @module
 */
export * from "./lib/errors.ts";
export * from "./lib/gpu/mod.ts";

// model: configuration, checkpoints, GPU model, passes
export {
  type Arch,
  configToJson,
  type EncoderConfig,
  makeConfig,
  parseConfig,
  type TaskHead,
} from "./lib/model/config.ts";
export { parseSafetensors, serializeSafetensors } from "./lib/model/safetensors.ts";
export { parseTorchCheckpoint } from "./lib/model/torch_bin.ts";
export {
  type HostCheckpoint,
  readCheckpoint,
  writeCheckpoint,
  type WriteOptions,
} from "./lib/model/checkpoint.ts";
export { hfCompatibleLayout } from "./lib/model/hf_layout.ts";
export {
  expectedShapes,
  fromHfNames,
  type HostTensor,
  toHfNames,
  type Weights,
} from "./lib/model/weights.ts";
export { randomWeights } from "./lib/model/random.ts";
export {
  createRandomModel,
  downloadNamed,
  downloadWeights,
  loadCheckpoint,
  Model,
  saveCheckpoint,
  uploadModel,
} from "./lib/model/model.ts";
export {
  type BatchTensors,
  type MaskValues,
  type ModelInput,
  uploadBatch,
  uploadMasks,
} from "./lib/model/inputs.ts";
export {
  backward,
  forward,
  type ForwardResult,
  type MaskGrads,
  runModel,
  type RunResult,
} from "./lib/model/run.ts";
export type { Grads } from "./lib/model/encoder.ts";

// text, data, metrics, evaluation
export { loadTokenizer, WordPieceTokenizer } from "./lib/text/wordpiece.ts";
export { type Batch, type Encoded, encodeGlue, makeBatches } from "./lib/data/batch.ts";
export { GLUE_TASKS, type GlueExample, parseGlue, readGlue } from "./lib/data/glue.ts";
export {
  byArticleSplit,
  postprocessQaPredictions,
  prepareSquadFeatures,
  readSquad,
  squadExamples,
} from "./lib/data/squad.ts";
export { defaultMaxLength, loadTask, TASK_NAMES, type TaskData } from "./lib/data/tasks.ts";
export { glueMetric } from "./lib/metrics/glue.ts";
export { squadV1, squadV2 } from "./lib/metrics/squad.ts";
export { type EvalResult, evaluate, mainMetricName } from "./lib/eval/evaluate.ts";
export { Pcg32, sampleIndices, sampleWithReplacement } from "./lib/util/pcg32.ts";

// pruning
export { collectFisher, type FisherOptions, type FisherResult } from "./lib/prune/fisher.ts";
export {
  countFlops,
  countMacs,
  macPerHead,
  macPerNeuron,
  TASK_SEQ_LEN,
} from "./lib/prune/flops.ts";
export { searchFlops } from "./lib/prune/search_flops.ts";
export { fitPiecewise, type LatencyTable, searchLatency } from "./lib/prune/search_latency.ts";
export {
  measureLatencyTable,
  measureModelLatencies,
  measureModelLatency,
} from "./lib/prune/latency.ts";
export { rearrangeLayer } from "./lib/prune/rearrange.ts";
export { solveMaskLs } from "./lib/prune/lsq.ts";
export { tuneMasks, type TuneOptions, type TuneResult } from "./lib/prune/tune.ts";
export {
  inputFingerprint,
  TEACHER_TARGETS_MAX_BYTES,
  TeacherTargets,
} from "./lib/prune/teacher.ts";
export {
  type CompactionPlan,
  compactModel,
  compactWeights,
  parameterCount,
} from "./lib/prune/compact.ts";
export {
  type Budget,
  kwonCodeOptions,
  prune,
  type PruneOptions,
  type PruneReport,
  type PruneResult,
  rearrangeMasks,
} from "./lib/prune/pipeline.ts";
export { ConstraintTooSmallError, type MaskSet, type ModelDims } from "./lib/prune/types.ts";
