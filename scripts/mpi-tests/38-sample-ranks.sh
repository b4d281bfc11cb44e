#!/usr/bin/env bash
# Generation spread over threads and ranks gives the one-thread run's files, bit for bit: `sample` with 2 threads,
# under mpirun -np 2 and -np 3, and across the 2-node namespace cluster (as root) writes the same safetensors and
# PNG (same SHA-256) as one process on one thread; `eval` at np 2 reports the same scores as at np 1; and a
# ControlNet run at np 2, whose validation previews every rank samples a share of, writes the very preview PNG
# that a one-process `sample` of its final weights with the preview's settings writes.
source "$(dirname "$0")/lib.sh"
ensure_controlnet
training_env

scratch_dir
train_tiny_base "$TMP/base"
BASE=$TMP/base/unet.safetensors
DATA=(--data-dir "$REPO_ROOT/data")

# A ControlNet trained at np 2 for 4 steps, with a validation preview at step 4 (16 held-out hints, DDIM 20).
mpirun_for 2
run_logged "$TMP/cn.log" "np 2 ControlNet training with previews" "${MPIRUN[@]}" "$CONTROLNET" train-controlnet \
    --config tiny --resize "${DATA[@]}" --base "$BASE" --max-steps 4 --batch-size 8 --lr 1e-3 --validation-steps 4 \
    --out "$TMP/cn"
CONTROL=$TMP/cn/controlnet.safetensors
preview=$TMP/cn/validation/step-00000004.png
[ -f "$preview" ] || fail "no validation preview at step 4"
grep -q "^validation: $preview; edge F1 exact [0-9.]*, 1-px [0-9.]*" "$TMP/cn.log" || fail "rank 0 did not report the preview's scores"
[ "$(grep -c '"validation_png"' "$TMP/cn/metrics.jsonl")" = 1 ] || fail "expected one validation record in metrics.jsonl"

# The preview's own settings in one process: the same PNG.
run_logged "$TMP/p1.log" "one-process sample of the preview" env OPENBLAS_NUM_THREADS=1 "$CONTROLNET" sample --base "$BASE" \
    --control "$CONTROL" --hints-from test "${DATA[@]}" --count 16 --steps 20 --batch-size 4 --seed 0 --grid "$TMP/preview1.png"
cmp -s "$preview" "$TMP/preview1.png" || fail "the preview the 2 ranks shared differs from a one-process sample with its settings"
echo "np 2 validation preview = one-process sample: $(sha256sum <"$preview" | cut -c1-16)"

# sample: 13 held-out hints in passes of 3 (5 passes: uneven shares), one thread as the reference.
SAMPLE=(sample --base "$BASE" --control "$CONTROL" --hints-from test "${DATA[@]}" --count 13 --steps 6 --batch-size 3)
run_logged "$TMP/t1.log" "sample, 1 thread" env OPENBLAS_NUM_THREADS=1 "$CONTROLNET" "${SAMPLE[@]}" --threads 1 \
    --out "$TMP/t1.safetensors" --grid "$TMP/t1.png"
reference=$(sha256sum <"$TMP/t1.safetensors" | cut -d' ' -f1)
grid=$(sha256sum <"$TMP/t1.png" | cut -d' ' -f1)
same() {  # same NAME: NAME.safetensors and NAME.png are the reference's
    [ "$(sha256sum <"$TMP/$1.safetensors" | cut -d' ' -f1)" = "$reference" ] || fail "$1: the samples differ from one thread's"
    [ "$(sha256sum <"$TMP/$1.png" | cut -d' ' -f1)" = "$grid" ] || fail "$1: the grid differs from one thread's"
    echo "$1: same SHA-256 as one thread (${reference:0:16})"
}
run_logged "$TMP/t2.log" "sample, 2 threads" "$CONTROLNET" "${SAMPLE[@]}" --threads 2 --out "$TMP/t2.safetensors" --grid "$TMP/t2.png"
grep -q "on 1 rank(s) x 2 thread(s)" "$TMP/t2.log" || fail "sample did not run 2 threads"
same t2
for np in 2 3; do
    mpirun_for $np
    run_logged "$TMP/np$np.log" "sample at np $np" "${MPIRUN[@]}" "$CONTROLNET" "${SAMPLE[@]}" --out "$TMP/np$np.safetensors" \
        --grid "$TMP/np$np.png"
    grep -q "on $np rank(s) x 1 thread(s)" "$TMP/np$np.log" || fail "sample at np $np did not run $np ranks"
    [ "$(grep -c '^wrote ' "$TMP/np$np.log")" = 1 ] || fail "np $np: more than rank 0 wrote"
    same "np$np"
done

# eval: the same report at np 2 as at np 1, but for the time it took.
EVAL=(eval --base "$BASE" --control "$CONTROL" "${DATA[@]}" --count 12 --steps 4 --batch-size 4)
run_logged "$TMP/e1.log" "eval at np 1" env OPENBLAS_NUM_THREADS=1 "$CONTROLNET" "${EVAL[@]}" --json "$TMP/e1.json"
mpirun_for 2
run_logged "$TMP/e2.log" "eval at np 2" "${MPIRUN[@]}" "$CONTROLNET" "${EVAL[@]}" --json "$TMP/e2.json"
[ "$(jq -S 'del(.sampling_seconds)' "$TMP/e1.json")" = "$(jq -S 'del(.sampling_seconds)' "$TMP/e2.json")" ] \
    || { diff <(jq -S . "$TMP/e1.json") <(jq -S . "$TMP/e2.json"); fail "eval at np 2 reports other scores than at np 1"; }
echo "eval np 2 = np 1: controlled edge F1 $(jq .controlled.exact.f1 "$TMP/e2.json")"

# Across two nodes (network namespaces over TCP): the same file again.
if [ "$(id -u)" = 0 ]; then
    timeout -k 10 180 "$REPO_ROOT/cluster/local-cluster.sh" -- "${SAMPLE[@]}" --out "$TMP/cluster.safetensors" \
        --grid "$TMP/cluster.png" >"$TMP/cluster.log" 2>&1 || { cat "$TMP/cluster.log"; fail "sample across the namespace cluster failed"; }
    grep -q "on 2 rank(s) x 1 thread(s)" "$TMP/cluster.log" || { cat "$TMP/cluster.log"; fail "the cluster run was not 2 ranks"; }
    same cluster
else
    echo "SKIP the namespace cluster part: network namespaces need root"
fi
echo "PASS $(basename "$0")"
