#!/usr/bin/env bash
# Data-parallel training at np N must compute what one process playing N ranks computes (--simulate-ranks N), for
# N = 2 and N = 4 (oversubscribed on a 2-core machine): after 5 tiny ControlNet steps the weights agree within 1e-5,
# every rank holds bit-identical weights, the frozen base is untouched (in memory and on disk), one all-reduce of the
# whole trainable buffer is logged per step, and metrics.jsonl holds every step. Comparing world sizes that differ
# (1 vs 2, 2 vs 4: other global batches) must fail, or the check could not tell them apart.
source "$(dirname "$0")/lib.sh"
ensure_controlnet
training_env

scratch_dir

train_tiny_base "$TMP/base"
BASE=$TMP/base/unet.safetensors
base_sha_before=$(sha256sum "$BASE" | cut -d' ' -f1)

TRAIN=(train-controlnet --config tiny --resize --data-dir "$REPO_ROOT/data" --base "$BASE" --max-steps 5
    --batch-size 8 --lr 1e-3 --log-every 1)

run_logged "$TMP/sim1.log" "1-rank training" "$CONTROLNET" "${TRAIN[@]}" --out "$TMP/sim1"
previous=1
for np in 2 4; do
    mpirun_for "$np"
    if [ "$np" -gt 2 ]; then
        [[ " ${MPIRUN[*]} " == *" --oversubscribe "* ]] || fail "mpirun_for $np did not add --oversubscribe"
    fi
    run_logged "$TMP/np$np.log" "np $np training" "${MPIRUN[@]}" "$CONTROLNET" "${TRAIN[@]}" --out "$TMP/np$np"
    cat "$TMP/np$np.log"
    run_logged "$TMP/sim$np.log" "--simulate-ranks $np training" "$CONTROLNET" "${TRAIN[@]}" --simulate-ranks "$np" \
        --out "$TMP/sim$np"

    echo "np $np vs --simulate-ranks $np:"
    "$CONTROLNET" diff-weights "$TMP/np$np/controlnet.safetensors" "$TMP/sim$np/controlnet.safetensors" --tolerance 1e-5 \
        || fail "np $np weights differ from --simulate-ranks $np by more than 1e-5"
    echo "--simulate-ranks $previous vs --simulate-ranks $np (must differ: another global batch):"
    if "$CONTROLNET" diff-weights "$TMP/sim$previous/controlnet.safetensors" "$TMP/sim$np/controlnet.safetensors" \
        --tolerance 1e-5; then
        fail "--simulate-ranks $previous matched --simulate-ranks $np within 1e-5: the comparison cannot tell world sizes apart"
    fi
    check_run_lines "$TMP/np$np.log" "$np"
    steps=$(jq -s 'map(select(.step != null)) | length' "$TMP/np$np/metrics.jsonl")
    [ "$steps" = 5 ] || fail "np $np: metrics.jsonl holds $steps step records, expected 5"
    previous=$np
done
# The consistency loss (ControlNet++) selects its samples and normalises per rank: np 2 must still equal
# --simulate-ranks 2 with it on, and differ from the plain run.
CONSISTENCY=(--consistency-weight 1 --consistency-max-t 200 --consistency-fraction 0.5)
mpirun_for 2
run_logged "$TMP/cons-np2.log" "np 2 training with the consistency loss" "${MPIRUN[@]}" "$CONTROLNET" "${TRAIN[@]}" \
    "${CONSISTENCY[@]}" --out "$TMP/cons-np2"
run_logged "$TMP/cons-sim2.log" "--simulate-ranks 2 training with the consistency loss" "$CONTROLNET" "${TRAIN[@]}" \
    "${CONSISTENCY[@]}" --simulate-ranks 2 --out "$TMP/cons-sim2"
echo "consistency loss, np 2 vs --simulate-ranks 2:"
"$CONTROLNET" diff-weights "$TMP/cons-np2/controlnet.safetensors" "$TMP/cons-sim2/controlnet.safetensors" --tolerance 1e-5 \
    || fail "with the consistency loss, np 2 weights differ from --simulate-ranks 2 by more than 1e-5"
if "$CONTROLNET" diff-weights "$TMP/sim2/controlnet.safetensors" "$TMP/cons-sim2/controlnet.safetensors" \
    --tolerance 1e-5 >/dev/null; then
    fail "the consistency loss changed nothing at --simulate-ranks 2"
fi
base_file_unchanged "$BASE" "$base_sha_before"
echo "PASS $(basename "$0")"
