/**
 * fastprune — retraining-free structured pruning of BERT-family Transformers on WebGPU.
 * This module re-exports the public API; see README.md.
 * @module
 */
export * from "./lib/errors.ts";
export * from "./lib/gpu/mod.ts";
