/**
 * Writes the zoo's MLM training windows as JSON for bench/torch_mlm.py: every GLUE train sentence
 * here and the SQuAD by-article train contexts (`mlmTexts("all")`), tokenized with the vocabulary
 * of DIR and packed into windows of LENGTH pieces exactly as `deno task zoo` pretrains on them:
 *
 *   deno run -A bench/mlm_items.ts OUT.json [--vocab DIR_OR_FILE] [--length 64] [--data ../shared/data]
 * @module
 */
import { parseArgs } from "node:util";
import { loadTokenizer } from "../lib/text/wordpiece.ts";
import { encodeMlmTexts } from "../lib/train/mlm.ts";
import { mlmTexts } from "../lib/train/run.ts";

const { values, positionals } = parseArgs({
  args: Deno.args,
  allowPositionals: true,
  options: {
    vocab: { type: "string", default: "../shared/data/vocab/bert-base-uncased.txt" },
    length: { type: "string", default: "64" },
    data: { type: "string" },
  },
});
if (positionals.length !== 1) {
  console.error(
    "usage: deno run -A bench/mlm_items.ts OUT.json [--vocab V] [--length 64] [--data D]",
  );
  Deno.exit(2);
}
const tok = await loadTokenizer(values.vocab!);
const texts = await mlmTexts("all", "sst2", { root: values.data });
const items = encodeMlmTexts(tok, texts, Number(values.length), { pack: true });
const special = ["[CLS]", "[SEP]", "[PAD]", "[UNK]", "[MASK]"].map((t) => tok.vocab.get(t));
await Deno.writeTextFile(
  positionals[0],
  JSON.stringify({
    mask: tok.vocab.get("[MASK]"),
    special,
    vocab: tok.vocab.size,
    items: items.map((i) => i.inputIds),
  }),
);
console.log(`${texts.length} texts → ${items.length} windows of ≤ ${values.length} pieces`);
