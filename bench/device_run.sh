#!/usr/bin/env bash
# One lease of a GPU machine (the `device` tool of our workplace): checks and times fastprune on a
# real GPU in one short call, and trains zoo models there. Expects, carried beside the working tree
# (both git-ignored; bench/README.md "On a GPU machine" says how they were made):
#   .gl/*.deb                  the Vulkan loader and GL/EGL dispatch libraries
#   .dev/deno.xz               this machine's Deno binary, xz-compressed
#   .dev/shared_data.tar.xz    ../shared/data (GLUE, SQuAD, vocabularies), unpacked beside the repo
# Writes $OUT/logs.tgz (every log, bench JSON, zoo metrics) and $OUT/m_<model>.tar (trained zoo
# models, float16) and prints a short summary last. Each step runs under its own time limit.
# Every step's limit is cut to what is left of DEADLINE seconds (default 500) since the start, and a
# step with under 10 s left is skipped, so the call ends inside the lease's time.
# Usage: [DEADLINE=s] bash bench/device_run.sh [zoo-only-list] [mlm-steps]
#   e.g. bash bench/device_run.sh mrpc-distilbert,rte-distilbert 500   (no zoo list: no training)
# Default plan, in order: Hugging Face parity (bench/hf_make.ts + bench/hf_parity.py: ours vs
# transformers, both directions, safetensors and pytorch_model.bin), the test suite, pruning
# transformers' BERT-base (its report.md, with per-sub-layer tuning times, lands in the logs), the
# demo pruning, the quick bench, optional zoo training, PyTorch CUDA peers, the rest of the bench.
# PLAN=paths instead times the storage against the texture matmul path (the fourteenth session's
# second lease). History: the first H100 run (bench/results/h100-2026-11-27/) spent its 110 s on
# the full-shape model section, and MLM pretraining ran at 3 steps/s; the fourteenth session's runs
# are in bench/results/h100-2026-11-27-s14/.
set -u
OUT=${OUT:-/tmp/device_out}
ZOO_ONLY=${1:-}
MLM_STEPS=${2:-500}
L=/tmp/devlogs/logs # packed into $OUT/logs.tgz after every step (few files may come back)
mkdir -p "$L" "$OUT"
t0=$(date +%s)
stamp() { echo "[$(($(date +%s) - t0)) s] $*"; }

for f in .gl/*.deb; do dpkg -x "$f" /; done
ldconfig
if [ -f /usr/local/nvidia/share/vulkan/icd.d/nvidia_icd.json ]; then
  export VK_DRIVER_FILES=/usr/local/nvidia/share/vulkan/icd.d/nvidia_icd.json
  export __EGL_VENDOR_LIBRARY_FILENAMES=/usr/local/nvidia/share/glvnd/egl_vendor.d/10_nvidia.json
fi
mkdir -p /tmp/denobin
xz -dc .dev/deno.xz >/tmp/denobin/deno && chmod +x /tmp/denobin/deno
[ -d ../shared/data ] || { mkdir -p ../shared && tar -C ../shared -xJf .dev/shared_data.tar.xz; }
export PATH=/tmp/denobin:$PATH XDG_RUNTIME_DIR=/tmp DENO_DIR=/tmp/denodir
export FASTPRUNE_PYTHON=$(command -v python3)
nvidia-smi -L 2>&1 | head -2
stamp "deno $(deno --version | head -1), python $FASTPRUNE_PYTHON, cores $(nproc)"

adapter=$(deno eval 'const a = await navigator.gpu.requestAdapter({ powerPreference: "high-performance" });
const i = a?.info;
console.log(i ? [i.vendor, i.architecture, i.device, i.description].join(" | ") : "NO ADAPTER");' 2>&1)
stamp "adapter: $adapter"
case "$adapter" in
*NO\ ADAPTER* | *rror*) stamp "no WebGPU adapter, stopping"; exit 3 ;;
esac

pack() {
  tar -C /tmp/devlogs -czf "$OUT/logs.tgz" logs
}
DEADLINE=${DEADLINE:-500}
run() { # name seconds command...   (deno run, not deno task: a task installs the lockfile's npm
  local name=$1 secs=$2 #            packages, and this machine has no registry)
  shift 2
  local left=$((DEADLINE - $(date +%s) + t0))
  [ "$left" -lt "$secs" ] && secs=$left
  [ "$secs" -lt 10 ] && { stamp "skip $name (deadline)"; return; }
  stamp "start $name (limit ${secs} s)"
  [ -n "${MAXCAP:-}" ] && [ "$secs" -gt "$MAXCAP" ] && secs=$MAXCAP # MAXCAP=5: a dry run of the script
  timeout "$secs" "$@" >"$L/$name.log" 2>&1
  stamp "end $name rc=$?"
  pack
}

# PLAN=paths: the storage-buffer against the texture matmul path on this GPU (the first run's
# matmul table had texture 3-13x faster on the H100), each through the quick bench and the demo
# pruning, then the test suite and a BERT-base pruning with texture forced.
if [ "${PLAN:-}" = paths ]; then
  for p in storage texture; do
    export FASTPRUNE_MATMUL_PATH=$p
    run "bench_$p" 45 deno run -A scripts/bench.ts --quick --only model,pruned,train --out "$L"
    rm -rf out/demo-prune
    run "prune_$p" 30 deno run -A scripts/prune.ts
  done
  run tests_texture 110 deno test -A --no-check tests/
  run prune_hf_texture 150 bash -c 'deno run -A bench/hf_make.ts /tmp/hf && python3 bench/hf_parity.py make /tmp/hf &&
    deno run -A scripts/prune.ts --model /tmp/hf/hf-bert-base --task sst2 --data ../shared/data/glue \
    --flops 0.5 --samples 256 --out /tmp/hf/pruned-bert-base && python3 bench/hf_parity.py compare /tmp/hf/pruned-bert-base'
  stamp "summary"
  for p in storage texture; do grep -avE "^\s*$|onnx|dns|rror|Connect|^ +[0-9]:|Download" "$L/bench_$p.log" | tail -16; grep -a "pruning time" "$L/prune_$p.log"; done
  sed 's/\x1b\[[0-9;]*m//g' "$L/tests_texture.log" | grep -E "FAILED|passed|=>" | tail -25
  tr '\r' '\n' <"$L/prune_hf_texture.log" | grep -aE "ok |FAIL|passed|pruning time|accuracy|ex/s" | grep -v ETA | tail -12
  exit 0
fi

# parity with Hugging Face transformers itself (installed there, not here): our random and
# compacted checkpoints loaded by transformers, and transformers' BERT-base / DistilBERT-base
# loaded, pruned and compacted by us and loaded back
run hf_parity 90 bash -c 'deno run -A bench/hf_make.ts /tmp/hf && python3 bench/hf_parity.py make /tmp/hf &&
  python3 bench/hf_parity.py compare /tmp/hf/*'
run tests 110 deno test -A --no-check tests/
run prune_hf 120 bash -c 'deno run -A scripts/prune.ts --model /tmp/hf/hf-bert-base --task sst2 \
  --data ../shared/data/glue --flops 0.5 --samples 256 --out /tmp/hf/pruned-bert-base &&
  python3 bench/hf_parity.py compare /tmp/hf/pruned-bert-base'
cp /tmp/hf/pruned-bert-base/report.md "$L/prune_hf_report.md" 2>/dev/null
run prune 40 deno run -A scripts/prune.ts
cp out/demo-prune/report.md "$L/prune_report.md" 2>/dev/null
run bench_quick 100 deno run -A scripts/bench.ts --quick --only model,pruned,train --out "$L"
# DistilBERT entries first (the experiments lack them), then BERT's; finished entries are kept
[ -n "$ZOO_ONLY" ] || stamp "no zoo list: not training"
distil=$(echo "$ZOO_ONLY" | tr , '\n' | grep distilbert | paste -sd,)
bert=$(echo "$ZOO_ONLY" | tr , '\n' | grep -v distilbert | paste -sd,)
[ -n "$distil" ] && run zoo_distil 170 deno run -A scripts/zoo.ts --out /tmp/zoo --only "$distil" --mlm-steps "$MLM_STEPS" --f16
[ -n "$bert" ] && run zoo_bert 70 deno run -A scripts/zoo.ts --out /tmp/zoo --only "$bert" --mlm-steps "$MLM_STEPS" --f16
for f in zoo.md zoo.json; do cp /tmp/zoo/$f "$L/" 2>/dev/null; done
for d in /tmp/zoo/*/ /tmp/zoo/_base/*/; do
  n=$(basename "$d")
  [ -f "$d/metrics.json" ] && cp "$d/metrics.json" "$L/metrics_$n.json" && cp "$d/curve.svg" "$L/curve_$n.svg" 2>/dev/null
done
total=0
for n in ${ZOO_ONLY//,/ }; do
  d=/tmp/zoo/$n
  [ -f "$d/metrics.json" ] || continue
  tar -C /tmp/zoo -cf "$OUT/m_$n.tar" "$n"
  s=$(stat -c %s "$OUT/m_$n.tar")
  if [ $((total + s)) -gt 60000000 ] || [ "$s" -gt 16000000 ]; then rm "$OUT/m_$n.tar"; stamp "left $n behind (size)"; else total=$((total + s)); fi
done
pack
run torch_cuda 40 bash -c '
  python3 bench/torch_train_step.py time --device cuda --batch 64 --seq 64 --steps 10
  python3 bench/torch_train_step.py time --device cuda --batch 16 --seq 64 --steps 10
  for s in "\"L\":4,\"d\":256,\"H\":4,\"F\":1024,\"V\":30522,\"B\":32,\"S\":64" \
           "\"L\":12,\"d\":768,\"H\":12,\"F\":3072,\"V\":30522,\"B\":32,\"S\":128" \
           "\"L\":12,\"d\":768,\"H\":12,\"F\":3072,\"V\":30522,\"B\":1,\"S\":128"; do
    python3 bench/torch_bert.py "{\"arch\":\"bert\",$s,\"runs\":10,\"device\":\"cuda\"}"
  done'
run bench_rest 90 deno run -A scripts/bench.ts --only matmul,norms,model --out "$L"

stamp "summary"
ls -la "$OUT"
sed 's/\x1b\[[0-9;]*m//g' "$L/tests.log" | grep -E "FAILED|passed" | tail -25
grep -aE "pruning time|latency" "$L/prune.log" | tail -4
cat "$L/zoo.md" 2>/dev/null | grep -E "^\|" | head -20
cat "$L/torch_cuda.log"
grep -avE "^\s*$" "$L/bench_quick.log" | tail -30
cat "$L/hf_parity.log"
grep -aE "passed|ok |FAIL|pruning time|accuracy|latency" "$L/prune_hf.log" | tail -12
