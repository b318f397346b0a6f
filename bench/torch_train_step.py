#!/usr/bin/python3
"""PyTorch CPU reference for training speed (and a quick feasibility check of a training recipe).

A BERT encoder + classification head written directly in PyTorch (float32, same math as
fastprune's model: post-LN, exact GELU, pooler tanh), trained with torch.optim.AdamW.

  /usr/bin/python3 bench/torch_train_step.py time  [--layers 4 --hidden 256 --heads 4 --ffn 1024 --batch 64 --seq 64 --vocab 30522 --steps 5]
      prints the median time of a full training step (forward + backward + AdamW update);
      --device cuda times it on a CUDA GPU instead of the CPU.
"""
import argparse, math, statistics, sys, time
import torch
import torch.nn as nn
import torch.nn.functional as F


class Bert(nn.Module):
    def __init__(self, V, d, L, H, Fw, P=512, labels=2, drop=0.1):
        super().__init__()
        self.H, self.drop = H, drop
        self.word, self.pos, self.typ = nn.Embedding(V, d), nn.Embedding(P, d), nn.Embedding(2, d)
        self.ln = nn.LayerNorm(d, eps=1e-12)
        self.layers = nn.ModuleList()
        for _ in range(L):
            self.layers.append(nn.ModuleDict(dict(qkv=nn.Linear(d, 3 * d), o=nn.Linear(d, d), ln1=nn.LayerNorm(d, eps=1e-12),
                                                  f1=nn.Linear(d, Fw), f2=nn.Linear(Fw, d), ln2=nn.LayerNorm(d, eps=1e-12))))
        self.pool, self.cls = nn.Linear(d, d), nn.Linear(d, labels)
        for m in self.modules():
            if isinstance(m, (nn.Linear, nn.Embedding)):
                nn.init.normal_(m.weight, std=0.02)
            if isinstance(m, nn.Linear):
                nn.init.zeros_(m.bias)

    def forward(self, ids, am):
        B, S = ids.shape
        x = self.word(ids) + self.pos(torch.arange(S))[None] + self.typ(torch.zeros_like(ids))
        x = F.dropout(self.ln(x), self.drop, self.training)
        bias = (1.0 - am.float())[:, None, None, :] * torch.finfo(torch.float32).min
        for l in self.layers:
            q, k, v = l["qkv"](x).view(B, S, 3, self.H, -1).permute(2, 0, 3, 1, 4)
            p = torch.softmax(q @ k.transpose(-1, -2) / math.sqrt(q.shape[-1]) + bias, -1)
            p = F.dropout(p, self.drop, self.training)
            a = (p @ v).transpose(1, 2).reshape(B, S, -1)
            x = l["ln1"](x + F.dropout(l["o"](a), self.drop, self.training))
            f = l["f2"](F.gelu(l["f1"](x)))
            x = l["ln2"](x + F.dropout(f, self.drop, self.training))
        h = F.dropout(torch.tanh(self.pool(x[:, 0])), self.drop, self.training)
        return self.cls(h)


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("mode", choices=["time"])
    ap.add_argument("--layers", type=int, default=4)
    ap.add_argument("--hidden", type=int, default=256)
    ap.add_argument("--heads", type=int, default=4)
    ap.add_argument("--ffn", type=int, default=1024)
    ap.add_argument("--batch", type=int, default=64)
    ap.add_argument("--seq", type=int, default=64)
    ap.add_argument("--vocab", type=int, default=30522)
    ap.add_argument("--steps", type=int, default=5)
    ap.add_argument("--threads", type=int, default=0)
    ap.add_argument("--device", default="cpu", help="cpu (default) or cuda: the same step on a CUDA GPU")
    a = ap.parse_args()
    if a.device != "cpu":
        torch.set_default_device(a.device)  # torch >= 2.0; Debian's CPU torch is older
    sync = torch.cuda.synchronize if a.device.startswith("cuda") else (lambda: None)
    if a.threads:
        torch.set_num_threads(a.threads)
    torch.manual_seed(0)
    m = Bert(a.vocab, a.hidden, a.layers, a.heads, a.ffn)
    m.train()
    nd = [p for n, p in m.named_parameters() if n.endswith("bias") or "ln" in n]
    dd = [p for n, p in m.named_parameters() if not (n.endswith("bias") or "ln" in n)]
    opt = torch.optim.AdamW([{"params": dd, "weight_decay": 0.01}, {"params": nd, "weight_decay": 0.0}], lr=1e-4)
    ids = torch.randint(1, a.vocab, (a.batch, a.seq))
    am = torch.ones(a.batch, a.seq, dtype=torch.long)
    y = torch.randint(0, 2, (a.batch,))
    times = []
    for i in range(a.steps + 1):
        t = time.perf_counter()
        opt.zero_grad()
        loss = F.cross_entropy(m(ids, am), y)
        loss.backward()
        torch.nn.utils.clip_grad_norm_(m.parameters(), 1.0)
        opt.step()
        sync()
        if i > 0:
            times.append(time.perf_counter() - t)
    med = statistics.median(times)
    print(f"pytorch {torch.__version__} {a.device} threads={torch.get_num_threads()} L{a.layers}/H{a.hidden}/A{a.heads}/F{a.ffn} "
          f"V{a.vocab} batch {a.batch}x{a.seq}: median step {med * 1000:.1f} ms over {a.steps} steps "
          f"({a.batch * a.seq / med:.0f} tokens/s)")


if __name__ == "__main__":
    main()
