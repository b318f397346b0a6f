/**
 * safetensors reading and writing (https://github.com/huggingface/safetensors format): an 8-byte
 * little-endian header length N, N bytes of JSON header, then the tensor bytes. Reading validates
 * like the reference implementation and converts F32/F16/BF16 to f32; writing emits F32 or F16.
 * @module
 */
import { FileFormatError, InvalidArgumentError } from "../errors.ts";
import type { HostTensor } from "./weights.ts";

/** Floating dtypes fastprune converts to f32 when reading. */
export type Dtype = "F32" | "F16" | "BF16";

/** Largest accepted header, as in the reference implementation (100 MB). */
export const MAX_HEADER_BYTES = 100_000_000;

/** Bytes per element of every dtype the format defines (sub-byte types are not accepted). */
const DTYPE_BYTES: Record<string, number> = {
  BOOL: 1,
  U8: 1,
  I8: 1,
  F8_E5M2: 1,
  F8_E4M3: 1,
  F8_E8M0: 1,
  I16: 2,
  U16: 2,
  F16: 2,
  BF16: 2,
  I32: 4,
  U32: 4,
  F32: 4,
  F64: 8,
  I64: 8,
  U64: 8,
}; // deno-fmt-ignore

/**
 * Integer and boolean dtypes. Tensors of these types are buffers (e.g. `position_ids`), never
 * parameters of the models fastprune loads: they are validated and then skipped.
 */
const SKIPPED_DTYPES = new Set(["BOOL", "U8", "I8", "I16", "U16", "I32", "U32", "I64", "U64"]);

let f16Table: Float32Array | undefined;

/** Lookup table of all 65536 half-precision values as f32 (subnormals, ±inf and NaN included). */
function halfTable(): Float32Array {
  if (f16Table) return f16Table;
  const t = new Float32Array(65536);
  const bits = new Uint32Array(t.buffer);
  for (let h = 0; h < 65536; h++) {
    const sign = (h & 0x8000) << 16;
    const exp = (h >> 10) & 0x1f;
    const mant = h & 0x3ff;
    if (exp === 0x1f) bits[h] = sign | 0x7f800000 | (mant << 13);
    else if (exp === 0) t[h] = (sign ? -1 : 1) * mant * 2 ** -24;
    else bits[h] = sign | ((exp + 112) << 23) | (mant << 13);
  }
  f16Table = t;
  return t;
}

/** Converts IEEE half-precision bit patterns to f32 (exact: every half is an f32). */
export function f16ToF32(half: Uint16Array): Float32Array {
  const t = halfTable();
  const out = new Float32Array(half.length);
  for (let i = 0; i < half.length; i++) out[i] = t[half[i]];
  return out;
}

const cvtF32 = new Float32Array(1);
const cvtU32 = new Uint32Array(cvtF32.buffer);

/** Rounds one f32 to the nearest half-precision bit pattern (ties to even; overflow → ±inf). */
export function f32ToF16Bits(x: number): number {
  cvtF32[0] = x;
  const b = cvtU32[0];
  const sign = (b >>> 16) & 0x8000;
  const exp = (b >>> 23) & 0xff;
  const mant = b & 0x7fffff;
  if (exp === 0xff) return sign | 0x7c00 | (mant ? 0x200 | (mant >>> 13) : 0);
  const e = exp - 112; // rebias 127 → 15
  if (e >= 31) return sign | 0x7c00;
  let h: number;
  let rem: number;
  let half: number;
  if (e <= 0) {
    if (e < -10) return sign; // below half the smallest subnormal
    const m = mant | 0x800000;
    const shift = 14 - e; // 14..24
    h = m >>> shift;
    rem = m & ((1 << shift) - 1);
    half = 1 << (shift - 1);
  } else {
    h = (e << 10) | (mant >>> 13);
    rem = mant & 0x1fff;
    half = 0x1000;
  }
  if (rem > half || (rem === half && (h & 1))) h++; // carries into the exponent correctly
  return sign | h;
}

function fail(source: string, what: string): never {
  throw new FileFormatError(`${source}: not a valid safetensors file: ${what}`);
}

interface Entry {
  name: string;
  dtype: string;
  shape: number[];
  begin: number;
  end: number;
}

/**
 * Parses a safetensors file. Validates like the reference implementation: header length N ≤ 100 MB
 * and 8 + N ≤ file size (checked before anything is decoded), a well-formed JSON object header,
 * every entry with a known `dtype`, integer `shape` and `data_offsets`, byte count = product(shape)
 * · element size, and tensors contiguous, non-overlapping and exactly covering the data. F32, F16
 * and BF16 tensors are returned as f32 (with their original `dtype`); integer/bool tensors (buffers
 * such as `position_ids`) are validated, left out and listed in `skipped`; other dtypes (F64, F8…)
 * raise FileFormatError naming the tensor. Every problem raises FileFormatError naming `source`.
 */
export function parseSafetensors(bytes: Uint8Array, source = "model.safetensors"): {
  tensors: Map<string, HostTensor & { dtype: string }>;
  metadata: Record<string, string>;
  skipped: string[];
} {
  if (bytes.length < 8) {
    fail(source, `file is ${bytes.length} bytes, shorter than the 8-byte header`);
  }
  const view = new DataView(bytes.buffer, bytes.byteOffset, bytes.byteLength);
  const n64 = view.getBigUint64(0, true);
  if (n64 > BigInt(MAX_HEADER_BYTES)) {
    fail(source, `header length ${n64} is over the ${MAX_HEADER_BYTES}-byte limit`);
  }
  const n = Number(n64);
  if (8 + n > bytes.length) {
    fail(source, `header length ${n} runs past the end of the ${bytes.length}-byte file`);
  }
  let header: unknown;
  try {
    const text = new TextDecoder("utf-8", { fatal: true }).decode(bytes.subarray(8, 8 + n));
    if (!text.startsWith("{")) fail(source, "header does not start with '{'");
    header = JSON.parse(text);
  } catch (e) {
    if (e instanceof FileFormatError) throw e;
    fail(source, `header is not valid UTF-8 JSON (${(e as Error).message})`);
  }
  if (typeof header !== "object" || header === null || Array.isArray(header)) {
    fail(source, "header is not a JSON object");
  }
  const metadata: Record<string, string> = {};
  const entries: Entry[] = [];
  for (const [name, info] of Object.entries(header as Record<string, unknown>)) {
    if (name === "__metadata__") {
      if (typeof info !== "object" || info === null || Array.isArray(info)) {
        fail(source, "__metadata__ is not an object");
      }
      for (const [k, v] of Object.entries(info)) {
        if (typeof v !== "string") fail(source, `__metadata__["${k}"] is not a string`);
        metadata[k] = v;
      }
      continue;
    }
    entries.push(checkEntry(source, name, info));
  }
  const dataLength = bytes.length - 8 - n;
  entries.sort((a, b) => a.begin - b.begin || a.end - b.end);
  let expected = 0;
  for (const e of entries) {
    if (e.begin !== expected) {
      fail(
        source,
        `tensor "${e.name}" starts at byte ${e.begin} but the previous tensor ends at ${expected}` +
          (e.begin < expected ? " (overlap)" : " (gap)"),
      );
    }
    if (e.end > dataLength) {
      fail(source, `tensor "${e.name}" ends at byte ${e.end}, past the ${dataLength} data bytes`);
    }
    expected = e.end;
  }
  if (expected !== dataLength) {
    fail(source, `tensors cover ${expected} of ${dataLength} data bytes (trailing bytes)`);
  }
  const tensors = new Map<string, HostTensor & { dtype: string }>();
  const skipped: string[] = [];
  const base = 8 + n;
  for (const e of entries) {
    if (SKIPPED_DTYPES.has(e.dtype)) {
      skipped.push(e.name);
      continue;
    }
    if (e.dtype !== "F32" && e.dtype !== "F16" && e.dtype !== "BF16") {
      throw new FileFormatError(
        `${source}: tensor "${e.name}" has dtype ${e.dtype}; fastprune reads F32, F16 and BF16 ` +
          `(convert the checkpoint, e.g. model.float() before save_pretrained)`,
      );
    }
    const raw = bytes.subarray(base + e.begin, base + e.end);
    tensors.set(e.name, { shape: e.shape, data: decodeFloats(e.dtype, raw), dtype: e.dtype });
  }
  return { tensors, metadata, skipped };
}

function checkEntry(source: string, name: string, info: unknown): Entry {
  if (typeof info !== "object" || info === null || Array.isArray(info)) {
    fail(source, `entry "${name}" is not an object`);
  }
  const { dtype, shape, data_offsets: offsets } = info as Record<string, unknown>;
  if (typeof dtype !== "string") fail(source, `tensor "${name}" has no dtype`);
  const size = DTYPE_BYTES[dtype];
  if (size === undefined) {
    throw new FileFormatError(`${source}: tensor "${name}" has unknown dtype "${dtype}"`);
  }
  if (!Array.isArray(shape) || shape.some((s) => !Number.isSafeInteger(s) || s < 0)) {
    fail(source, `tensor "${name}" has an invalid shape ${JSON.stringify(shape)}`);
  }
  if (
    !Array.isArray(offsets) || offsets.length !== 2 ||
    offsets.some((o) => !Number.isSafeInteger(o) || o < 0) || offsets[0] > offsets[1]
  ) {
    fail(source, `tensor "${name}" has invalid data_offsets ${JSON.stringify(offsets)}`);
  }
  let count = 1;
  for (const s of shape as number[]) {
    count *= s;
    if (!Number.isSafeInteger(count * size)) fail(source, `tensor "${name}" is too large`);
  }
  const [begin, end] = offsets as number[];
  if (end - begin !== count * size) {
    fail(
      source,
      `tensor "${name}" (${dtype} [${shape.join(", ")}]) needs ${count * size} bytes ` +
        `but data_offsets [${begin}, ${end}] hold ${end - begin}`,
    );
  }
  return { name, dtype, shape: [...shape] as number[], begin, end };
}

/** Little-endian F32 / F16 / BF16 bytes (at any alignment) as f32 values. */
export function decodeFloats(dtype: Dtype, raw: Uint8Array): Float32Array {
  if (dtype === "F32") {
    const out = new Float32Array(raw.length / 4);
    new Uint8Array(out.buffer).set(raw); // byte copy: works at any alignment (little-endian host)
    return out;
  }
  const halves = new Uint16Array(raw.length / 2);
  new Uint8Array(halves.buffer).set(raw);
  if (dtype === "F16") return f16ToF32(halves);
  const out = new Float32Array(halves.length);
  const bits = new Uint32Array(out.buffer);
  for (let i = 0; i < halves.length; i++) bits[i] = halves[i] << 16;
  return out;
}

/**
 * Serializes tensors as a safetensors file, in F32 (default) or F16 (round to nearest even). The
 * header is compact JSON with `__metadata__` (if any) first and tensors in name order, padded with
 * spaces to a multiple of 8 bytes; data follows in the same order with no gaps. Raises
 * InvalidArgumentError when a tensor's data length does not match its shape.
 */
export function serializeSafetensors(
  tensors: Map<string, HostTensor>,
  o: { dtype?: "F32" | "F16"; metadata?: Record<string, string> } = {},
): Uint8Array {
  const dtype = o.dtype ?? "F32";
  if (dtype !== "F32" && dtype !== "F16") {
    throw new InvalidArgumentError(`safetensors dtype must be "F32" or "F16", got "${dtype}"`);
  }
  const size = dtype === "F32" ? 4 : 2;
  const names = [...tensors.keys()].sort((a, b) => (a < b ? -1 : a > b ? 1 : 0));
  const header: Record<string, unknown> = {};
  if (o.metadata && Object.keys(o.metadata).length > 0) header.__metadata__ = o.metadata;
  let offset = 0;
  for (const name of names) {
    const t = tensors.get(name)!;
    const count = t.shape.reduce((a, b) => a * b, 1);
    if (count !== t.data.length) {
      throw new InvalidArgumentError(
        `tensor "${name}": data length ${t.data.length} does not match shape [${
          t.shape.join(", ")
        }]`,
      );
    }
    header[name] = { dtype, shape: t.shape, data_offsets: [offset, offset + count * size] };
    offset += count * size;
  }
  let json = new TextEncoder().encode(JSON.stringify(header));
  const padded = Math.ceil(json.length / 8) * 8;
  if (padded !== json.length) {
    const p = new Uint8Array(padded).fill(0x20);
    p.set(json);
    json = p;
  }
  const out = new Uint8Array(8 + json.length + offset);
  new DataView(out.buffer).setBigUint64(0, BigInt(json.length), true);
  out.set(json, 8);
  let at = 8 + json.length;
  for (const name of names) {
    const data = tensors.get(name)!.data;
    if (dtype === "F32") {
      out.set(new Uint8Array(data.buffer, data.byteOffset, data.byteLength), at);
    } else {
      const halves = new Uint16Array(data.length);
      for (let i = 0; i < data.length; i++) halves[i] = f32ToF16Bits(data[i]);
      out.set(new Uint8Array(halves.buffer), at);
    }
    at += data.length * size;
  }
  return out;
}
