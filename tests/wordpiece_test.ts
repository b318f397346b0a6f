/**
 * WordPiece tokenizer vs an independent Python transcription of HF's slow BertTokenizer
 * (tests/fixtures/gen_text.py): adversarial strings (tokens, ids, offsets), pair encodings with
 * truncation, every GLUE dev example of the tasks present (both vocabs), and offsets on every
 * SQuAD dev context.
 */
import { loadTokenizer, WordPieceTokenizer } from "../lib/text/wordpiece.ts";
import { readGlue } from "../lib/data/glue.ts";
import { readSquad } from "../lib/data/squad.ts";
import { FileFormatError, InvalidArgumentError } from "../lib/errors.ts";
import { assert, assertEquals, assertRejects, loadFixture } from "./helpers.ts";

const DATA = new URL("../../shared/data/", import.meta.url);
const dataPath = (p: string) => decodeURIComponent(new URL(p, DATA).pathname);
const VOCAB = { uncased: "vocab/bert-base-uncased.txt", cased: "vocab/bert-base-cased.txt" };
type VocabName = keyof typeof VOCAB;

const toks = new Map<VocabName, WordPieceTokenizer>();
async function tokenizer(name: VocabName): Promise<WordPieceTokenizer> {
  if (!toks.has(name)) toks.set(name, await loadTokenizer(dataPath(VOCAB[name])));
  return toks.get(name)!;
}

/** FNV-1a 32 over the little-endian bytes of each value (as gen_text.py's fnv). */
function fnv(values: number[]): number {
  let h = 0x811c9dc5;
  for (const v0 of values) {
    const v = v0 >>> 0;
    for (let k = 0; k < 4; k++) {
      h ^= (v >>> (8 * k)) & 0xff;
      h = Math.imul(h, 0x01000193) >>> 0;
    }
  }
  return h >>> 0;
}

interface Adversarial {
  strings: string[];
  pairs: [string, string | null, number, "longest_first" | "only_second"][];
  [vocab: string]: unknown;
}

Deno.test("wordpiece: vocab case detection and special ids", async () => {
  const u = await tokenizer("uncased");
  const c = await tokenizer("cased");
  assertEquals([u.doLowerCase, c.doLowerCase], [true, false]);
  assertEquals([u.padId, u.unkId, u.clsId, u.sepId], [0, 100, 101, 102]);
  assertEquals([c.unkId, c.clsId, c.sepId], [100, 101, 102]);
  assertEquals(u.vocab.get("the"), 1996);
  assertEquals(c.vocab.get("The"), 1109);
  assertEquals(u.idToToken.length, 30522);
});

Deno.test("wordpiece: adversarial strings match the Python reference (tokens, ids, offsets)", async () => {
  const fx = await loadFixture<Adversarial>("text_adversarial.json");
  for (const name of ["uncased", "cased"] as VocabName[]) {
    const tok = await tokenizer(name);
    const rows = fx[name] as { tokens: string[]; ids: number[]; offsets: [number, number][] }[];
    fx.strings.forEach((s, i) => {
      const got = tok.tokenize(s);
      assertEquals(got.tokens, rows[i].tokens, `${name} tokens of ${JSON.stringify(s)}`);
      assertEquals(got.ids, rows[i].ids, `${name} ids of ${JSON.stringify(s)}`);
      assertEquals(got.offsets, rows[i].offsets, `${name} offsets of ${JSON.stringify(s)}`);
    });
    const pairs = fx[name + "_pairs"] as { inputIds: number[]; tokenTypeIds: number[] }[];
    fx.pairs.forEach(([a, b, maxLength, truncation], i) => {
      const e = tok.encode(a, b ?? undefined, { maxLength, truncation });
      assertEquals(e.inputIds, pairs[i].inputIds, `${name} pair ${i}`);
      assertEquals(e.tokenTypeIds, pairs[i].tokenTypeIds, `${name} pair ${i} types`);
      assert(e.attentionMask.every((m) => m === 1));
      assertEquals(e.offsets.length, e.inputIds.length);
    });
  }
});

Deno.test("wordpiece: encode padding, specials' offsets and only_second failure", async () => {
  const tok = await tokenizer("uncased");
  const e = tok.encode("Hello", "world!", { padTo: 8 });
  assertEquals(e.inputIds, [101, 7592, 102, 2088, 999, 102, 0, 0]);
  assertEquals(e.tokenTypeIds, [0, 0, 0, 1, 1, 1, 0, 0]);
  assertEquals(e.attentionMask, [1, 1, 1, 1, 1, 1, 0, 0]);
  assertEquals(e.offsets, [[0, 0], [0, 5], [0, 0], [0, 5], [5, 6], [0, 0], [0, 0], [0, 0]]);
  await assertRejects(
    () => tok.encode("a b c d e f", "g", { maxLength: 6, truncation: "only_second" }),
    InvalidArgumentError,
    "only_second",
  );
});

Deno.test("wordpiece: every GLUE dev example encodes exactly as the reference (both vocabs)", async () => {
  const fx = await loadFixture<
    Record<string, { count: number } & Record<string, { hashes: number[]; first: number[][] }>>
  >("text_glue.json");
  let checked = 0;
  for (const task of Object.keys(fx)) {
    const examples = await readGlue(task, dataPath("glue/"), "dev");
    assertEquals(examples.length, fx[task].count, `${task} dev count`);
    for (const name of ["uncased", "cased"] as VocabName[]) {
      const tok = await tokenizer(name);
      const ref = fx[task][name];
      let bad = 0;
      let firstBad = -1;
      examples.forEach((ex, i) => {
        const e = tok.encode(ex.textA, ex.textB ?? undefined, { maxLength: 128 });
        if (i < ref.first.length) assertEquals(e.inputIds, ref.first[i], `${task} ${name} #${i}`);
        if (fnv([...e.inputIds, -1, ...e.tokenTypeIds]) !== ref.hashes[i]) {
          bad++;
          if (firstBad < 0) firstBad = i;
        }
        checked++;
      });
      assertEquals(bad, 0, `${task} ${name}: ${bad} mismatches, first at example ${firstBad}`);
    }
  }
  assert(checked === 2 * 9634, `checked ${checked}`);
});

/** What a token's source text becomes under the tokenizer's normalisation. */
function normalise(s: string, lower: boolean): string {
  let t = s.normalize("NFC");
  if (lower) t = t.toLowerCase().normalize("NFD").replace(/\p{Mn}/gu, "");
  return t;
}

Deno.test("wordpiece: offsets map back to the token on every SQuAD dev context and question", async () => {
  const squad = await readSquad(dataPath("squad/dev-v1.1.json"));
  for (const name of ["uncased", "cased"] as VocabName[]) {
    const tok = await tokenizer(name);
    let tokens = 0;
    const texts: string[] = [];
    for (const a of squad.data) {
      for (const p of a.paragraphs) {
        texts.push(p.context);
        for (const qa of p.qas) texts.push(qa.question);
      }
    }
    for (const text of texts) {
      const r = tok.tokenize(text);
      r.tokens.forEach((t, i) => {
        const [s, e] = r.offsets[i];
        assert(0 <= s && s < e && e <= text.length, `${name}: bad span [${s},${e}) for ${t}`);
        if (i > 0) assert(s >= r.offsets[i - 1][0], `${name}: offsets go backwards at ${t}`);
        if (t === "[UNK]") return;
        const src = normalise(text.slice(s, e), tok.doLowerCase);
        const piece = t.startsWith("##") ? t.slice(2) : t;
        assertEquals(src, piece, `${name}: token ${t} has source "${text.slice(s, e)}"`);
        tokens++;
      });
    }
    assert(tokens > 400_000, `${name}: only ${tokens} tokens checked`);
  }
});

Deno.test("wordpiece: loadTokenizer reads tokenizer_config.json and reports a missing vocab", async () => {
  const dir = await Deno.makeTempDir();
  try {
    await Deno.copyFile(dataPath(VOCAB.cased), `${dir}/vocab.txt`);
    const def = await loadTokenizer(dir);
    assertEquals(def.doLowerCase, false);
    await Deno.writeTextFile(`${dir}/tokenizer_config.json`, '{"do_lower_case": true}');
    const lower = await loadTokenizer(dir);
    assertEquals(lower.doLowerCase, true);
    assertEquals(lower.tokenize("HELLO").tokens, ["hello"]);
    await assertRejects(() => loadTokenizer(`${dir}/nothing`), FileFormatError, "vocab.txt");
    await assertRejects(
      () => Promise.resolve(WordPieceTokenizer.fromVocab("a\nb\n")),
      FileFormatError,
      "[CLS]",
    );
  } finally {
    await Deno.remove(dir, { recursive: true });
  }
});

/** A fast tokenizer's tokenizer.json for a vocab.txt: entries in shuffled order, as on the Hub. */
function tokenizerJson(vocabText: string, lowercase: boolean): string {
  const tokens = vocabText.split("\n").filter((t, i, a) => i < a.length - 1 || t !== "");
  const order = tokens.map((_, i) => i).sort((a, b) => ((a * 7919) % 1009) - ((b * 7919) % 1009));
  const vocab: Record<string, number> = {};
  for (const i of order) vocab[tokens[i]] = i;
  return JSON.stringify({
    version: "1.0",
    normalizer: {
      type: "BertNormalizer",
      clean_text: true,
      handle_chinese_chars: true,
      strip_accents: null,
      lowercase,
    },
    pre_tokenizer: { type: "BertPreTokenizer" },
    model: {
      type: "WordPiece",
      unk_token: "[UNK]",
      continuing_subword_prefix: "##",
      max_input_chars_per_word: 100,
      vocab,
    },
  });
}

Deno.test("wordpiece: a checkpoint with only tokenizer.json tokenizes as the Python reference", async () => {
  const fx = await loadFixture<Adversarial>("text_adversarial.json");
  const dir = await Deno.makeTempDir();
  try {
    for (const name of ["uncased", "cased"] as VocabName[]) {
      const vocabText = await Deno.readTextFile(dataPath(VOCAB[name]));
      await Deno.writeTextFile(
        `${dir}/tokenizer.json`,
        tokenizerJson(vocabText, name === "uncased"),
      );
      const tok = await loadTokenizer(dir);
      assertEquals(tok.doLowerCase, name === "uncased");
      const rows = fx[name] as { tokens: string[]; ids: number[] }[];
      fx.strings.forEach((s, i) => {
        const got = tok.tokenize(s);
        assertEquals(got.tokens, rows[i].tokens, `${name} tokens of ${JSON.stringify(s)}`);
        assertEquals(got.ids, rows[i].ids, `${name} ids of ${JSON.stringify(s)}`);
      });
    }
    // the normalizer decides, not the vocabulary's look: a cased vocab with lowercase: true
    const cased = await Deno.readTextFile(dataPath(VOCAB.cased));
    await Deno.writeTextFile(`${dir}/tokenizer.json`, tokenizerJson(cased, true));
    assertEquals((await loadTokenizer(dir)).tokenize("HELLO").tokens, ["hello"]);
    // tokenizer_config.json wins over the normalizer, as in transformers
    await Deno.writeTextFile(`${dir}/tokenizer.json`, tokenizerJson(cased, false));
    const kept = (await loadTokenizer(dir)).tokenize("HELLO").tokens;
    assertEquals(kept.join("").replaceAll("##", ""), "HELLO", "cased: case kept");
    await Deno.writeTextFile(`${dir}/tokenizer_config.json`, '{"do_lower_case": true}');
    assertEquals((await loadTokenizer(dir)).tokenize("HELLO").tokens, ["hello"]);
    // what cannot be read is refused with the reason
    const bad = (model: Record<string, unknown>) => JSON.stringify({ model });
    const cases: [string, string][] = [
      [bad({ type: "BPE", vocab: { a: 0 } }), "WordPiece"],
      [bad({ type: "WordPiece", continuing_subword_prefix: "@@", vocab: { a: 0 } }), '"##"'],
      [bad({ type: "WordPiece", vocab: { a: 0, b: 0 } }), "two tokens"],
      [bad({ type: "WordPiece", vocab: { a: 0, b: 5 } }), "not in 0..1"],
      ["{}", 'no "model"'],
      ["{", "not valid JSON"],
    ];
    for (const [text, msg] of cases) {
      await Deno.writeTextFile(`${dir}/tokenizer.json`, text);
      await assertRejects(() => loadTokenizer(dir), FileFormatError, msg);
    }
    await Deno.remove(`${dir}/tokenizer.json`);
    await assertRejects(() => loadTokenizer(dir), FileFormatError, "tokenizer.json");
  } finally {
    await Deno.remove(dir, { recursive: true });
  }
});
