/**
 * The GPU context: device, buffer pool, pipeline and bind-group caches, the uniform arena and the
 * command recorder. Ops call `dispatch`, which appends to one open compute pass; nothing is
 * submitted until `read`, `sync` or `flush`. A whole model pass is therefore one submit.
 *
 * Kernel convention (every `kernels/*.wgsl` entry point follows it): binding 0 of group 0 is a
 * `var<uniform>` parameter struct of at most 256 bytes (bound with a dynamic offset into the
 * uniform arena); bindings 1…n are storage buffers, `read` or `read_write` as the kernel spec says,
 * or `rgba32float` textures (`texture_2d<f32>` read with `textureLoad`, or a write-only
 * `texture_storage_2d<rgba32float, write>`) from the texture pool (`gpu.textures`).
 * @module
 */
import { DeviceLimitError, InvalidArgumentError, ShapeError } from "../errors.ts";
import { type AdapterDescription, requestDevice } from "./device.ts";
import { BufferPool, type GpuCounters } from "./pool.ts";
import { shapeSize, Tensor } from "./tensor.ts";
import { Texture2D, TexturePool } from "./textures.ts";

/** Access mode of one storage binding. */
export type Access = "read" | "rw";

/**
 * Kind of one binding 1…n: a storage buffer (`Access`), a sampled `texture_2d<f32>` read with
 * `textureLoad` ("texture"), or a write-only `texture_storage_2d<rgba32float, write>`
 * ("storage-texture"). Texture bindings take a `Texture2D` from `gpu.textures`.
 */
export type BindingKind = Access | "texture" | "storage-texture";

/** What `dispatch` binds to 1…n: a tensor for buffer bindings, a pooled texture otherwise. */
export type Resource = Tensor | Texture2D;

/** A kernel entry point: WGSL source, entry name, storage bindings and override constants. */
export interface KernelSpec {
  /** Cache key of the source (e.g. the file name). */
  name: string;
  /** WGSL source text. */
  source: string;
  /** Entry point name. */
  entry: string;
  /** Kinds of bindings 1…n (binding 0 is always the parameter uniform). */
  bindings: readonly BindingKind[];
  /** Values for `override` constants (tile sizes, workgroup sizes). */
  constants?: Readonly<Record<string, number>>;
}

/** Bytes reserved per dispatch in the uniform arena (= minUniformBufferOffsetAlignment). */
export const PARAM_SLOT_BYTES = 256;
const ARENA_SLOTS = 2048;

/** Reinterprets a float as its f32 bit pattern, for packing into a u32 parameter word. */
export function f32Bits(x: number): number {
  F32[0] = x;
  return U32[0];
}
const F32 = new Float32Array(1);
const U32 = new Uint32Array(F32.buffer);

interface CachedPipeline {
  pipeline: GPUComputePipeline;
  layout: GPUBindGroupLayout;
  id: number;
}

/** A texture copy of a tensor kept by `Gpu.holdTexture`. */
export interface HeldTexture {
  /** The texture. */
  tex: Texture2D;
  /** log2 of its width in texels (flat texel t sits at (t mod width, t / width)). */
  shift: number;
  /** Elements of the tensor copied. */
  size: number;
}

/** One dispatch kept by `Gpu.startRecording`, for `Gpu.replay` (profiling). */
export interface RecordedDispatch {
  /** Kernel file name. */
  name: string;
  /** Entry point. */
  entry: string;
  /** Its parameter words. */
  params: Uint32Array;
  /** Its workgroup grid. */
  workgroups: [number, number, number];
  /** Label set by `Gpu.recordingLabel` when it was recorded (a phase of the profiled pass). */
  label: string;
  /** The cached pipeline and bind group it ran with (keep its buffers and textures alive). */
  pipeline: GPUComputePipeline;
  /** See `pipeline`. */
  bindGroup: GPUBindGroup;
}

/** The fastprune GPU context. Get the shared one with `getGpu()`. */
export class Gpu {
  /** Creation and submit counters. */
  readonly counters: GpuCounters = {
    buffersCreated: 0,
    pipelinesCreated: 0,
    bindGroupsCreated: 0,
    submits: 0,
    dispatches: 0,
  };
  /** The storage buffer pool. */
  readonly pool: BufferPool;
  /** The rgba32float texture pool (matmul operands). */
  readonly textures: TexturePool;
  readonly #modules = new Map<string, GPUShaderModule>();
  readonly #pipelines = new Map<string, CachedPipeline>();
  readonly #layouts = new Map<string, GPUBindGroupLayout>();
  readonly #bindGroups = new Map<string, GPUBindGroup>();
  readonly #arena: GPUBuffer;
  readonly #arenaData = new ArrayBuffer(ARENA_SLOTS * PARAM_SLOT_BYTES);
  readonly #arenaU32 = new Uint32Array(this.#arenaData);
  #arenaUsed = 0;
  #encoder: GPUCommandEncoder | null = null;
  #pass: GPUComputePassEncoder | null = null;
  #touched = new Set<GPUBuffer>();
  readonly #held = new Map<GPUBuffer, HeldTexture>();
  #readback: GPUBuffer[] = [];
  #pipelineIds = 0;
  #recorded: RecordedDispatch[] | null = null;
  /** Label stored with each dispatch recorded after `startRecording` (e.g. "forward"). */
  recordingLabel = "";
  /** Device limits in force. */
  readonly limits: GPUSupportedLimits;

  /** Wraps a device; prefer `getGpu()`. */
  constructor(
    readonly device: GPUDevice,
    readonly adapter: AdapterDescription,
  ) {
    this.limits = device.limits;
    this.pool = new BufferPool(device, this.counters);
    this.textures = new TexturePool(device, this.limits.maxTextureDimension2D);
    this.#arena = device.createBuffer({
      size: ARENA_SLOTS * PARAM_SLOT_BYTES,
      usage: GPUBufferUsage.UNIFORM | GPUBufferUsage.COPY_DST,
    });
    this.counters.buffersCreated++;
  }

  /** Largest tensor (in elements) one storage binding can hold on this device. */
  get maxBindingElements(): number {
    return Math.floor(this.limits.maxStorageBufferBindingSize / 4);
  }

  // ---------------------------------------------------------------- tensors

  /** A tensor with undefined contents from the pool. */
  empty(shape: readonly number[]): Tensor {
    const bytes = this.#checkBytes(shape);
    return new Tensor(this, shape, this.pool.acquire(bytes));
  }

  /** A tensor filled with zeros (recorded, not submitted). */
  zeros(shape: readonly number[]): Tensor {
    const t = this.empty(shape);
    this.clear(t);
    return t;
  }

  /** Records a zero fill of `t`. */
  clear(t: Tensor): void {
    if (t.size === 0) return;
    const enc = this.#endPass();
    enc.clearBuffer(t.buffer, 0, Math.ceil(t.byteLength / 4) * 4);
    this.#touched.add(t.buffer);
    this.#wrote(t.buffer);
  }

  /** Uploads data into a new tensor. The write is ordered before any later recorded command. */
  upload(data: ArrayLike<number> | Float32Array, shape?: readonly number[]): Tensor {
    const s = shape ?? [data.length];
    const bytes = this.#checkBytes(s);
    if (shapeSize(s) !== data.length) {
      throw new ShapeError(`upload: ${data.length} values do not fill shape [${s.join(", ")}]`);
    }
    const buffer = this.pool.acquire(bytes, this.#touched);
    const t = new Tensor(this, s, buffer);
    this.write(t, data);
    return t;
  }

  /** Overwrites a tensor's contents with `data` (must not be used by the open encoder). */
  write(t: Tensor, data: ArrayLike<number> | Float32Array): void {
    if (data.length !== t.size) {
      throw new ShapeError(`write: ${data.length} values for tensor of ${t.size}`);
    }
    if (this.#touched.has(t.buffer)) this.flush();
    this.#wrote(t.buffer);
    const f = data instanceof Float32Array ? data : Float32Array.from(data);
    if (f.length > 0) this.device.queue.writeBuffer(t.buffer, 0, f as Float32Array<ArrayBuffer>);
  }

  /** Uploads u32 data (token ids, labels) into a tensor whose storage is read as `u32`/`i32`. */
  uploadU32(data: ArrayLike<number>, shape?: readonly number[]): Tensor {
    const s = shape ?? [data.length];
    const bytes = this.#checkBytes(s);
    if (shapeSize(s) !== data.length) {
      throw new ShapeError(`uploadU32: ${data.length} values do not fill shape [${s.join(", ")}]`);
    }
    const t = new Tensor(this, s, this.pool.acquire(bytes, this.#touched));
    const u = Int32Array.from(data);
    if (u.length > 0) this.device.queue.writeBuffer(t.buffer, 0, u.buffer, 0, u.byteLength);
    return t;
  }

  /** Records a copy of `src` into `dst` (same element count, or `count` elements from offsets). */
  copy(src: Tensor, dst: Tensor, srcOffset = 0, dstOffset = 0, count = src.size): void {
    if (srcOffset + count > src.size || dstOffset + count > dst.size) {
      throw new ShapeError(
        `copy: ${count} elements from ${srcOffset} of ${src.size} to ${dstOffset} of ${dst.size}`,
      );
    }
    if (count === 0) return;
    const enc = this.#endPass();
    enc.copyBufferToBuffer(src.buffer, srcOffset * 4, dst.buffer, dstOffset * 4, count * 4);
    this.#touched.add(src.buffer);
    this.#touched.add(dst.buffer);
    this.#wrote(dst.buffer);
  }

  /**
   * Records a copy of `rows` rows of `width` texels (4·width floats each, consecutive in `src`
   * from element `srcOffset`) into the top-left corner of `dst` (the open compute pass is ended
   * and resumed by the next dispatch), starting at row `dstRow` of `dst`. WebGPU requires a row
   * pitch that is a multiple of 256 bytes, i.e. `width % 16 == 0` (any width for a single row),
   * and `srcOffset % 4 == 0`; raises `InvalidArgumentError` otherwise and `ShapeError` when the
   * region is out of range.
   */
  copyToTexture(
    src: Tensor,
    dst: Texture2D,
    width: number,
    rows: number,
    srcOffset = 0,
    dstRow = 0,
  ): void {
    if ((width % 16 !== 0 && rows > 1) || srcOffset % 4 !== 0) {
      throw new InvalidArgumentError(
        `copyToTexture: width ${width} texels must be a multiple of 16 (or one row) and offset ${srcOffset} of 4`,
      );
    }
    if (
      width > dst.width || dstRow + rows > dst.height || srcOffset + width * 4 * rows > src.size
    ) {
      throw new ShapeError(
        `copyToTexture: ${rows}×${width} texels from element ${srcOffset} of ${src.size} into rows ${dstRow}… of a ${dst.height}×${dst.width} texture`,
      );
    }
    if (width === 0 || rows === 0) return;
    const enc = this.#endPass();
    enc.copyBufferToTexture(
      rows > 1
        ? { buffer: src.buffer, offset: srcOffset * 4, bytesPerRow: width * 16, rowsPerImage: rows }
        : { buffer: src.buffer, offset: srcOffset * 4 },
      { texture: dst.texture, origin: [0, dstRow, 0] },
      [width, rows, 1],
    );
    this.#touched.add(src.buffer);
  }

  /**
   * The texture copy of `t` kept by `holdTexture`, or `undefined` when there is none or a write to
   * `t`'s buffer (a dispatch binding it read-write, a copy into it, `clear`, `write`) was recorded
   * since the copy, or the buffer was released.
   */
  heldTexture(t: Tensor): HeldTexture | undefined {
    const h = this.#held.get(t.buffer);
    return h && h.size === t.size ? h : undefined;
  }

  /**
   * Keeps `tex`, a texture copy of `t` recorded by the caller (read with texel addresses of width
   * 2^shift), for `heldTexture` until `t`'s buffer is written or released; the texture is then
   * returned to `textures`. For tensors that many passes read unchanged (parameters).
   */
  holdTexture(t: Tensor, tex: Texture2D, shift: number): HeldTexture {
    this.#wrote(t.buffer);
    const h = { tex, shift, size: t.size };
    this.#held.set(t.buffer, h);
    return h;
  }

  /** Drops the held texture of a buffer about to go back to the pool (`Tensor.release`). */
  forgetBuffer(buffer: GPUBuffer): void {
    this.#wrote(buffer);
  }

  /** A write to `buffer` was recorded: its held texture copy, if any, is stale. */
  #wrote(buffer: GPUBuffer): void {
    if (this.#held.size === 0) return;
    const h = this.#held.get(buffer);
    if (!h) return;
    this.#held.delete(buffer);
    // commands recorded earlier that read it run first (one queue, in order), like any release
    this.textures.release(h.tex);
  }

  #checkBytes(shape: readonly number[]): number {
    const n = shapeSize(shape);
    const bytes = n * 4;
    if (bytes > this.limits.maxStorageBufferBindingSize) {
      throw new DeviceLimitError(
        `tensor [${
          shape.join(", ")
        }] needs ${bytes} bytes, over this device's storage binding limit of ${this.limits.maxStorageBufferBindingSize} bytes: use a smaller batch or sequence length`,
      );
    }
    return bytes;
  }

  // ---------------------------------------------------------------- kernels

  #module(spec: KernelSpec): GPUShaderModule {
    let m = this.#modules.get(spec.name);
    if (!m) {
      m = this.device.createShaderModule({ label: spec.name, code: spec.source });
      this.#modules.set(spec.name, m);
    }
    return m;
  }

  #layout(bindings: readonly BindingKind[]): GPUBindGroupLayout {
    const key = bindings.join(",");
    let layout = this.#layouts.get(key);
    if (!layout) {
      const entries: GPUBindGroupLayoutEntry[] = [{
        binding: 0,
        visibility: GPUShaderStage.COMPUTE,
        buffer: { type: "uniform", hasDynamicOffset: true, minBindingSize: PARAM_SLOT_BYTES },
      }];
      bindings.forEach((a, i) => {
        const entry: GPUBindGroupLayoutEntry = {
          binding: i + 1,
          visibility: GPUShaderStage.COMPUTE,
        };
        if (a === "texture") entry.texture = { sampleType: "unfilterable-float" };
        else if (a === "storage-texture") {
          entry.storageTexture = { access: "write-only", format: "rgba32float" };
        } else entry.buffer = { type: a === "read" ? "read-only-storage" : "storage" };
        entries.push(entry);
      });
      layout = this.device.createBindGroupLayout({ entries });
      this.#layouts.set(key, layout);
    }
    return layout;
  }

  /** The cached compute pipeline of a kernel spec (compiled on first use). */
  pipeline(spec: KernelSpec): CachedPipeline {
    const c = spec.constants ?? {};
    const constKey = Object.keys(c).sort().map((k) => `${k}=${c[k]}`).join(",");
    const key = `${spec.name}|${spec.entry}|${constKey}|${spec.bindings.join(",")}`;
    let p = this.#pipelines.get(key);
    if (!p) {
      const layout = this.#layout(spec.bindings);
      const pipeline = this.device.createComputePipeline({
        label: `${spec.name}:${spec.entry}`,
        layout: this.device.createPipelineLayout({ bindGroupLayouts: [layout] }),
        compute: { module: this.#module(spec), entryPoint: spec.entry, constants: { ...c } },
      });
      this.counters.pipelinesCreated++;
      p = { pipeline, layout, id: this.#pipelineIds++ };
      this.#pipelines.set(key, p);
    }
    return p;
  }

  /**
   * Records one dispatch: `params` are u32 words (use `f32Bits` for floats) written to the uniform
   * arena; `tensors` bind to 1…n in order; `workgroups` is the grid size. Kernels with texture
   * bindings use `dispatchResources`.
   */
  dispatch(
    spec: KernelSpec,
    params: ArrayLike<number>,
    tensors: readonly Tensor[],
    workgroups: readonly [number, number?, number?],
  ): void {
    this.dispatchResources(spec, params, tensors, workgroups);
  }

  /**
   * `dispatch` for kernels with texture bindings: `resources` bind to 1…n in order, tensors for
   * buffer bindings and `Texture2D`s (from `gpu.textures`) for "texture"/"storage-texture" ones.
   */
  dispatchResources(
    spec: KernelSpec,
    params: ArrayLike<number>,
    tensors: readonly Resource[],
    workgroups: readonly [number, number?, number?],
  ): void {
    if (tensors.length !== spec.bindings.length) {
      throw new InvalidArgumentError(
        `${spec.name}:${spec.entry} takes ${spec.bindings.length} tensors, got ${tensors.length}`,
      );
    }
    spec.bindings.forEach((kind, i) => {
      const isTexture = kind === "texture" || kind === "storage-texture";
      if (isTexture !== tensors[i] instanceof Texture2D) {
        throw new InvalidArgumentError(
          `${spec.name}:${spec.entry} binding ${i + 1} is ${kind}: pass a ${
            isTexture ? "Texture2D" : "Tensor"
          }`,
        );
      }
    });
    // WebGPU rejects a buffer bound both read-write and read-only in one dispatch, and the
    // rejection only invalidates the whole command buffer at submit: say so here instead
    const written = new Set<GPUBuffer>();
    spec.bindings.forEach((kind, i) => {
      const t = tensors[i];
      if (kind === "rw" && t instanceof Tensor) written.add(t.buffer);
    });
    spec.bindings.forEach((kind, i) => {
      const t = tensors[i];
      if (kind !== "rw" && t instanceof Tensor && written.has(t.buffer)) {
        throw new InvalidArgumentError(
          `${spec.name}:${spec.entry} binding ${i + 1} reads a buffer that another binding writes`,
        );
      }
    });
    if (params.length > PARAM_SLOT_BYTES / 4) {
      throw new InvalidArgumentError(`${spec.entry}: more than 64 parameter words`);
    }
    const [x, y = 1, z = 1] = workgroups;
    if (x === 0 || y === 0 || z === 0) return;
    const maxWg = this.limits.maxComputeWorkgroupsPerDimension;
    if (x > maxWg || y > maxWg || z > maxWg) {
      throw new DeviceLimitError(
        `${spec.entry}: grid ${x}×${y}×${z} is past the device limit of ${maxWg} workgroups per dimension`,
      );
    }
    const p = this.pipeline(spec);
    if (this.#arenaUsed === ARENA_SLOTS) this.flush();
    const slot = this.#arenaUsed++;
    const base = slot * (PARAM_SLOT_BYTES / 4);
    for (let i = 0; i < params.length; i++) this.#arenaU32[base + i] = params[i];
    const bindGroup = this.#bindGroup(p, tensors);
    const pass = this.#beginPass();
    pass.setPipeline(p.pipeline);
    pass.setBindGroup(0, bindGroup, [slot * PARAM_SLOT_BYTES]);
    pass.dispatchWorkgroups(x, y, z);
    for (const [i, t] of tensors.entries()) {
      if (!(t instanceof Tensor)) continue;
      this.#touched.add(t.buffer);
      if (spec.bindings[i] === "rw") this.#wrote(t.buffer);
    }
    this.counters.dispatches++;
    this.#recorded?.push({
      name: spec.name,
      entry: spec.entry,
      params: Uint32Array.from(params),
      workgroups: [x, y, z],
      label: this.recordingLabel,
      pipeline: p.pipeline,
      bindGroup,
    });
  }

  /**
   * Profiling: from now on keep a copy of every dispatch (pipeline, bind group, parameters, grid)
   * until `stopRecording`, which returns them. The bind groups hold their buffers and textures, so
   * `replay` can re-run a dispatch after its tensors went back to the pools (the contents are
   * whatever those buffers hold by then: fine for timing, meaningless as results).
   */
  startRecording(): void {
    this.#recorded = [];
  }

  /** Ends `startRecording` and returns the dispatches recorded since. */
  stopRecording(): RecordedDispatch[] {
    const r = this.#recorded ?? [];
    this.#recorded = null;
    return r;
  }

  /**
   * Records `times` more runs of a recorded dispatch (profiling; see `startRecording`). Unlike
   * `dispatch`, it does not know the buffers behind the bind group, so a `write` to one of them
   * before the next sync is not ordered after these runs: sync first.
   */
  replay(d: RecordedDispatch, times = 1): void {
    for (let i = 0; i < times; i++) {
      if (this.#arenaUsed === ARENA_SLOTS) this.flush();
      const slot = this.#arenaUsed++;
      this.#arenaU32.set(d.params, slot * (PARAM_SLOT_BYTES / 4));
      const pass = this.#beginPass();
      pass.setPipeline(d.pipeline);
      pass.setBindGroup(0, d.bindGroup, [slot * PARAM_SLOT_BYTES]);
      pass.dispatchWorkgroups(...d.workgroups);
      this.counters.dispatches++;
    }
  }

  #bindGroup(p: CachedPipeline, tensors: readonly Resource[]): GPUBindGroup {
    let key = `${p.id}`;
    for (const t of tensors) {
      key += t instanceof Texture2D ? `:t${t.id}` : `:${this.pool.id(t.buffer)}/${t.byteLength}`;
    }
    let bg = this.#bindGroups.get(key);
    if (!bg) {
      const entries: GPUBindGroupEntry[] = [{
        binding: 0,
        resource: { buffer: this.#arena, offset: 0, size: PARAM_SLOT_BYTES },
      }];
      tensors.forEach((t, i) =>
        entries.push({
          binding: i + 1,
          resource: t instanceof Texture2D
            ? t.view
            : { buffer: t.buffer, offset: 0, size: Math.max(4, t.byteLength) },
        })
      );
      bg = this.device.createBindGroup({ layout: p.layout, entries });
      this.counters.bindGroupsCreated++;
      this.#bindGroups.set(key, bg);
    }
    return bg;
  }

  // ---------------------------------------------------------------- recording

  #encoderNow(): GPUCommandEncoder {
    if (!this.#encoder) this.#encoder = this.device.createCommandEncoder();
    return this.#encoder;
  }

  #beginPass(): GPUComputePassEncoder {
    if (!this.#pass) this.#pass = this.#encoderNow().beginComputePass();
    return this.#pass;
  }

  #endPass(): GPUCommandEncoder {
    if (this.#pass) {
      this.#pass.end();
      this.#pass = null;
    }
    return this.#encoderNow();
  }

  /** Submits everything recorded so far (one submit). Does not wait. */
  flush(): void {
    if (!this.#encoder) return;
    const enc = this.#endPass();
    if (this.#arenaUsed > 0) {
      this.device.queue.writeBuffer(
        this.#arena,
        0,
        this.#arenaData,
        0,
        this.#arenaUsed * PARAM_SLOT_BYTES,
      );
    }
    this.device.queue.submit([enc.finish()]);
    this.counters.submits++;
    this.#encoder = null;
    this.#arenaUsed = 0;
    this.#touched.clear();
  }

  /** Submits pending work and waits until the GPU has finished it. */
  async sync(): Promise<void> {
    this.flush();
    await this.device.queue.onSubmittedWorkDone();
  }

  /** Submits pending work and reads a tensor back as f32. */
  async read(t: Tensor): Promise<Float32Array> {
    const out = new Float32Array(t.size);
    if (t.size === 0) return out;
    const bytes = t.byteLength;
    const staging = this.#takeReadback(bytes);
    const enc = this.#endPass();
    enc.copyBufferToBuffer(t.buffer, 0, staging, 0, bytes);
    this.flush();
    await staging.mapAsync(GPUMapMode.READ, 0, bytes);
    out.set(new Float32Array(staging.getMappedRange(0, bytes)));
    staging.unmap();
    this.#readback.push(staging);
    return out;
  }

  /** Reads a tensor whose storage holds i32/u32 values. */
  async readU32(t: Tensor): Promise<Uint32Array> {
    const f = await this.read(t);
    return new Uint32Array(f.buffer);
  }

  #takeReadback(bytes: number): GPUBuffer {
    let best = -1;
    for (let i = 0; i < this.#readback.length; i++) {
      const b = this.#readback[i];
      if (b.size >= bytes && (best < 0 || b.size < this.#readback[best].size)) best = i;
    }
    if (best >= 0) return this.#readback.splice(best, 1)[0];
    this.counters.buffersCreated++;
    const size = Math.max(256, 2 ** Math.ceil(Math.log2(bytes)));
    return this.device.createBuffer({
      size,
      usage: GPUBufferUsage.MAP_READ | GPUBufferUsage.COPY_DST,
    });
  }
}

let shared: Promise<Gpu> | null = null;

/** The process-wide GPU context (created on first call). Raises `NoAdapterError` if none. */
export function getGpu(): Promise<Gpu> {
  if (!shared) {
    shared = requestDevice().then(({ device, description }) => new Gpu(device, description));
    shared.catch(() => (shared = null));
  }
  return shared;
}
