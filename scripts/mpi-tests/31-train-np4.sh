#!/usr/bin/env bash
# As 30-train-np2.sh at np 4 (oversubscribed on a 2-core machine): 5 tiny ControlNet steps at np 4 end within 1e-5 of
# --simulate-ranks 4, with bit-identical replicas on all 4 ranks and an untouched base; --simulate-ranks 2 (half the
# global batch) must not match, so the comparison can fail.
source "$(dirname "$0")/lib.sh"
ensure_controlnet
training_env

scratch_dir

train_tiny_base "$TMP/base"
BASE=$TMP/base/unet.safetensors
base_sha_before=$(sha256sum "$BASE" | cut -d' ' -f1)

TRAIN=(train-controlnet --config tiny --resize --data-dir "$REPO_ROOT/data" --base "$BASE" --max-steps 5
    --batch-size 8 --lr 1e-3 --log-every 1)

mpirun_for 4
[[ " ${MPIRUN[*]} " == *" --oversubscribe "* ]] || fail "mpirun_for 4 did not add --oversubscribe"
run_logged "$TMP/np4.log" "np 4 training" "${MPIRUN[@]}" "$CONTROLNET" "${TRAIN[@]}" --out "$TMP/np4"
cat "$TMP/np4.log"
run_logged "$TMP/sim4.log" "--simulate-ranks 4 training" "$CONTROLNET" "${TRAIN[@]}" --simulate-ranks 4 --out "$TMP/sim4"
run_logged "$TMP/sim2.log" "--simulate-ranks 2 training" "$CONTROLNET" "${TRAIN[@]}" --simulate-ranks 2 --out "$TMP/sim2"

echo "np 4 vs --simulate-ranks 4:"
"$CONTROLNET" diff-weights "$TMP/np4/controlnet.safetensors" "$TMP/sim4/controlnet.safetensors" --tolerance 1e-5 \
    || fail "np 4 weights differ from --simulate-ranks 4 by more than 1e-5"
echo "--simulate-ranks 2 vs --simulate-ranks 4 (must differ):"
if "$CONTROLNET" diff-weights "$TMP/sim2/controlnet.safetensors" "$TMP/sim4/controlnet.safetensors" --tolerance 1e-5; then
    fail "--simulate-ranks 2 matched --simulate-ranks 4 within 1e-5: the comparison cannot tell world sizes apart"
fi

check_run_lines "$TMP/np4.log" 4
base_file_unchanged "$BASE" "$base_sha_before"
echo "PASS $(basename "$0")"
