#!/usr/bin/env bash
# One MNIST Canny ControlNet experiment on the quickstart's schedule, for comparisons in the README (EMA, the
# consistency loss, precision, another base): trains beside BASE (default the shipped base) with the quickstart's
# settings plus any extra training options, evaluates 200 held-out hints (DDIM 25, seed 0) and prints one summary
# line; everything lands in runs/experiments/NAME. The eval uses the EMA when the run kept one (it is the output).
# The quickstart's schedule is 3,200 steps of 8 samples (4 per rank at np 2), 25,600 visits. The README's rows
# from before it used 400 steps of 64, which later options override: --steps 400 -- --batch-size 32 --warmup-steps 50.
#
#   scripts/experiment.sh NAME [--steps N] [--base FILE] [--np N] [--eval-args "..."] [--overwrite] -- [train-controlnet options...]
# An existing runs/experiments/NAME is refused unless --overwrite says to replace it.
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/.."
CONTROLNET=${CONTROLNET:-.build/release/controlnet}
[ $# -ge 1 ] || { echo "usage: $0 NAME [--steps N] [--base FILE] [--np N] [--eval-args \"...\"] [--overwrite] -- [train options]" >&2; exit 2; }
NAME=$1; shift
[[ "$NAME" =~ ^[A-Za-z0-9][A-Za-z0-9._-]*$ ]] || { echo "experiment: NAME must be letters, digits, '.', '_' or '-' (it names runs/experiments/NAME), got '$NAME'" >&2; exit 2; }
STEPS=3200 BASE=models/mnist-base.safetensors NP=$(nproc) EVAL_ARGS="" OVERWRITE=0
while [ $# -gt 0 ]; do
    case $1 in
        --overwrite) OVERWRITE=1; shift; continue ;;
        --) ;;
        --*) [ $# -ge 2 ] || { echo "experiment: $1 needs a value" >&2; exit 2; } ;;
    esac
    case $1 in
        --steps) STEPS=$2; shift 2 ;;
        --base) BASE=$2; shift 2 ;;
        --np) NP=$2; shift 2 ;;
        --eval-args) EVAL_ARGS=$2; shift 2 ;;
        --) shift; break ;;
        *) echo "experiment: unknown argument $1" >&2; exit 2 ;;
    esac
done
for knob in STEPS NP; do
    [[ "${!knob}" =~ ^[1-9][0-9]*$ ]] || { echo "experiment: --${knob,,} must be a positive integer, got '${!knob}'" >&2; exit 2; }
done
OUT=runs/experiments/$NAME
if [ "$OVERWRITE" = 0 ] && [ -e "$OUT" ]; then
    echo "experiment: $OUT exists (an earlier run of $NAME); pass --overwrite to replace it, or choose another NAME" >&2; exit 2
fi
mkdir -p runs/experiments
# --overwrite: the trainer replaces its own outputs; this script's results go first, so that a failed rerun
# cannot leave the earlier run's scores beside the new weights.
[ "$OVERWRITE" = 1 ] && rm -f "$OUT/eval.json" "$OUT/eval-grid.png" "$OUT/summary.json" "$OUT.eval.log" "$OUT.train.log"
flags=(-np "$NP" --mca pml ob1 --mca btl self,vader --bind-to none -x OPENBLAS_NUM_THREADS=1 -x CONTROLNET_PROGRESS)
[ "$(id -u)" = 0 ] && flags+=(--allow-run-as-root)
export CONTROLNET_PROGRESS=lines
start=$(date +%s)
mpirun "${flags[@]}" "$CONTROLNET" train-controlnet --config mnist --base "$BASE" --data mnist5k --hint canny \
    --batch-size $(( 8 / NP > 0 ? 8 / NP : 1 )) --max-steps "$STEPS" --lr 1e-3 --warmup-steps $(( STEPS / 8 )) \
    --lr-schedule cosine --min-lr-fraction 0.1 \
    --log-every 25 --seed 0 --overwrite --out "$OUT" "$@" > "$OUT.train.log" 2>&1 \
    || { tail -20 "$OUT.train.log"; echo "experiment $NAME: training failed" >&2; exit 1; }
train_seconds=$(( $(date +%s) - start ))
# shellcheck disable=SC2086
"$CONTROLNET" eval --base "$BASE" --control "$OUT/controlnet.safetensors" --count 200 --steps 25 \
    --json "$OUT/eval.json" --grid "$OUT/eval-grid.png" $EVAL_ARGS > /dev/null 2> "$OUT.eval.log" \
    || { tail -5 "$OUT.eval.log"; echo "experiment $NAME: eval failed" >&2; exit 1; }
rate=$(python3 -c 'import json,sys; r=[json.loads(l) for l in open(sys.argv[1]) if "samples_per_s" in l]; print(round(r[-1]["samples_per_s"],1))' "$OUT/metrics.jsonl")
python3 - "$OUT/eval.json" "$NAME" "$train_seconds" "$rate" "$STEPS" <<'PY'
import json, sys
r = json.load(open(sys.argv[1])); c = r["controlled"]
summary = {"name": sys.argv[2], "steps": int(sys.argv[5]), "train_seconds": int(sys.argv[3]), "samples_per_s": float(sys.argv[4]),
           "f1_exact": round(c["exact"]["f1"], 4), "f1_1px": round(c["one_pixel"]["f1"], 4),
           "edge_pixels_per_hint_pixel": round(c["edge_pixels_per_hint_pixel"], 3)}
if "base_scale_0_floor" in r:
    summary["floor_base_exact"] = round(r["base_scale_0_floor"]["exact"]["f1"], 4)
json.dump(summary, open(sys.argv[1].replace("eval.json", "summary.json"), "w"))
print(json.dumps(summary))
PY
