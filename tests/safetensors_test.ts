/**
 * safetensors reader/writer against files written by the Python reference writer
 * (tests/fixtures/gen_safetensors.py): exact F32/F16/BF16 values, byte-identical output, F16
 * rounding vs numpy, round trips, and a hostile-file suite.
 * @module
 */
import { FileFormatError } from "../lib/errors.ts";
import {
  f16ToF32,
  f32ToF16Bits,
  parseSafetensors,
  serializeSafetensors,
} from "../lib/model/safetensors.ts";
import type { HostTensor } from "../lib/model/weights.ts";
import { assert, assertEquals, assertRejects, loadFixture } from "./helpers.ts";

interface Expected {
  shape: number[];
  bits: number[];
}
interface Fixture {
  reference: {
    metadata: Record<string, string>;
    tensors: Record<string, Expected & { dtype: string }>;
    skipped: string[];
  };
  writer: Record<string, Expected>;
  f16: { in_bits: number[]; out_bits: number[]; nan_in_bits: number[] };
}

const fixture = await loadFixture<Fixture>("st_reference.json");
const readFixtureFile = (name: string) =>
  Deno.readFile(new URL(`./fixtures/${name}`, import.meta.url));

function fromBits(bits: number[]): Float32Array {
  return new Float32Array(new Uint32Array(bits).buffer);
}

/** Compares f32 values bit-exactly, except that any NaN matches any NaN. */
function assertSameF32(actual: Float32Array, expectedBits: number[], label: string): void {
  const expected = fromBits(expectedBits);
  assertEquals(actual.length, expected.length, `${label}: length`);
  const a = new Uint32Array(actual.buffer, actual.byteOffset, actual.length);
  for (let i = 0; i < expected.length; i++) {
    if (Number.isNaN(expected[i])) assert(Number.isNaN(actual[i]), `${label}[${i}] should be NaN`);
    else assert(a[i] === expectedBits[i], `${label}[${i}]: ${actual[i]} vs ${expected[i]}`);
  }
}

Deno.test("safetensors: reads the Python reference file exactly (F32, F16, BF16, specials)", async () => {
  const { tensors, metadata, skipped } = parseSafetensors(
    await readFixtureFile("st_reference.safetensors"),
  );
  assertEquals(metadata, fixture.reference.metadata);
  assertEquals(skipped, fixture.reference.skipped);
  assertEquals([...tensors.keys()].sort(), Object.keys(fixture.reference.tensors).sort());
  for (const [name, e] of Object.entries(fixture.reference.tensors)) {
    const t = tensors.get(name)!;
    assertEquals(t.dtype, e.dtype, name);
    assertEquals(t.shape, e.shape, name);
    assertSameF32(t.data, e.bits, name);
  }
});

function writerTensors(): Map<string, HostTensor> {
  return new Map(
    Object.entries(fixture.writer).map(([n, e]) => [n, { shape: e.shape, data: fromBits(e.bits) }]),
  );
}

Deno.test("safetensors: F32 and F16 output is byte-identical to the Python reference writer", async () => {
  for (const dtype of ["F32", "F16"] as const) {
    const ours = serializeSafetensors(writerTensors(), { dtype, metadata: { format: "pt" } });
    const ref = await readFixtureFile(`st_writer_${dtype.toLowerCase()}.safetensors`);
    assertEquals(ours.length, ref.length, `${dtype} length`);
    assert(ours.every((b, i) => b === ref[i]), `${dtype}: bytes differ from the reference writer`);
  }
});

Deno.test("safetensors: f32→F16 rounds to nearest even like numpy (ties, subnormals, overflow)", () => {
  const inputs = fromBits(fixture.f16.in_bits);
  let bad = 0;
  for (let i = 0; i < inputs.length; i++) {
    const h = f32ToF16Bits(inputs[i]);
    if (h !== fixture.f16.out_bits[i]) {
      if (bad++ < 5) {
        console.error(
          `${inputs[i]}: got ${h.toString(16)}, want ${fixture.f16.out_bits[i].toString(16)}`,
        );
      }
    }
  }
  assertEquals(bad, 0, `${bad} of ${inputs.length} conversions differ from numpy`);
  for (const x of fromBits(fixture.f16.nan_in_bits)) {
    const h = f32ToF16Bits(x);
    assert((h & 0x7c00) === 0x7c00 && (h & 0x3ff) !== 0, `NaN → ${h.toString(16)} is not a NaN`);
  }
});

Deno.test("safetensors: F16→f32 decodes all 65536 halves consistently with the encoder", () => {
  const all = new Uint16Array(65536).map((_, i) => i);
  const f = f16ToF32(all);
  for (let h = 0; h < 65536; h++) {
    if ((h & 0x7c00) === 0x7c00 && (h & 0x3ff) !== 0) assert(Number.isNaN(f[h]), `${h} NaN`);
    else assert(f32ToF16Bits(f[h]) === h, `half ${h.toString(16)} → ${f[h]} does not round-trip`);
  }
  assertEquals([f[0x0001], f[0x03ff], f[0x0400]], [2 ** -24, 1023 * 2 ** -24, 2 ** -14]);
});

Deno.test("safetensors: round trip (F32 exact, F16 rounded), header padded with spaces", () => {
  const tensors = new Map<string, HostTensor>([
    ["x", { shape: [3, 7], data: Float32Array.from({ length: 21 }, (_, i) => Math.sin(i) * 1e3) }],
    ["a.b", { shape: [5], data: Float32Array.from([0, -0, 1e-30, Infinity, -Infinity]) }],
    ["empty", { shape: [0, 8], data: new Float32Array(0) }],
    ["scalar", { shape: [], data: Float32Array.from([7]) }],
  ]);
  const bytes = serializeSafetensors(tensors, { metadata: { k: "v" } });
  const n = Number(new DataView(bytes.buffer).getBigUint64(0, true));
  assertEquals(n % 8, 0, "header length is a multiple of 8");
  const text = new TextDecoder().decode(bytes.subarray(8, 8 + n));
  assert(/^\{.*\} *$/.test(text), "header is JSON padded with spaces");
  const back = parseSafetensors(bytes);
  assertEquals(back.metadata, { k: "v" });
  for (const [name, t] of tensors) {
    assertEquals(back.tensors.get(name)!.shape, t.shape, name);
    assertEquals(back.tensors.get(name)!.data, t.data, name);
  }
  const half = parseSafetensors(serializeSafetensors(tensors, { dtype: "F16" }));
  const x = half.tensors.get("x")!;
  assertEquals(x.dtype, "F16");
  for (let i = 0; i < 21; i++) {
    assert(Math.abs(x.data[i] - tensors.get("x")!.data[i]) <= 2 ** -11 * 1024, `x[${i}]`);
  }
});

// ---- hostile files ------------------------------------------------------------------------------

/** Builds a file from a header (object or raw string), data bytes and an optional length override. */
function build(header: unknown, data = new Uint8Array(0), headerLen?: bigint): Uint8Array {
  const json = new TextEncoder().encode(
    typeof header === "string" ? header : JSON.stringify(header),
  );
  const out = new Uint8Array(8 + json.length + data.length);
  new DataView(out.buffer).setBigUint64(0, headerLen ?? BigInt(json.length), true);
  out.set(json, 8);
  out.set(data, 8 + json.length);
  return out;
}

const f32 = (shape: number[], begin: number, end: number) => ({
  dtype: "F32",
  shape,
  data_offsets: [begin, end],
});

const hostile: [string, Uint8Array, string][] = [
  ["shorter than 8 bytes", new Uint8Array(5), "shorter than the 8-byte header"],
  ["header length past file end", build({}, new Uint8Array(0), 1000n), "past the end"],
  [
    "header length just under the limit, past end",
    build({}, new Uint8Array(16), 99_999_999n),
    "past the end",
  ],
  ["huge header length", build({}, new Uint8Array(0), 1n << 62n), "over the 100000000-byte limit"],
  ["max u64 header length", build({}, new Uint8Array(0), (1n << 64n) - 1n), "limit"],
  ["bad JSON", build('{"a": {"dtype": "F32",'), "not valid UTF-8 JSON"],
  ["invalid UTF-8", ((b) => (b[10] = 0xff, b))(build('{"ab":{}}')), "not valid UTF-8 JSON"],
  ["JSON array header", build("[1,2,3]"), "does not start with '{'"],
  ["entry not an object", build({ a: 3 }), 'entry "a" is not an object'],
  [
    "missing dtype",
    build({ a: { shape: [1], data_offsets: [0, 4] } }, new Uint8Array(4)),
    "no dtype",
  ],
  [
    "missing shape",
    build({ a: { dtype: "F32", data_offsets: [0, 4] } }, new Uint8Array(4)),
    "invalid shape",
  ],
  [
    "missing offsets",
    build({ a: { dtype: "F32", shape: [1] } }, new Uint8Array(4)),
    "invalid data_offsets",
  ],
  ["negative offset", build({ a: f32([1], -4, 0) }, new Uint8Array(4)), "invalid data_offsets"],
  ["begin after end", build({ a: f32([0], 4, 0) }, new Uint8Array(4)), "invalid data_offsets"],
  ["fractional shape", build({ a: f32([1.5], 0, 6) }, new Uint8Array(6)), "invalid shape"],
  [
    "unknown dtype",
    build({ a: { dtype: "F13", shape: [1], data_offsets: [0, 4] } }, new Uint8Array(4)),
    'tensor "a" has unknown dtype "F13"',
  ],
  [
    "unsupported F64",
    build({ w: { dtype: "F64", shape: [1], data_offsets: [0, 8] } }, new Uint8Array(8)),
    'tensor "w" has dtype F64',
  ],
  ["wrong byte count", build({ a: f32([2, 2], 0, 12) }, new Uint8Array(12)), "needs 16 bytes"],
  ["offset past data", build({ a: f32([2], 0, 8) }, new Uint8Array(4)), "past the 4 data bytes"],
  [
    "overlapping tensors",
    build({ a: f32([2], 0, 8), b: f32([2], 4, 12) }, new Uint8Array(12)),
    "(overlap)",
  ],
  [
    "gap between tensors",
    build({ a: f32([1], 0, 4), b: f32([1], 8, 12) }, new Uint8Array(12)),
    "(gap)",
  ],
  ["gap at start", build({ a: f32([1], 4, 8) }, new Uint8Array(8)), "(gap)"],
  ["trailing bytes", build({ a: f32([1], 0, 4) }, new Uint8Array(8)), "trailing bytes"],
  [
    "shape product overflow",
    build({ a: f32([2 ** 30, 2 ** 30, 2 ** 30], 0, 4) }, new Uint8Array(4)),
    "too large",
  ],
  ["metadata not strings", build({ __metadata__: { a: 1 } }), "is not a string"],
]; // deno-fmt-ignore

for (const [what, bytes, message] of hostile) {
  Deno.test(`safetensors: hostile file (${what}) → FileFormatError`, async () => {
    const e = await assertRejects(() => parseSafetensors(bytes, "evil.safetensors"), FileFormatError, message);
    assert(e.message.startsWith("evil.safetensors: "), "message names the file");
  });
}

Deno.test("safetensors: a valid hand-built file with integer buffers parses (control for the suite)", () => {
  const data = new Uint8Array(16);
  new DataView(data.buffer).setFloat32(0, 1.5, true);
  const bytes = build({
    a: f32([1], 0, 4),
    position_ids: { dtype: "I64", shape: [1], data_offsets: [4, 12] },
    mask: { dtype: "BOOL", shape: [4], data_offsets: [12, 16] },
  }, data);
  const { tensors, skipped } = parseSafetensors(bytes);
  assertEquals([...tensors.keys()], ["a"]);
  assertEquals(tensors.get("a")!.data, Float32Array.from([1.5]));
  assertEquals(skipped.sort(), ["mask", "position_ids"]);
});
