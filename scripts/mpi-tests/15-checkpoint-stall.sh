#!/usr/bin/env bash
# A checkpoint write that hangs (a stuck file system, simulated by the fault hook that pauses every rank between
# its durable shard and the manifest) is timed out like a stalled collective: the ranks warn, naming "checkpoint of
# step 5", and the job ends within --collective-timeout + 10 s with exit 75; the half-written checkpoint is not
# taken for a committed one.
source "$(dirname "$0")/lib.sh"
ensure_controlnet
training_env
mpirun_for 2
scratch_dir
train_tiny_base "$TMP/base"

start=$(now_seconds)
set +e
CONTROLNET_FAULT_PAUSE_BEFORE_MANIFEST_MS=120000 timeout -k 5 60 "${MPIRUN[@]}" -x CONTROLNET_FAULT_PAUSE_BEFORE_MANIFEST_MS \
    "$CONTROLNET" train-controlnet --config tiny --resize --data-dir "$REPO_ROOT/data" \
    --base "$TMP/base/unet.safetensors" --batch-size 8 --max-steps 20 --checkpoint-every 5 --out "$TMP/run" \
    --stall-warning 2 --collective-timeout 6 >"$TMP/run.log" 2>&1
status=$?
set -e
elapsed=$(echo "$(now_seconds) - $start" | bc)
grep -v '^  \|^step ' "$TMP/run.log"
echo "exit status $status after $elapsed s"
[ "$status" = 75 ] || fail "exit status $status, expected 75 (the watchdog's timeout)"
(( $(echo "$elapsed < 6 + 10 + 5" | bc) )) || fail "the job took $elapsed s (limit: 5 s of start-up and steps + 6 s + 10 s)"
grep -q "^\[rank [01]\] warning: stalled for [0-9.]* s in checkpoint of step 5 at step 5" "$TMP/run.log" \
    || fail "no warning naming the checkpoint of step 5"
grep -q "^\[rank [01]\] error: checkpoint of step 5 at step 5 has not completed after [0-9.]* s (timeout 6.0 s)" "$TMP/run.log" \
    || fail "no timeout error naming the checkpoint of step 5"
[ ! -f "$TMP/run/checkpoints/step-00000005/manifest.json" ] || fail "the hung checkpoint has a manifest"
jq -e 'select(.stall != null) | .stall | select(.event == "timed_out") | .operation == "checkpoint of step 5"' \
    "$TMP/run/metrics.jsonl" >/dev/null || fail "metrics.jsonl has no timed_out record of the checkpoint"
echo "PASS $(basename "$0")"
