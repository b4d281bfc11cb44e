#!/usr/bin/env bash
# Generation speed, ours vs PyTorch 2.13 on the same work, back to back (`controlnet bench --mode sample --torch`):
# DDIM through the mnist UNet + one ControlNet, by default the issue's work (128 samples x 20 steps in passes of
# 64), at 1 thread, 2 threads and 2 ranks x 1 thread, each against PyTorch under no_grad in fp32 and with bf16
# autocast at the same threads. Repeated ROUNDS times so a busy machine shows as a spread. Prints every run and a
# summary (medians of evaluations/s, the 2-core scaling, ours / PyTorch).
#
#   scripts/bench-sample.sh [ROUNDS]                  (default 1; about 6 minutes a round on an idle 2-core machine)
#   BATCH=16 COUNT=128 STEPS=20 REF=/path/to/reference/pytorch scripts/bench-sample.sh 3
#
# Needs torch (pip install /opt/wheels/torch-*.whl) and the release build (scripts/setup.sh).
set -euo pipefail
cd "$(dirname "$0")/.."

ROUNDS="${1:-1}"
REF="${REF:-../shared/reference/pytorch}"
BATCH="${BATCH:-64}" COUNT="${COUNT:-128}" STEPS="${STEPS:-20}" REPEATS="${REPEATS:-3}"
BIN=.build/release/controlnet
OUT="${OUT:-runs/bench-sample-$(date +%Y%m%d-%H%M%S)}"

source scripts/bench/torch-setup.sh ref_model.py
WORK=(--mode sample --config mnist --batch-size "$BATCH" --count "$COUNT" --sampler-steps "$STEPS" --repeats "$REPEATS"
      --no-profile --torch "$REF" --torch-precision both)
echo "writing JSON to $OUT; $ROUNDS round(s); batch $BATCH, $COUNT samples x $STEPS steps; $(nproc) cores; load: $(cut -d' ' -f1-3 /proc/loadavg)"

run() {  # name, then the command
    local name="$1"; shift
    local file="$OUT/$name-$round.json"
    "$@" > "$file" 2> "$OUT/$name-$round.err" || { echo "error: $name failed, see $OUT/$name-$round.err" >&2; exit 1; }
    python3 - "$file" "$name" "$(cut -d' ' -f1 /proc/loadavg)" <<'PY'
import json, sys
d = json.load(open(sys.argv[1])); t = {x["variant"].split(",")[0]: x for x in d["torch"]}
print(f'{sys.argv[2]:>10}: ours {d["evaluationsPerSecond"]:6.1f} evaluations/s ({d["cpuMillisecondsPerEvaluationRank0"]:.2f} CPU ms each), '
      f'torch fp32 {t["fp32"]["evaluationsPerSecond"]:6.1f} (x{t["fp32"]["oursOverTorch"]:.2f}), '
      f'bf16 {t["bf16 autocast"]["evaluationsPerSecond"]:6.1f} (x{t["bf16 autocast"]["oursOverTorch"]:.2f}); '
      f'RSS/rank {d["peakRSSMegabytesPerRankMax"]:.0f} MB; load after {sys.argv[3]}')
PY
}

for round in $(seq 1 "$ROUNDS"); do
    echo "round $round/$ROUNDS ($(date +%H:%M:%S), load $(cut -d' ' -f1 /proc/loadavg))"
    run threads1 env OPENBLAS_NUM_THREADS=1 "$BIN" bench "${WORK[@]}" --threads 1
    run threads2 env OPENBLAS_NUM_THREADS=2 "$BIN" bench "${WORK[@]}" --threads 2
    run ranks2 mpirun -np 2 --mca pml ob1 --mca btl self,vader --bind-to none -x OPENBLAS_NUM_THREADS=1 \
        -x OPENBLAS_CORETYPE -x PATH "$BIN" bench "${WORK[@]}"
done

python3 - "$OUT" <<'PY'
import glob, json, os, statistics, sys
out = sys.argv[1]
def runs(name): return [json.load(open(f)) for f in sorted(glob.glob(os.path.join(out, name + "-*.json")))]
def med(xs): return statistics.median(xs)
def torch(d, v): return next(x["evaluationsPerSecond"] for x in d["torch"] if x["variant"].startswith(v))
print("\n| run | ours evaluations/s | PyTorch fp32 no_grad | PyTorch bf16 autocast | ours / fp32 | ours / bf16 |")
print("|---|---|---|---|---|---|")
ours = {}
for name, label in [("threads1", "1 thread"), ("threads2", "2 threads"), ("ranks2", "2 ranks x 1 thread")]:
    r = runs(name)
    ours[name] = med([d["evaluationsPerSecond"] for d in r])
    f, b = med([torch(d, "fp32") for d in r]), med([torch(d, "bf16") for d in r])
    print(f"| {label} | {ours[name]:.1f} | {f:.1f} | {b:.1f} | {ours[name] / f:.2f} | {ours[name] / b:.2f} |")
print(f"\nscaling over 1 thread: 2 threads {ours['threads2'] / ours['threads1']:.2f}x, 2 ranks {ours['ranks2'] / ours['threads1']:.2f}x")
PY
