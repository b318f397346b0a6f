/**
 * A minimal reader of ZIP archives (PKWARE APPNOTE 6.3): the central directory (with ZIP64
 * sizes and offsets), and entries stored (method 0, what `torch.save` writes) or deflated
 * (method 8, through the platform's `DecompressionStream`). Enough for PyTorch checkpoints; no
 * encryption, no multi-disk archives.
 * @module
 */
import { FileFormatError } from "../errors.ts";

/** One file of an archive. */
export interface ZipEntry {
  /** Path inside the archive. */
  name: string;
  /** 0 stored, 8 deflated. */
  method: number;
  /** Bytes in the archive. */
  compressedSize: number;
  /** Bytes once extracted. */
  size: number;
  /** Offset of the entry's local header. */
  localOffset: number;
}

const u16 = (b: DataView, o: number) => b.getUint16(o, true);
const u32 = (b: DataView, o: number) => b.getUint32(o, true);
const u64 = (b: DataView, o: number) => {
  const v = b.getBigUint64(o, true);
  if (v > BigInt(Number.MAX_SAFE_INTEGER)) throw new FileFormatError("zip: 64-bit value too large");
  return Number(v);
};

/** Lists the entries of a ZIP archive held in memory. Raises FileFormatError on damage. */
export function zipEntries(bytes: Uint8Array, where: string): Map<string, ZipEntry> {
  const view = new DataView(bytes.buffer, bytes.byteOffset, bytes.byteLength);
  const fail = (why: string): never => {
    throw new FileFormatError(`${where}: not a readable ZIP archive (${why})`);
  };
  // end of central directory: 22 bytes plus a comment of at most 65535
  let eocd = -1;
  for (let i = bytes.length - 22; i >= Math.max(0, bytes.length - 22 - 65535); i--) {
    if (u32(view, i) === 0x06054b50) {
      eocd = i;
      break;
    }
  }
  if (eocd < 0) fail("no end-of-central-directory record");
  let count = u16(view, eocd + 10);
  let cdSize = u32(view, eocd + 12);
  let cdOffset = u32(view, eocd + 16);
  if (count === 0xffff || cdSize === 0xffffffff || cdOffset === 0xffffffff) {
    const loc = eocd - 20;
    if (loc < 0 || u32(view, loc) !== 0x07064b50) fail("ZIP64 locator missing");
    const z = u64(view, loc + 8);
    if (z + 56 > bytes.length || u32(view, z) !== 0x06064b50) fail("bad ZIP64 record");
    count = u64(view, z + 32);
    cdSize = u64(view, z + 40);
    cdOffset = u64(view, z + 48);
  }
  if (cdOffset + cdSize > bytes.length) fail("central directory past the end");
  const out = new Map<string, ZipEntry>();
  let p = cdOffset;
  for (let k = 0; k < count; k++) {
    if (p + 46 > bytes.length || u32(view, p) !== 0x02014b50) fail(`bad directory entry ${k}`);
    const method = u16(view, p + 10);
    let compressedSize = u32(view, p + 20);
    let size = u32(view, p + 24);
    const nameLen = u16(view, p + 28), extraLen = u16(view, p + 30), commentLen = u16(view, p + 32);
    let localOffset = u32(view, p + 42);
    if (p + 46 + nameLen + extraLen > bytes.length) fail(`directory entry ${k} past the end`);
    const name = new TextDecoder().decode(bytes.subarray(p + 46, p + 46 + nameLen));
    // ZIP64 extended information: the 64-bit values of the fields that read 0xffffffff, in order
    let e = p + 46 + nameLen;
    const end = e + extraLen;
    while (e + 4 <= end) {
      const id = u16(view, e), len = u16(view, e + 2);
      if (id === 0x0001) {
        let f = e + 4;
        if (size === 0xffffffff) {
          size = u64(view, f);
          f += 8;
        }
        if (compressedSize === 0xffffffff) {
          compressedSize = u64(view, f);
          f += 8;
        }
        if (localOffset === 0xffffffff) localOffset = u64(view, f);
      }
      e += 4 + len;
    }
    out.set(name, { name, method, compressedSize, size, localOffset });
    p += 46 + nameLen + extraLen + commentLen;
  }
  return out;
}

/** The extracted bytes of one entry (a view into `bytes` when stored). */
export async function zipRead(
  bytes: Uint8Array,
  entry: ZipEntry,
  where: string,
): Promise<Uint8Array> {
  const view = new DataView(bytes.buffer, bytes.byteOffset, bytes.byteLength);
  const h = entry.localOffset;
  if (h + 30 > bytes.length || u32(view, h) !== 0x04034b50) {
    throw new FileFormatError(`${where}: ${entry.name}: bad local header`);
  }
  const start = h + 30 + u16(view, h + 26) + u16(view, h + 28);
  if (start + entry.compressedSize > bytes.length) {
    throw new FileFormatError(`${where}: ${entry.name}: data past the end of the archive`);
  }
  const raw = bytes.subarray(start, start + entry.compressedSize);
  if (entry.method === 0) return raw;
  if (entry.method !== 8) {
    throw new FileFormatError(`${where}: ${entry.name}: compression method ${entry.method}`);
  }
  const stream = new Blob([raw.slice()]).stream().pipeThrough(
    new DecompressionStream("deflate-raw"),
  );
  const out = new Uint8Array(await new Response(stream).arrayBuffer());
  if (out.length !== entry.size) {
    throw new FileFormatError(
      `${where}: ${entry.name}: inflated to ${out.length} bytes, expected ${entry.size}`,
    );
  }
  return out;
}
