#!/usr/bin/env bash
# Clusters set memory limits: under `ulimit -v 16000000` (16 GB of address space) training, sampling and
# evaluation run normally (the activation arenas size their reservations to the limit; they used to abort with
# "double free or corruption"), and under a limit too small for the run the program ends with exit 71 and a
# message naming the limit, never a crash.
source "$(dirname "$0")/lib.sh"
ensure_controlnet
training_env

scratch_dir

train_tiny_base "$TMP/base"
BASE=$TMP/base/unet.safetensors
TRAIN=(train-controlnet --config tiny --resize --data-dir "$REPO_ROOT/data" --base "$BASE" --max-steps 3 --batch-size 8)
(ulimit -v 16000000 && "$CONTROLNET" "${TRAIN[@]}" --out "$TMP/limited") >"$TMP/limited.log" 2>&1 \
    || { cat "$TMP/limited.log"; fail "training under ulimit -v 16000000 failed"; }
(ulimit -v 16000000 && "$CONTROLNET" train-base --config tiny --resize --data-dir "$REPO_ROOT/data" --max-steps 2 --batch-size 8 --out "$TMP/base2") \
    >"$TMP/base2.log" 2>&1 || { cat "$TMP/base2.log"; fail "base training under ulimit -v failed"; }
(ulimit -v 16000000 && "$CONTROLNET" sample --base "$BASE" --control "$TMP/limited/controlnet.safetensors" --hints-from test \
    --data-dir "$REPO_ROOT/data" --count 4 --steps 2 --grid "$TMP/s.png") >"$TMP/sample.log" 2>&1 \
    || { cat "$TMP/sample.log"; fail "sampling under ulimit -v 16000000 failed"; }
# The mnist config at batch 256 needs about 2 GB of activations: under a 1.5 GB limit it cannot run.
set +e
(ulimit -v 1500000 && "$CONTROLNET" train-controlnet --config mnist --base "$REPO_ROOT/models/mnist-base.safetensors" \
    --data-dir "$REPO_ROOT/data" --max-steps 1 --batch-size 256 --out "$TMP/tight") >"$TMP/tight.log" 2>&1
status=$?
set -e
cat "$TMP/tight.log" | grep -v "^$" | tail -n 2
[ "$status" -ne 0 ] && [ "$status" -lt 128 ] || fail "a run that cannot fit ended with exit $status"
grep -qE "batch-size: 256 samples per step need about .* this process may use [0-9.]+ GB \(the address-space limit, ulimit -v, is 1.5|out of memory: could not allocate .*address-space limit" "$TMP/tight.log" \
    || fail "the message does not say what did not fit and why"
echo "PASS $(basename "$0")"
