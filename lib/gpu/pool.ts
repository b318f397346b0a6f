/**
 * Size-class buffer pool. Storage buffers are rounded up to a size class (powers of two with
 * quarter steps) and reused after `release`. Buffers touched by the command encoder that is still
 * being recorded are never handed out for a `queue.writeBuffer` upload, because that write would
 * land before the recorded commands run.
 * @module
 */

/** Usage flags of every pooled storage buffer. */
export const STORAGE_USAGE = GPUBufferUsage.STORAGE | GPUBufferUsage.COPY_SRC |
  GPUBufferUsage.COPY_DST;

/** Rounds a byte count up to its size class (≥ 256 B; 2^k·{1, 1.25, 1.5, 1.75}). */
export function sizeClass(bytes: number): number {
  const b = Math.max(256, Math.ceil(bytes / 4) * 4);
  const p = 2 ** Math.floor(Math.log2(b));
  for (const f of [1, 1.25, 1.5, 1.75, 2]) {
    const c = Math.ceil((p * f) / 256) * 256;
    if (c >= b) return c;
  }
  return p * 2;
}

/** Counters of GPU object creation, used by tests to prove a steady state allocates nothing. */
export interface GpuCounters {
  /** Storage and staging buffers created. */
  buffersCreated: number;
  /** Compute pipelines created. */
  pipelinesCreated: number;
  /** Bind groups created. */
  bindGroupsCreated: number;
  /** Queue submits. */
  submits: number;
  /** Compute dispatches recorded. */
  dispatches: number;
}

/** A pool of storage buffers keyed by size class. */
export class BufferPool {
  #free = new Map<number, GPUBuffer[]>();
  #ids = new WeakMap<GPUBuffer, number>();
  #nextId = 1;
  /** Bytes currently held by the pool's buffers, in use or free. */
  bytesAllocated = 0;

  /** Creates a pool on `device`, counting creations in `counters`. */
  constructor(readonly device: GPUDevice, readonly counters: GpuCounters) {}

  /** A stable small integer id for a buffer (used in bind-group cache keys). */
  id(buffer: GPUBuffer): number {
    let id = this.#ids.get(buffer);
    if (id === undefined) {
      id = this.#nextId++;
      this.#ids.set(buffer, id);
    }
    return id;
  }

  /**
   * Returns a free buffer of at least `bytes`. When `avoid` is given, buffers in it are skipped
   * (the recorder passes the set touched by the open encoder for uploads).
   */
  acquire(bytes: number, avoid?: Set<GPUBuffer>): GPUBuffer {
    const cls = sizeClass(bytes);
    const list = this.#free.get(cls);
    if (list && list.length > 0) {
      // Lowest id first (the list is kept sorted): a pass that takes and returns buffers in the
      // same sequence gets the same buffers every time, whatever the release order, so its bind
      // groups are cache hits in steady state.
      if (!avoid) return list.shift()!;
      for (let i = 0; i < list.length; i++) {
        if (!avoid.has(list[i])) return list.splice(i, 1)[0];
      }
    }
    const buffer = this.device.createBuffer({ size: cls, usage: STORAGE_USAGE });
    this.counters.buffersCreated++;
    this.bytesAllocated += cls;
    this.id(buffer);
    return buffer;
  }

  /** Returns a buffer to the pool. */
  release(buffer: GPUBuffer): void {
    const list = this.#free.get(buffer.size);
    if (!list) {
      this.#free.set(buffer.size, [buffer]);
      return;
    }
    const id = this.id(buffer);
    let i = list.length;
    while (i > 0 && this.id(list[i - 1]) > id) i--;
    list.splice(i, 0, buffer);
  }

  /** Destroys every free buffer (held ones are untouched). */
  trim(): void {
    for (const list of this.#free.values()) {
      for (const b of list) {
        this.bytesAllocated -= b.size;
        b.destroy();
      }
    }
    this.#free.clear();
  }
}
