"""Parity with Hugging Face transformers itself (not our own transcription of its math).

Runs where `transformers`, `torch` and `safetensors` are installed (the GPU machine's image has
them; this project's development machine does not):

  python3 bench/hf_parity.py make DIR        # HF-initialised BERT-base / DistilBERT-base
                                             # classifiers saved by save_pretrained (+ vocab.txt),
                                             # as safetensors and as pytorch_model.bin (-bin)
  python3 bench/hf_parity.py compare DIR...  # each checkpoint: our logits vs transformers'

`compare` builds a padded batch (one row with 9 pad positions, BERT segment ids), runs
`deno run -A scripts/forward.ts` on it, loads the same directory with transformers (eager attention)
and prints the largest logit difference. A checkpoint that transformers cannot load natively (our
compacted models: `intermediate_sizes` is ours, and `pruned_heads` support differs by version) is
built at full size and its attention and FFN layers are replaced by Linear layers of the saved
shapes, with the head counts set to match; the line says which way it was loaded and why.
Exit status 1 if any checkpoint differs by more than 1e-4 + 1e-3·max|logit|.
"""

import json
import os
import shutil
import subprocess
import sys
import tempfile

import torch


def make(out):
    import transformers as T

    vocab = os.path.join(os.path.dirname(__file__), "..", "..", "shared", "data", "vocab",
                         "bert-base-uncased.txt")
    torch.manual_seed(0)
    for name, cfg, cls in [
        ("hf-bert-base", T.BertConfig(num_labels=2), T.BertForSequenceClassification),
        ("hf-distilbert-base", T.DistilBertConfig(num_labels=2),
         T.DistilBertForSequenceClassification),
    ]:
        m = cls(cfg).eval()
        with torch.no_grad():  # biases and LayerNorm off their 0 / 1 init, so none can hide
            for p in m.parameters():
                if p.dim() == 1:
                    p.add_(0.05 * torch.randn_like(p))
        for suffix, safe in [("", True), ("-bin", False)]:  # safetensors, and pytorch_model.bin
            d = os.path.join(out, name + suffix)
            m.save_pretrained(d, safe_serialization=safe)
            shutil.copy(vocab, os.path.join(d, "vocab.txt"))
            print(d, "transformers", T.__version__, flush=True)


def batch(cfg):
    g = torch.Generator().manual_seed(1)
    B, S = 4, 24
    vocab = cfg["vocab_size"]
    ids = torch.randint(999, min(vocab, 30000), (B, S), generator=g)
    ids[:, 0] = 101 if vocab > 101 else 1
    mask = torch.ones(B, S, dtype=torch.long)
    mask[1, S - 9:] = 0
    ids[1, S - 9:] = 0
    types = torch.zeros(B, S, dtype=torch.long)
    types[:, S // 2:] = 1
    types[1, S - 9:] = 0
    return ids, mask, types


def surgery(m, cfg, sd):
    """Full-size model → the saved (compacted) shapes, per layer."""
    bert = cfg["model_type"] == "bert"
    d = cfg["hidden_size"] if bert else cfg["dim"]
    nh = cfg["num_attention_heads"] if bert else cfg["n_heads"]
    hs = d // nh
    if bert:
        layers, pre = m.bert.encoder.layer, "bert.encoder.layer"
    else:
        layers, pre = m.distilbert.transformer.layer, "distilbert.transformer.layer"
    lin = torch.nn.Linear
    for l, layer in enumerate(layers):
        if bert:
            width = sd[f"{pre}.{l}.attention.self.query.weight"].shape[0]
            ffn = sd[f"{pre}.{l}.intermediate.dense.weight"].shape[0]
            att = layer.attention.self
            att.query, att.key, att.value = lin(d, width), lin(d, width), lin(d, width)
            layer.attention.output.dense = lin(width, d)
            layer.intermediate.dense = lin(d, ffn)
            layer.output.dense = lin(ffn, d)
            att.num_attention_heads = width // hs
            att.all_head_size = width
        else:
            width = sd[f"{pre}.{l}.attention.q_lin.weight"].shape[0]
            ffn = sd[f"{pre}.{l}.ffn.lin1.weight"].shape[0]
            att = layer.attention
            att.q_lin, att.k_lin, att.v_lin = lin(d, width), lin(d, width), lin(d, width)
            att.out_lin = lin(width, d)
            layer.ffn.lin1, layer.ffn.lin2 = lin(d, ffn), lin(ffn, d)
            att.n_heads = width // hs
            att.dim = width
        for a in ("attention_head_size", "head_dim", "dim_per_head"):
            if hasattr(att, a):
                setattr(att, a, hs)
        if hasattr(att, "num_heads"):
            att.num_heads = width // hs


def load(d, cfg):
    import transformers as T

    cls = getattr(T, cfg["architectures"][0])
    why = ""
    try:
        m, info = cls.from_pretrained(d, attn_implementation="eager", output_loading_info=True)
        bad = [k for k in info.get("missing_keys", []) if "position_ids" not in k]
        bad += list(info.get("mismatched_keys", []))
        if not bad:
            return m.eval(), "native"
        why = f"native load incomplete: {bad[:3]}"
    except Exception as e:  # noqa: BLE001 — any failure of the native path is reported
        why = f"native load failed: {type(e).__name__}: {str(e)[:160]}"
    from safetensors.torch import load_file

    c2 = dict(cfg)
    c2["pruned_heads"] = {}
    c2.pop("intermediate_sizes", None)
    with tempfile.TemporaryDirectory() as t:
        with open(os.path.join(t, "config.json"), "w") as f:
            json.dump(c2, f)
        config = T.AutoConfig.from_pretrained(t)
    try:
        m = cls._from_config(config, attn_implementation="eager")
    except TypeError:
        m = cls(config)
    sd = load_file(os.path.join(d, "model.safetensors"))
    surgery(m, cfg, sd)
    missing, unexpected = m.load_state_dict(sd, strict=False)
    missing = [k for k in missing if "position_ids" not in k]
    if missing or unexpected:
        raise RuntimeError(f"surgery left missing {missing[:3]} unexpected {unexpected[:3]}")
    return m.eval(), "surgery (" + why + ")"


def compare(dirs):
    import transformers as T

    print("transformers", T.__version__, "torch", torch.__version__, flush=True)
    failed = 0
    for d in dirs:
        cfg = json.load(open(os.path.join(d, "config.json")))
        ids, mask, types = batch(cfg)
        bert = cfg["model_type"] == "bert"
        inp = {"input_ids": ids.tolist(), "attention_mask": mask.tolist()}
        if bert:
            inp["token_type_ids"] = types.tolist()
        with tempfile.TemporaryDirectory() as t:
            with open(os.path.join(t, "in.json"), "w") as f:
                json.dump(inp, f)
            r = subprocess.run(["deno", "run", "-A", "scripts/forward.ts", "--model", d,
                                "--input", f"{t}/in.json", "--out", f"{t}/out.json"],
                               capture_output=True, text=True)
            if r.returncode != 0:
                print(f"FAIL {d}: our forward exited {r.returncode}: {r.stderr[-400:]}", flush=True)
                failed += 1
                continue
            ours = json.load(open(f"{t}/out.json"))
        try:
            m, how = load(d, cfg)
        except Exception as e:  # noqa: BLE001
            print(f"FAIL {d}: transformers could not load it: {type(e).__name__}: {e}", flush=True)
            failed += 1
            continue
        kw = {"input_ids": ids, "attention_mask": mask}
        if bert:
            kw["token_type_ids"] = types
        with torch.no_grad():
            o = m(**kw)
        pairs = []
        if "logits" in ours:
            pairs.append((torch.tensor(ours["logits"]), o.logits))
        else:  # QA: compare at the real tokens only
            keep = mask.bool()
            pairs.append((torch.tensor(ours["start_logits"])[keep], o.start_logits[keep]))
            pairs.append((torch.tensor(ours["end_logits"])[keep], o.end_logits[keep]))
        err = max(float((a - b).abs().max()) for a, b in pairs)
        scale = max(float(b.abs().max()) for _, b in pairs)
        ok = err <= 1e-4 + 1e-3 * scale
        failed += not ok
        print(f"{'ok  ' if ok else 'FAIL'} {d}: max |ours − transformers| = {err:.3g} "
              f"(max |logit| {scale:.3g}); loaded by {how}", flush=True)
    print(f"{len(dirs) - failed} passed, {failed} failed")
    return 1 if failed else 0


if __name__ == "__main__":
    if len(sys.argv) >= 3 and sys.argv[1] == "make":
        make(sys.argv[2])
    elif len(sys.argv) >= 3 and sys.argv[1] == "compare":
        sys.exit(compare(sys.argv[2:]))
    else:
        print(__doc__)
        sys.exit(2)
