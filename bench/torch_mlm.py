#!/usr/bin/python3
"""PyTorch reference of the zoo's masked-LM pretraining, to tell a property of the recipe from a
defect of ours: BERT (post-LN, exact GELU, N(0, 0.02) init) with BERT's MLM head (dense, GELU,
LayerNorm, decoder tied to the word embeddings + bias) on the windows of bench/mlm_items.ts, 15% of
the non-special pieces chosen, 80/10/10 [MASK]/random/kept, cross-entropy on the chosen ones, AdamW
(decay 0.01, none on biases and LayerNorms), linear warm-up over 6% then linear decay, gradient norm
clipped at 1, dropout 0.1 — `pretrainMlm`'s recipe, with torch's own random numbers.

  deno run -A bench/mlm_items.ts /tmp/items.json
  /usr/bin/python3 bench/torch_mlm.py /tmp/items.json [--steps 2000 --lr 1e-3 --batch 32
      --layers 4 --hidden 128 --heads 4 --threads 1]

Prints the mean loss of every 100 steps and the seconds so far.
"""
import argparse, json, time
import torch
import torch.nn as nn
import torch.nn.functional as F

ap = argparse.ArgumentParser()
ap.add_argument("items")
ap.add_argument("--steps", type=int, default=2000)
ap.add_argument("--lr", type=float, default=1e-3)
ap.add_argument("--batch", type=int, default=32)
ap.add_argument("--layers", type=int, default=4)
ap.add_argument("--hidden", type=int, default=128)
ap.add_argument("--heads", type=int, default=4)
ap.add_argument("--threads", type=int, default=1)
ap.add_argument("--seed", type=int, default=0)
a = ap.parse_args()
torch.set_num_threads(a.threads)
torch.manual_seed(a.seed)
d = json.load(open(a.items))
items, MASK, V = d["items"], d["mask"], d["vocab"]
special = torch.tensor(d["special"])
H, L, A = a.hidden, a.layers, a.heads


class Layer(nn.Module):
    def __init__(s):
        super().__init__()
        s.att = nn.MultiheadAttention(H, A, dropout=0.1, batch_first=True)
        s.ln1, s.ln2 = nn.LayerNorm(H, eps=1e-12), nn.LayerNorm(H, eps=1e-12)
        s.f1, s.f2, s.dr = nn.Linear(H, 4 * H), nn.Linear(4 * H, H), nn.Dropout(0.1)

    def forward(s, x, pad):
        y, _ = s.att(x, x, x, key_padding_mask=pad, need_weights=False)
        x = s.ln1(x + s.dr(y))
        return s.ln2(x + s.dr(s.f2(F.gelu(s.f1(x)))))


class Mlm(nn.Module):
    def __init__(s):
        super().__init__()
        s.we, s.pe, s.te = nn.Embedding(V, H), nn.Embedding(512, H), nn.Embedding(2, H)
        s.ln, s.dr = nn.LayerNorm(H, eps=1e-12), nn.Dropout(0.1)
        s.layers = nn.ModuleList([Layer() for _ in range(L)])
        s.dense, s.hln, s.bias = nn.Linear(H, H), nn.LayerNorm(H, eps=1e-12), nn.Parameter(torch.zeros(V))
        for m in s.modules():
            if isinstance(m, (nn.Linear, nn.Embedding)):
                nn.init.normal_(m.weight, std=0.02)
            if isinstance(m, nn.Linear) and m.bias is not None:
                nn.init.zeros_(m.bias)

    def forward(s, ids, pad, chosen):
        pos = torch.arange(ids.shape[1])[None]
        x = s.dr(s.ln(s.we(ids) + s.pe(pos) + s.te(torch.zeros_like(ids))))
        for l in s.layers:
            x = l(x, pad)
        h = s.hln(F.gelu(s.dense(x[chosen])))
        return h @ s.we.weight.T + s.bias


m = Mlm()
nodecay = [p for n, p in m.named_parameters() if p.ndim < 2 or "ln" in n]
decay = [p for n, p in m.named_parameters() if not (p.ndim < 2 or "ln" in n)]
opt = torch.optim.AdamW([{"params": decay, "weight_decay": 0.01}, {"params": nodecay, "weight_decay": 0.0}], lr=a.lr)
warm = max(1, round(0.06 * a.steps))
sched = torch.optim.lr_scheduler.LambdaLR(
    opt, lambda s: (s + 1) / warm if s < warm else max(0.0, (a.steps - s) / (a.steps - warm)))
g = torch.Generator().manual_seed(a.seed + 1)
t0, losses, step = time.time(), [], 0
while step < a.steps:
    order = torch.randperm(len(items), generator=g).tolist()
    for i in range(0, len(order), a.batch):
        if step >= a.steps:
            break
        rows = [items[j] for j in order[i:i + a.batch]]
        S = max(map(len, rows))
        ids = torch.zeros(len(rows), S, dtype=torch.long)
        pad = torch.ones(len(rows), S, dtype=torch.bool)
        for r, it in enumerate(rows):
            ids[r, :len(it)] = torch.tensor(it)
            pad[r, :len(it)] = False
        chosen = ~pad & ~torch.isin(ids, special) & (torch.rand(ids.shape, generator=g) < 0.15)
        labels = ids[chosen]
        inp, u = ids.clone(), torch.randint(0, 10, ids.shape, generator=g)
        inp[chosen & (u < 8)] = MASK
        rnd = chosen & (u == 8)
        inp[rnd] = torch.randint(0, V, (int(rnd.sum()),), generator=g)
        m.train()
        loss = F.cross_entropy(m(inp, pad, chosen), labels)
        opt.zero_grad()
        loss.backward()
        torch.nn.utils.clip_grad_norm_(m.parameters(), 1.0)
        opt.step()
        sched.step()
        losses.append(loss.item())
        step += 1
        if step % 100 == 0:
            print(f"step {step} loss {sum(losses[-100:]) / 100:.3f} {time.time() - t0:.0f}s", flush=True)
