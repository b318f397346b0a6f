/**
 * PyTorch checkpoints (`pytorch_model.bin`, written by `torch.save`): since PyTorch 1.6 a ZIP
 * archive holding `<prefix>/data.pkl` — a pickle of the state dict — and one entry
 * `<prefix>/data/<key>` per tensor storage; before, the legacy format (five pickles back to back,
 * then the storages' bytes). Many checkpoints on the Hugging Face Hub have only this file, older
 * ones in the legacy format, so fastprune reads both without Python.
 *
 * The pickle is interpreted, never executed: a small stack machine knows the opcodes `torch.save`
 * emits (protocol 2; also the protocol-4 short forms) and only these callables —
 * `collections.OrderedDict`, `torch._utils._rebuild_tensor_v2`, `_rebuild_parameter(_with_state)`,
 * `torch._tensor._rebuild_from_type_v2` over those, and the `torch.*Storage` types as markers.
 * Any other global (e.g. `os.system` in a hostile file) is refused with FileFormatError. Tensors
 * become row-major f32 (from F32, F16, BF16 or F64 storages, any strides and storage offsets);
 * integer and boolean tensors (e.g. `position_ids`) are listed as skipped, as safetensors' are.
 * @module
 */
import { FileFormatError } from "../errors.ts";
import { decodeFloats, type Dtype } from "./safetensors.ts";
import type { HostTensor } from "./weights.ts";
import { zipEntries, zipRead } from "./zip.ts";

type StorageDtype = "F32" | "F16" | "BF16" | "F64" | "other";

/** Storage types: the dtype we read them as, and their element size in bytes. */
const STORAGES: Record<string, [StorageDtype, number]> = {
  FloatStorage: ["F32", 4],
  HalfStorage: ["F16", 2],
  BFloat16Storage: ["BF16", 2],
  DoubleStorage: ["F64", 8],
  LongStorage: ["other", 8],
  IntStorage: ["other", 4],
  ShortStorage: ["other", 2],
  CharStorage: ["other", 1],
  ByteStorage: ["other", 1],
  BoolStorage: ["other", 1],
};

interface Global {
  kind: "global";
  module: string;
  name: string;
}
interface Storage {
  kind: "storage";
  dtype: StorageDtype;
  /** Bytes per element. */
  bytes: number;
  /** The (root) storage's key. */
  key: string;
  /** Elements of the root storage. */
  numel: number;
  /** Element offset of a legacy storage view into its root (0 otherwise). */
  base: number;
}
interface TensorRef {
  kind: "tensor";
  storage: Storage;
  offset: number;
  size: number[];
  stride: number[];
}
type Value =
  | null
  | boolean
  | number
  | bigint
  | string
  | Value[]
  | Map<unknown, Value>
  | Global
  | Storage
  | TensorRef
  | { kind: "mark" };

const MARK = { kind: "mark" } as const;

const ALLOWED = new Set([
  "collections.OrderedDict",
  "torch._utils._rebuild_tensor_v2",
  "torch._utils._rebuild_parameter",
  "torch._utils._rebuild_parameter_with_state",
  "torch._tensor._rebuild_from_type_v2",
  "torch.Tensor",
  "torch.nn.parameter.Parameter",
  ...Object.keys(STORAGES).map((s) => `torch.${s}`),
]);

const isGlobal = (v: unknown, name?: string): v is Global =>
  typeof v === "object" && v !== null && (v as Global).kind === "global" &&
  (name === undefined || `${(v as Global).module}.${(v as Global).name}` === name);

/**
 * Runs one pickle program starting at byte `start` of `data`; returns its value and the offset just
 * past its STOP opcode (the legacy format puts several pickles back to back).
 */
function unpickle(data: Uint8Array, where: string, start = 0): { value: Value; end: number } {
  const view = new DataView(data.buffer, data.byteOffset, data.byteLength);
  const fail = (why: string): never => {
    throw new FileFormatError(`${where}: ${why}`);
  };
  const stack: Value[] = [];
  const memo = new Map<number, Value>();
  let p = start;
  const need = (n: number) => {
    if (p + n > data.length) fail("pickle ends early");
  };
  const text = (n: number) => {
    need(n);
    const s = new TextDecoder().decode(data.subarray(p, p + n));
    p += n;
    return s;
  };
  const line = () => {
    const e = data.indexOf(0x0a, p);
    if (e < 0) fail("pickle ends early");
    const s = new TextDecoder().decode(data.subarray(p, e));
    p = e + 1;
    return s;
  };
  const pop = (): Value => {
    if (stack.length === 0) fail("pickle stack underflow");
    return stack.pop()!;
  };
  const popMark = (): Value[] => {
    let i = stack.length - 1;
    while (i >= 0 && stack[i] !== MARK) i--;
    if (i < 0) fail("pickle: no MARK");
    const items = stack.splice(i + 1);
    stack.pop();
    return items;
  };
  const setItems = (target: Value, items: Value[]) => {
    if (!(target instanceof Map)) fail("pickle: SETITEM(S) on a non-dict");
    for (let i = 0; i + 1 < items.length; i += 2) {
      (target as Map<unknown, Value>).set(items[i], items[i + 1]);
    }
  };
  const call = (fn: Value, args: Value): Value => {
    if (!Array.isArray(args)) fail("pickle: REDUCE arguments are not a tuple");
    const a = args as Value[];
    if (isGlobal(fn, "collections.OrderedDict")) return new Map();
    if (isGlobal(fn, "torch._utils._rebuild_tensor_v2")) {
      const [storage, offset, size, stride] = a as [Storage, number, number[], number[]];
      if (
        (storage as Storage)?.kind !== "storage" || typeof offset !== "number" ||
        !Array.isArray(size) || !Array.isArray(stride) || size.length !== stride.length ||
        ![...size, ...stride].every((v) => Number.isInteger(v) && v >= 0)
      ) fail("pickle: malformed _rebuild_tensor_v2 arguments");
      return { kind: "tensor", storage, offset, size, stride };
    }
    if (
      isGlobal(fn, "torch._utils._rebuild_parameter") ||
      isGlobal(fn, "torch._utils._rebuild_parameter_with_state")
    ) return a[0];
    if (isGlobal(fn, "torch._tensor._rebuild_from_type_v2")) {
      const [inner, , innerArgs] = a;
      return call(inner, innerArgs);
    }
    return fail(`pickle calls ${isGlobal(fn) ? `${fn.module}.${fn.name}` : "a non-global"}`);
  };
  need(2);
  if (data[p] !== 0x80) fail("not a pickle (no PROTO opcode)");
  for (;;) {
    need(1);
    const op = data[p++];
    switch (op) {
      case 0x80: // PROTO
        need(1);
        p += 1;
        break;
      case 0x95: // FRAME (protocol 4)
        need(8);
        p += 8;
        break;
      case 0x2e: // STOP
        if (stack.length !== 1) fail("pickle leaves no single value");
        return { value: stack[0], end: p };
      case 0x63: { // GLOBAL "module\nname\n"
        const module = line(), name = line();
        if (!ALLOWED.has(`${module}.${name}`)) {
          fail(
            `refuses to load ${module}.${name}: only tensors and (ordered) dicts are read from ` +
              `a PyTorch checkpoint`,
          );
        }
        stack.push({ kind: "global", module, name });
        break;
      }
      case 0x93: { // STACK_GLOBAL (protocol 4)
        const name = pop(), module = pop();
        if (typeof module !== "string" || typeof name !== "string") fail("bad STACK_GLOBAL");
        if (!ALLOWED.has(`${module}.${name}`)) {
          fail(`refuses to load ${module}.${name}: only tensors and dicts are read`);
        }
        stack.push({ kind: "global", module: module as string, name: name as string });
        break;
      }
      case 0x71: // BINPUT
        need(1);
        memo.set(data[p++], stack[stack.length - 1]);
        break;
      case 0x72: // LONG_BINPUT
        need(4);
        memo.set(view.getUint32(p, true), stack[stack.length - 1]);
        p += 4;
        break;
      case 0x94: // MEMOIZE (protocol 4)
        memo.set(memo.size, stack[stack.length - 1]);
        break;
      case 0x68: // BINGET
        need(1);
        if (!memo.has(data[p])) fail("pickle: memo miss");
        stack.push(memo.get(data[p++])!);
        break;
      case 0x6a: // LONG_BINGET
        need(4);
        if (!memo.has(view.getUint32(p, true))) fail("pickle: memo miss");
        stack.push(memo.get(view.getUint32(p, true))!);
        p += 4;
        break;
      case 0x7d: // EMPTY_DICT
        stack.push(new Map());
        break;
      case 0x5d: // EMPTY_LIST
      case 0x29: // EMPTY_TUPLE
        stack.push([]);
        break;
      case 0x28: // MARK
        stack.push(MARK);
        break;
      case 0x74: // TUPLE
      case 0x6c: // LIST
        stack.push(popMark());
        break;
      case 0x64: { // DICT
        const m = new Map<unknown, Value>();
        setItems(m, popMark());
        stack.push(m);
        break;
      }
      case 0x85: // TUPLE1
        stack.push([pop()]);
        break;
      case 0x86: { // TUPLE2
        const b = pop(), a = pop();
        stack.push([a, b]);
        break;
      }
      case 0x87: { // TUPLE3
        const c = pop(), b = pop(), a = pop();
        stack.push([a, b, c]);
        break;
      }
      case 0x4a: // BININT
        need(4);
        stack.push(view.getInt32(p, true));
        p += 4;
        break;
      case 0x4b: // BININT1
        need(1);
        stack.push(data[p++]);
        break;
      case 0x4d: // BININT2
        need(2);
        stack.push(view.getUint16(p, true));
        p += 2;
        break;
      case 0x8a: { // LONG1
        need(1);
        const n = data[p++];
        need(n);
        let v = 0n;
        for (let i = n - 1; i >= 0; i--) v = (v << 8n) | BigInt(data[p + i]);
        if (n > 0 && data[p + n - 1] & 0x80) v -= 1n << BigInt(8 * n);
        p += n;
        const safe = v <= BigInt(Number.MAX_SAFE_INTEGER) && v >= -BigInt(Number.MAX_SAFE_INTEGER);
        stack.push(safe ? Number(v) : v); // the legacy format's magic number is a big one
        break;
      }
      case 0x47: // BINFLOAT (big-endian)
        need(8);
        stack.push(view.getFloat64(p, false));
        p += 8;
        break;
      case 0x58: // BINUNICODE
        need(4);
        p += 4;
        stack.push(text(view.getUint32(p - 4, true)));
        break;
      case 0x8c: // SHORT_BINUNICODE
        need(1);
        p += 1;
        stack.push(text(data[p - 1]));
        break;
      case 0x54: // BINSTRING
        need(4);
        p += 4;
        stack.push(text(view.getInt32(p - 4, true)));
        break;
      case 0x55: // SHORT_BINSTRING
        need(1);
        p += 1;
        stack.push(text(data[p - 1]));
        break;
      case 0x88: // NEWTRUE
        stack.push(true);
        break;
      case 0x89: // NEWFALSE
        stack.push(false);
        break;
      case 0x4e: // NONE
        stack.push(null);
        break;
      case 0x52: { // REDUCE
        const args = pop(), fn = pop();
        stack.push(call(fn, args));
        break;
      }
      case 0x81: { // NEWOBJ: cls.__new__(cls, *args) — only OrderedDict
        const args = pop(), cls = pop();
        if (!isGlobal(cls, "collections.OrderedDict")) fail("pickle: NEWOBJ of a non-dict");
        void args;
        stack.push(new Map());
        break;
      }
      case 0x62: { // BUILD: object state (an OrderedDict's _metadata, a tensor's flags): ignored
        pop();
        break;
      }
      case 0x73: { // SETITEM
        const v = pop(), k = pop();
        setItems(stack[stack.length - 1], [k, v]);
        break;
      }
      case 0x75: { // SETITEMS
        const items = popMark();
        setItems(stack[stack.length - 1], items);
        break;
      }
      case 0x61: { // APPEND
        const v = pop();
        const l = stack[stack.length - 1];
        if (!Array.isArray(l)) fail("pickle: APPEND to a non-list");
        (l as Value[]).push(v);
        break;
      }
      case 0x65: { // APPENDS
        const items = popMark();
        const l = stack[stack.length - 1];
        if (!Array.isArray(l)) fail("pickle: APPENDS to a non-list");
        (l as Value[]).push(...items);
        break;
      }
      case 0x51: { // BINPERSID: ("storage", type, key, location, numel[, legacy view])
        const pid = pop();
        if (
          !Array.isArray(pid) || pid[0] !== "storage" || !isGlobal(pid[1]) ||
          typeof pid[2] !== "string" || typeof pid[4] !== "number"
        ) return fail("pickle: unexpected persistent id (not a torch storage)");
        const type = pid[1] as Global;
        const kind = STORAGES[type.name];
        if (type.module !== "torch" || !kind) {
          fail(`unknown storage type ${type.module}.${type.name}`);
        }
        // legacy view metadata: (view key, element offset into the root, view size)
        const view = pid[5];
        if (
          view !== undefined && view !== null &&
          !(Array.isArray(view) && typeof view[1] === "number")
        ) {
          fail("pickle: malformed storage view");
        }
        stack.push({
          kind: "storage",
          dtype: kind[0],
          bytes: kind[1],
          key: pid[2] as string,
          numel: pid[4] as number,
          base: Array.isArray(view) ? view[1] as number : 0,
        });
        break;
      }
      default:
        fail(`pickle opcode 0x${op.toString(16)} is not one torch.save writes`);
    }
  }
}

function decodeStorage(dtype: StorageDtype, raw: Uint8Array): Float32Array {
  if (dtype !== "F64") return decodeFloats(dtype as Dtype, raw);
  const d = new Float64Array(raw.length / 8);
  new Uint8Array(d.buffer).set(raw);
  return Float32Array.from(d);
}

/** Whether the bytes start like a ZIP archive (a `torch.save` file since PyTorch 1.6). */
export function isTorchZip(bytes: Uint8Array): boolean {
  return bytes.length >= 4 && bytes[0] === 0x50 && bytes[1] === 0x4b && bytes[2] === 3 &&
    bytes[3] === 4;
}

/** The legacy format's first pickle (torch/serialization.py MAGIC_NUMBER). */
const LEGACY_MAGIC = 0x1950a86a20f9469cfc6cn;

/**
 * Reads the float tensors of a `torch.save` state dict (see the module comment), from the ZIP
 * format or the legacy one. Non-float tensors are listed in `skipped`. Raises FileFormatError for
 * damaged files and for pickles that reference anything but tensors and dicts.
 */
export async function parseTorchCheckpoint(
  bytes: Uint8Array,
  where: string,
): Promise<{ tensors: Map<string, HostTensor>; skipped: string[] }> {
  let top: Value;
  let raw: (key: string) => Promise<Uint8Array | undefined>;
  if (isTorchZip(bytes)) {
    const entries = zipEntries(bytes, where);
    const pkl = [...entries.keys()].find((n) => n === "data.pkl" || n.endsWith("/data.pkl"));
    if (!pkl) throw new FileFormatError(`${where}: no data.pkl in the archive`);
    const prefix = pkl.slice(0, pkl.length - "data.pkl".length);
    const order = entries.get(`${prefix}byteorder`);
    if (order) {
      const v = new TextDecoder().decode(await zipRead(bytes, order, where)).trim();
      if (v !== "little") throw new FileFormatError(`${where}: byte order "${v}" is not supported`);
    }
    top = unpickle(await zipRead(bytes, entries.get(pkl)!, where), `${where}/${pkl}`).value;
    raw = async (key) => {
      const entry = entries.get(`${prefix}data/${key}`);
      return entry ? await zipRead(bytes, entry, where) : undefined;
    };
  } else if (bytes.length > 2 && bytes[0] === 0x80) {
    ({ top, raw } = legacy(bytes, where));
  } else {
    throw new FileFormatError(`${where}: not a torch.save file (neither ZIP nor pickle)`);
  }
  if (top instanceof Map && !(top.size > 0 && [...top.values()].some(isTensor))) {
    // a wrapper such as {"state_dict": …} or {"model": …}
    const inner = top.get("state_dict") ?? top.get("model");
    if (inner instanceof Map) top = inner;
  }
  if (!(top instanceof Map)) {
    throw new FileFormatError(`${where}: the pickle is not a state dict (name → tensor)`);
  }
  const storages = new Map<string, Float32Array>();
  const tensors = new Map<string, HostTensor>();
  const skipped: string[] = [];
  for (const [name, v] of top) {
    if (typeof name !== "string" || !isTensor(v)) {
      throw new FileFormatError(`${where}: entry ${String(name)} is not a tensor`);
    }
    const t = v as TensorRef;
    if (t.storage.dtype === "other") {
      skipped.push(name);
      continue;
    }
    let data = storages.get(t.storage.key);
    if (!data) {
      const bytesOf = await raw(t.storage.key);
      if (!bytesOf) {
        throw new FileFormatError(`${where}: storage ${t.storage.key} of ${name} is missing`);
      }
      if (bytesOf.length !== t.storage.numel * t.storage.bytes) {
        throw new FileFormatError(
          `${where}: storage ${t.storage.key} has ${bytesOf.length} bytes, expected ` +
            `${t.storage.numel} ${t.storage.dtype} values`,
        );
      }
      data = decodeStorage(t.storage.dtype, bytesOf);
      storages.set(t.storage.key, data);
    }
    const at = { ...t, offset: t.offset + t.storage.base };
    tensors.set(name, { shape: [...t.size], data: gather(data, at, `${where}: ${name}`) });
  }
  return { tensors, skipped };
}

/**
 * The legacy format (PyTorch < 1.6): five pickles back to back — magic number, protocol version
 * 1001, system info, the object, the storage keys in order — then each storage as an int64
 * element count and its bytes.
 */
function legacy(
  bytes: Uint8Array,
  where: string,
): { top: Value; raw: (key: string) => Promise<Uint8Array | undefined> } {
  const fail = (why: string): never => {
    throw new FileFormatError(`${where}: legacy torch.save file: ${why}`);
  };
  let r = unpickle(bytes, where);
  if (r.value !== LEGACY_MAGIC) fail("wrong magic number");
  r = unpickle(bytes, where, r.end);
  if (r.value !== 1001) fail(`protocol version ${String(r.value)}, expected 1001`);
  r = unpickle(bytes, where, r.end);
  const info = r.value;
  if (info instanceof Map && info.get("little_endian") === false) fail("big-endian data");
  r = unpickle(bytes, where, r.end);
  const top = r.value;
  // every storage the object refers to, by key (its element size fixes its byte length)
  const sizes = new Map<string, number>();
  const visit = (v: Value) => {
    if (isTensor(v)) {
      const st = (v as TensorRef).storage;
      sizes.set(st.key, st.bytes);
    } else if (v instanceof Map) v.forEach(visit);
    else if (Array.isArray(v)) v.forEach(visit);
  };
  visit(top);
  r = unpickle(bytes, where, r.end);
  const keys = r.value;
  if (!Array.isArray(keys) || !keys.every((k) => typeof k === "string")) {
    fail("bad storage key list");
  }
  const view = new DataView(bytes.buffer, bytes.byteOffset, bytes.byteLength);
  const data = new Map<string, Uint8Array>();
  let p = r.end;
  for (const key of keys as string[]) {
    const size = sizes.get(key);
    if (size === undefined) fail(`storage ${key} is listed but no tensor uses it`);
    if (p + 8 > bytes.length) fail(`storage ${key} is cut off`);
    const n = view.getBigInt64(p, true);
    if (n < 0n || n > BigInt(Number.MAX_SAFE_INTEGER)) fail(`storage ${key} has ${n} elements`);
    const len = Number(n) * size!;
    if (p + 8 + len > bytes.length) fail(`storage ${key} is cut off`);
    data.set(key, bytes.subarray(p + 8, p + 8 + len));
    p += 8 + len;
  }
  return { top, raw: (key) => Promise.resolve(data.get(key)) };
}

function isTensor(v: unknown): boolean {
  return typeof v === "object" && v !== null && (v as TensorRef).kind === "tensor";
}

/** The tensor's elements in row-major order from its storage, offset and strides. */
function gather(data: Float32Array, t: TensorRef, where: string): Float32Array {
  const n = t.size.reduce((a, b) => a * b, 1);
  const out = new Float32Array(n);
  if (n === 0) return out;
  let last = t.offset;
  t.size.forEach((s, d) => (last += (s - 1) * t.stride[d]));
  if (t.offset < 0 || last >= data.length) {
    throw new FileFormatError(`${where}: reaches past its storage (${data.length} values)`);
  }
  const contiguous = t.size.every((_, d) =>
    t.size[d] === 1 || t.stride[d] === t.size.slice(d + 1).reduce((a, b) => a * b, 1)
  );
  if (contiguous) {
    out.set(data.subarray(t.offset, t.offset + n));
    return out;
  }
  const rank = t.size.length;
  const idx = new Array(rank).fill(0);
  let src = t.offset;
  for (let i = 0; i < n; i++) {
    out[i] = data[src];
    for (let d = rank - 1; d >= 0; d--) {
      idx[d]++;
      src += t.stride[d];
      if (idx[d] < t.size[d]) break;
      src -= t.size[d] * t.stride[d];
      idx[d] = 0;
    }
  }
  return out;
}
