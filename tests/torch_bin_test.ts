/**
 * Tests of lib/model/torch_bin.ts and lib/model/zip.ts against files written by torch.save itself
 * (tests/fixtures/gen_torchbin.py, Debian's PyTorch): values, dtypes, strides and shared storages as
 * torch converts them; whole checkpoints equal to the same models' safetensors files; the legacy
 * format read too, and a pickle that calls os.system refused with FileFormatError.
 * @module
 */
import { FileFormatError } from "../lib/errors.ts";
import { readCheckpoint } from "../lib/model/checkpoint.ts";
import { isTorchZip, parseTorchCheckpoint } from "../lib/model/torch_bin.ts";
import { assertEquals, assertRejects, loadFixture } from "./helpers.ts";

const fixture = (name: string) => new URL(`./fixtures/${name}`, import.meta.url).pathname;
type Expected = Record<string, { shape: number[]; values: number[] }> & { skipped: string[] };

for (const file of ["torchbin_cases.bin", "torchbin_deflated.bin", "torchbin_legacy.bin"]) {
  Deno.test(`torch.save state dict: every float tensor as torch converts it (${file})`, async () => {
    const exp = await loadFixture<Expected>("torchbin_cases.json");
    const bytes = await Deno.readFile(fixture(file));
    assertEquals(isTorchZip(bytes), !file.includes("legacy"));
    const { tensors, skipped } = await parseTorchCheckpoint(bytes, file);
    assertEquals(skipped, exp.skipped);
    const names = Object.keys(exp).filter((k) => k !== "skipped");
    assertEquals([...tensors.keys()].sort(), names.sort());
    for (const name of names) {
      const t = tensors.get(name)!;
      assertEquals(t.shape, exp[name].shape, `${name} shape`);
      // exact: F16/BF16/F64 → f32 conversions are torch's, and views gather their own elements
      assertEquals([...t.data], exp[name].values.map(Math.fround), `${name} values`);
    }
  });
}

Deno.test("torch.save: other files, a hostile pickle and damaged files are refused", async () => {
  await assertRejects(
    () => parseTorchCheckpoint(new TextEncoder().encode("not a checkpoint"), "text.bin"),
    FileFormatError,
    "not a torch.save file",
  );
  const legacy = await Deno.readFile(fixture("torchbin_legacy.bin"));
  await assertRejects(
    () => parseTorchCheckpoint(legacy.slice(0, legacy.length - 10), "legacy-cut.bin"),
    FileFormatError,
    "cut off",
  );
  const hostile = await Deno.readFile(fixture("torchbin_hostile.bin"));
  await assertRejects(
    () => parseTorchCheckpoint(hostile, "hostile.bin"),
    FileFormatError,
    "refuses to load os.system",
  );
  const good = await Deno.readFile(fixture("torchbin_cases.bin"));
  await assertRejects(
    () => parseTorchCheckpoint(good.slice(0, good.length - 30), "cut.bin"),
    FileFormatError,
    "ZIP",
  );
  // a storage shorter than its tensor says: shrink data/0's size in the central directory
  const short = good.slice();
  const at = new TextDecoder("latin1").decode(short).lastIndexOf("torchbin_cases/data/0");
  const dir = new DataView(short.buffer, at - 46);
  assertEquals(dir.getUint32(0, true), 0x02014b50, "central directory entry");
  dir.setUint32(20, dir.getUint32(20, true) - 4, true);
  await assertRejects(
    () => parseTorchCheckpoint(short, "short.bin"),
    FileFormatError,
    "storage 0 has 44 bytes",
  );
});

for (
  const [name, safetensors] of [["torchbin_bert_pruned", "bert_pruned"], [
    "torchbin_distilbert_qa",
    "distilbert_qa",
  ]]
) {
  Deno.test(`checkpoint: ${name} (pytorch_model.bin${name.includes("qa") ? " shards" : ""}) equals the safetensors model`, async () => {
    const bin = await readCheckpoint(fixture(name));
    const st = await readCheckpoint(fixture(`models/${safetensors}`));
    assertEquals(bin.config, st.config);
    assertEquals([...bin.weights.keys()].sort(), [...st.weights.keys()].sort());
    for (const [k, t] of st.weights) {
      assertEquals(bin.weights.get(k)!.shape, t.shape, k);
      assertEquals(bin.weights.get(k)!.data, t.data, k);
    }
  });
} // deno-fmt-ignore
