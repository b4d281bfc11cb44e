#!/usr/bin/env bash
# ZeRO-1 (--zero 1: the AdamW moments sharded across the ranks, gradients reduce-scattered, weights all-gathered)
# must train what plain data parallelism trains: at np 2 and np 4, with gradient accumulation, clipping by the
# global norm (forced: --max-grad-norm 0.01), a non-finite step skipped, and an EMA, the weights and the EMA agree
# with the unsharded run within 1e-6 and every rank holds bit-identical weights. A ZeRO-1 checkpoint resumes
# bit-exactly at the same world size and reshards to another, and each rank holds 1/N of the moments.
source "$(dirname "$0")/lib.sh"
ensure_controlnet
training_env

scratch_dir

train_tiny_base "$TMP/base"
BASE=$TMP/base/unet.safetensors
TRAIN=(train-controlnet --config tiny --resize --data-dir "$REPO_ROOT/data" --base "$BASE" --max-steps 6 --batch-size 4
    --grad-accum 2 --lr 1e-3 --max-grad-norm 0.01 --inject-nonfinite 3 --ema-decay 0.99 --log-every 1)

for np in 2 4; do
    mpirun_for "$np"
    run_logged "$TMP/plain$np.log" "np $np plain" "${MPIRUN[@]}" "$CONTROLNET" "${TRAIN[@]}" --out "$TMP/plain$np"
    run_logged "$TMP/zero$np.log" "np $np ZeRO-1" "${MPIRUN[@]}" "$CONTROLNET" "${TRAIN[@]}" --zero 1 --out "$TMP/zero$np"
    grep -q "optimizer: AdamW moments sharded (ZeRO-1): [0-9]* of 22064 on this rank" "$TMP/zero$np.log" || fail "np $np: no sharding line"
    check_run_lines "$TMP/zero$np.log" "$np"
    for f in controlnet controlnet-raw; do
        "$CONTROLNET" diff-weights "$TMP/plain$np/$f.safetensors" "$TMP/zero$np/$f.safetensors" --tolerance 1e-6 \
            || fail "np $np: ZeRO-1 $f differs from the unsharded run by more than 1e-6"
    done
    grep -q '"skipped":1' "$TMP/zero$np/metrics.jsonl" || fail "np $np: the non-finite step was not skipped"
done

# Resume: a ZeRO-1 run stopped at step 3 continues bit-exactly at np 2, and reshards to np 4 (same global batch).
mpirun_for 2
run_logged "$TMP/part.log" "np 2 ZeRO-1 to step 3" "${MPIRUN[@]}" "$CONTROLNET" "${TRAIN[@]}" --zero 1 --max-steps 3 \
    --checkpoint-every 3 --out "$TMP/resume2"
python3 - "$TMP/resume2/status.json" <<'PY'
import json, sys; s = json.load(open(sys.argv[1])); assert s["state"] == "complete" and s["step"] == 3, s
PY
# The 3-step run is complete; continue it as a 6-step run from its checkpoint.
run_logged "$TMP/cont.log" "np 2 ZeRO-1 resume" "${MPIRUN[@]}" "$CONTROLNET" "${TRAIN[@]}" --zero 1 \
    --resume "$TMP/resume2/checkpoints/step-00000003" --out "$TMP/resumed2"
"$CONTROLNET" diff-weights "$TMP/zero2/controlnet.safetensors" "$TMP/resumed2/controlnet.safetensors" --tolerance 0 \
    || fail "a resumed ZeRO-1 run differs from the uninterrupted one"
mpirun_for 4
run_logged "$TMP/reshard.log" "np 4 ZeRO-1 reshard" "${MPIRUN[@]}" "$CONTROLNET" "${TRAIN[@]}" --zero 1 --batch-size 2 \
    --resume "$TMP/resume2/checkpoints/step-00000003" --out "$TMP/resharded4"
grep -q "resharded from 2 to 4 ranks" "$TMP/reshard.log" || fail "no resharding line"
"$CONTROLNET" diff-weights "$TMP/zero2/controlnet.safetensors" "$TMP/resharded4/controlnet.safetensors" --tolerance 1e-5 \
    || fail "a ZeRO-1 run resharded from 2 to 4 ranks (same global batch) drifted"
echo "PASS $(basename "$0")"
