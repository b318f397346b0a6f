#!/bin/bash
cd /work/main
export XDG_RUNTIME_DIR=/tmp
echo "=== mlm $(date)"
deno run -A scripts/train.ts --task sst2 --data /work/shared/data/glue --init /tmp/zoomlm/_base/mlm-bert --max-steps 0 --mlm-steps 2400 --mlm-lr 1e-3 --mlm-batch 32 --mlm-length 64 --mlm-text all --seed 43 --out /tmp/mlm2/_base/mlm-bert --force 2>&1 | tr '\r' '\n' | grep -v ETA | awk 'NR%50==0' 
echo "=== mlm done $(date)"
for spec in "cola 2 134" "rte 3 39" "mrpc 3 58" "stsb 3 90"; do
  set -- $spec
  echo "=== $1 $(date)"
  deno run -A scripts/train.ts --task $1 --data /work/shared/data/glue --init /tmp/mlm2/_base/mlm-bert --epochs $2 --lr 5e-4 --batch 32 --seed 42 --eval-every $3 --out /tmp/mlm2/$1-bert --force 2>&1 | tr '\r' '\n' | grep -v ETA | grep -E "best|dev" | tail -8
done
echo DONE $(date)
