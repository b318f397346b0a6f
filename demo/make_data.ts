/**
 * Builds the embedded demo's data and vocabulary (run from the repository root):
 *
 *   deno run -A demo/make_data.ts [--train 8000] [--seed 7]
 *
 * 1. demo/data/SST-2/train.tsv: a seeded sample (PCG32 `sampleIndices`, rows kept in file order)
 *    of `--train` rows of ../shared/data/glue/SST-2/train.tsv; dev.tsv: the whole SST-2 dev set.
 * 2. demo/vocab.txt: the bert-base-uncased vocabulary restricted to [PAD], [UNK], [CLS], [SEP],
 *    [MASK] and every word piece the demo train + dev sentences tokenize into (in the original
 *    vocabulary's order). WordPiece is greedy longest-match-first, so restricting the vocabulary to
 *    the pieces the full vocabulary produced cannot change any of these tokenizations; the script
 *    checks it anyway, sentence by sentence (same piece strings), and fails if one differs.
 * @module
 */
import { parseArgs } from "node:util";
import { readGlue } from "../lib/data/glue.ts";
import { loadTokenizer } from "../lib/text/wordpiece.ts";
import { sampleIndices } from "../lib/util/pcg32.ts";

const { values } = parseArgs({
  args: Deno.args,
  options: { train: { type: "string", default: "8000" }, seed: { type: "string", default: "7" } },
});
const shared = "../shared/data";
const n = Number(values.train), seed = Number(values.seed);
const trainText = (await Deno.readTextFile(`${shared}/glue/SST-2/train.tsv`)).split("\n");
const header = trainText[0];
const rows = trainText.slice(1).filter((l) => l.length > 0);
const picked = sampleIndices(rows.length, n, seed).indices.sort((a, b) => a - b);
await Deno.mkdir("demo/data/SST-2", { recursive: true });
await Deno.writeTextFile(
  "demo/data/SST-2/train.tsv",
  [header, ...picked.map((i) => rows[i])].join("\n") + "\n",
);
await Deno.copyFile(`${shared}/glue/SST-2/dev.tsv`, "demo/data/SST-2/dev.tsv");

const full = await loadTokenizer(`${shared}/vocab/bert-base-uncased.txt`);
const sentences = [
  ...(await readGlue("sst2", "demo/data", "train")),
  ...(await readGlue("sst2", "demo/data", "dev")),
].map((e) => e.textA);
const used = new Set<number>();
for (const id of ["[PAD]", "[UNK]", "[CLS]", "[SEP]", "[MASK]"]) used.add(full.vocab.get(id)!);
const before = sentences.map((s) => full.tokenize(s).tokens);
for (const s of sentences) for (const id of full.tokenize(s).ids) used.add(id);
const kept = [...used].sort((a, b) => a - b).map((id) => full.idToToken[id]);
await Deno.writeTextFile("demo/vocab.txt", kept.join("\n") + "\n");
const small = await loadTokenizer("demo/vocab.txt");
let unk = 0;
sentences.forEach((s, i) => {
  const after = small.tokenize(s).tokens;
  if (after.join(" ") !== before[i].join(" ")) {
    throw new Error(`tokenization changed for "${s}": ${before[i]} → ${after}`);
  }
  unk += after.filter((t) => t === "[UNK]").length;
});
console.log(
  `demo: ${picked.length} train rows, ${sentences.length - picked.length} dev rows; vocabulary ` +
    `${kept.length} of ${full.idToToken.length} pieces; tokenization of all ${sentences.length} ` +
    `sentences unchanged (${unk} [UNK] pieces, as with the full vocabulary)`,
);
