#!/usr/bin/env bash
# Reproduces docs/bf16-kernels.md's measurements into OUT (default runs/bf16): the GEMM shapes a ControlNet step
# issues (mnist batch 64, scale64 batch 16), OpenBLAS sgemm vs our bf16 kernels at the TOP shapes of each (by
# time), oneDNN 2.6.3 bf16/fp32 matmul at the same shapes and bf16/fp32 convs at the mnist 3x3 shapes, and whole
# steps in fp32 and bf16. ROUNDS repeats each measurement (medians go in the doc). Needs the release build, and
# libdnnl-dev for the oneDNN part (skipped with a note when it is missing). Prints `uptime` before each round:
# the machine is shared, so note the load.
set -euo pipefail
cd "$(dirname "$0")/../.."
OUT=${OUT:-runs/bf16}; ROUNDS=${ROUNDS:-3}; TOP=${TOP:-16}
C=.build/release/controlnet
mkdir -p "$OUT"
export OPENBLAS_NUM_THREADS=1 OMP_NUM_THREADS=1
CORE=$($C info --blas-coretype)
[ -n "$CORE" ] && export OPENBLAS_CORETYPE=$CORE
grep -m1 'model name' /proc/cpuinfo | tee "$OUT/cpu.txt"
grep -o 'avx512_bf16\|amx_bf16\|amx_tile\|avx512f\|avx512_fp16' /proc/cpuinfo | sort | uniq -c | tee -a "$OUT/cpu.txt"
$C bench --gemm-shapes --steps 1 --warmup 1 > "$OUT/shapes-mnist.json"
$C bench --gemm-shapes --steps 1 --warmup 1 --config scripts/bf16/scale64.json --batch-size 16 > "$OUT/shapes-scale64.json"
DNNL=""
if [ -e /usr/include/oneapi/dnnl/dnnl.hpp ]; then
  g++ -O2 -std=c++17 scripts/bf16/onednn-bench.cpp -o "$OUT/onednn-bench" -ldnnl && DNNL="$OUT/onednn-bench"
else
  echo "note: libdnnl-dev not installed; oneDNN columns skipped (apt-get install -y libdnnl-dev)"
fi
for r in $(seq 1 "$ROUNDS"); do
  uptime | tee "$OUT/uptime-$r.txt"
  for cfg in mnist scale64; do
    $C bench-sgemm --precision both --shapes "$OUT/shapes-$cfg.json" --top "$TOP" --repeats 5 > "$OUT/gemm-$cfg-$r.json"
    if [ -n "$DNNL" ]; then
      python3 -c "
import json, sys
for s in json.load(open(sys.argv[1]))['gemmShapesPerStep'][:int(sys.argv[2])]:
    k = s['shape']; print('T' if k['transA'] else 'N', 'T' if k['transB'] else 'N', k['m'], k['n'], k['k'], s['calls'])
" "$OUT/shapes-$cfg.json" "$TOP" | $DNNL gemm > "$OUT/onednn-gemm-$cfg-$r.csv"
    fi
  done
  if [ -n "$DNNL" ]; then
    for shape in "32 32 28" "96 32 28" "64 64 28" "64 64 14" "128 64 14" "64 64 7"; do
      $DNNL conv 64 $shape
    done > "$OUT/onednn-conv-$r.txt"
  fi
  for p in fp32 bf16; do
    $C bench --steps 5 --precision $p > "$OUT/step-mnist-$p-$r.json"
    $C bench --steps 3 --precision $p --config scripts/bf16/scale64.json --batch-size 16 > "$OUT/step-scale64-$p-$r.json"
  done
done
python3 scripts/bf16/tables.py "$OUT" "$ROUNDS"
