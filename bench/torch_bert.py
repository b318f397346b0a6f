#!/usr/bin/python3
"""PyTorch CPU baseline for `deno task bench` (model section): times the forward and the
forward+backward of a randomly initialised BERT/DistilBERT classifier written from Hugging Face's
math (tests/fixtures/gen_model.py's reference, run in float32), and optionally exports the same
model to ONNX for onnxruntime-node. Prints one JSON line.

Usage: /usr/bin/python3 bench/torch_bert.py '{"arch":"bert","L":12,"d":768,"H":12,"F":3072,
  "V":30522,"B":32,"S":128,"runs":5,"threads":2,"onnx":"/tmp/x.onnx"}'
  (add "device":"cuda" to time it on a CUDA GPU; the ONNX export is for the CPU baseline)
"""
import json, os, sys, time
sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "tests", "fixtures"))
import torch
import gen_model as ref

cfg_in = json.loads(sys.argv[1])
torch.set_num_threads(cfg_in.get("threads", 2))
torch.set_default_dtype(torch.float32)
# "device": "cuda" times the same math on a CUDA GPU (a GPU machine's peer); default CPU.
DEV = cfg_in.get("device", "cpu")
sync = torch.cuda.synchronize if DEV.startswith("cuda") else (lambda: None)
arch = cfg_in["arch"]
L, d, H, F, V = cfg_in["L"], cfg_in["d"], cfg_in["H"], cfg_in["F"], cfg_in["V"]
B, S, runs = cfg_in["B"], cfg_in["S"], cfg_in.get("runs", 5)
cfg, w = ref.make_model(arch, "classification", L, d, H, F, V, 512, 2 if arch == "bert" else 0, 2, seed=1)
w = {k: v.to(torch.float32).to(DEV) for k, v in w.items()}  # made on the CPU (seeded), then moved
if DEV != "cpu":
    torch.set_default_device(DEV)  # torch >= 2.0; Debian's CPU torch is older
ids = torch.randint(1, V, (B, S))
tt = torch.zeros(B, S, dtype=torch.long)
am = torch.ones(B, S, dtype=torch.long)
hm = [torch.ones(B, H) for _ in range(L)]
fm = [torch.ones(B, F) for _ in range(L)]
labels = torch.zeros(B, dtype=torch.long)


def median(xs):
    xs = sorted(xs)
    n = len(xs)
    return xs[n // 2] if n % 2 else (xs[n // 2 - 1] + xs[n // 2]) / 2


def timed(fn):
    fn()
    sync()
    ts = []
    for _ in range(runs):
        t0 = time.perf_counter()
        fn()
        sync()
        ts.append(time.perf_counter() - t0)
    return median(ts)


with torch.no_grad():
    fwd = timed(lambda: ref.forward(cfg, w, ids, tt, am, hm, fm))
params = {k: v.clone().requires_grad_(True) for k, v in w.items()}


def step():
    out = ref.forward(cfg, params, ids, tt, am, hm, fm)
    loss = torch.nn.functional.cross_entropy(out, labels)
    loss.backward()


fb = timed(step)
result = {"forward_s": fwd, "forward_backward_s": fb, "threads": torch.get_num_threads(), "torch": torch.__version__,
          "device": DEV}
if cfg_in.get("onnx"):
    class M(torch.nn.Module):
        def forward(self, ids, tt, am):
            return ref.forward(cfg, w, ids, tt, am, hm, fm)
    try:
        torch.onnx.export(M(), (ids, tt, am), cfg_in["onnx"], input_names=["input_ids", "token_type_ids", "attention_mask"],
                          output_names=["logits"], opset_version=14)
        result["onnx"] = cfg_in["onnx"]
    except Exception as e:  # noqa: BLE001
        result["onnx_error"] = str(e).splitlines()[0][:200]
print(json.dumps(result))
