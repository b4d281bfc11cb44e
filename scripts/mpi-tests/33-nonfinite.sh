#!/usr/bin/env bash
# A non-finite gradient on ONE rank must make EVERY rank skip that step (or the replicas would diverge): at np 2 with
# NaN gradients injected on rank 1 at step 3, both ranks warn, the step is counted as skipped in metrics.jsonl, the
# run finishes and the replicas stay bit-identical. Ten skipped steps in a row must abort with a clear error.
source "$(dirname "$0")/lib.sh"
ensure_controlnet
training_env

scratch_dir

train_tiny_base "$TMP/base"
TRAIN=(train-controlnet --config tiny --resize --data-dir "$REPO_ROOT/data" --base "$TMP/base/unet.safetensors"
    --batch-size 8 --lr 1e-3 --log-every 1)
mpirun_for 2

echo "== one bad step: --inject-nonfinite 3:1"
run_logged "$TMP/one.log" "training with one non-finite step" \
    "${MPIRUN[@]}" "$CONTROLNET" "${TRAIN[@]}" --max-steps 6 --inject-nonfinite 3:1 --out "$TMP/one"
cat "$TMP/one.log"
for rank in 0 1; do
    grep -q "^\[rank $rank\] warning: step 3 skipped: non-finite loss or gradient on 1 rank(s) (1 in a row)" "$TMP/one.log" \
        || fail "rank $rank did not report skipping step 3"
done
[ "$(grep -c "skipped: non-finite" "$TMP/one.log")" = 2 ] || fail "expected exactly 2 skip warnings (step 3, each rank)"
# Step 3 has no loss record; every record after it counts the one skipped step.
jq -c '{step, skipped}' "$TMP/one/metrics.jsonl"
[ "$(jq -s -c 'map(.step)' "$TMP/one/metrics.jsonl")" = "[1,2,4,5,6]" ] || fail "metrics steps should be 1,2,4,5,6"
[ "$(jq -s -c 'map(.skipped)' "$TMP/one/metrics.jsonl")" = "[0,0,1,1,1]" ] || fail "metrics 'skipped' should be 0,0,1,1,1"
jq -e 'select(.loss | isnan or isinfinite)' "$TMP/one/metrics.jsonl" >/dev/null && fail "a non-finite loss was logged"
grep -q "^replica check: all 2 ranks hold bit-identical trainable weights" "$TMP/one.log" || fail "no replica-check line"
grep -q "^done: 6 steps, .*, 1 skipped$" "$TMP/one.log" || fail "no 'done: 6 steps, ... 1 skipped' line"
python3 - "$TMP/one/controlnet.safetensors" <<'PY' || fail "the saved weights hold non-finite values"
import json, math, struct, sys
data = open(sys.argv[1], "rb").read()
n = struct.unpack("<Q", data[:8])[0]
header = json.loads(data[8:8 + n])
body = data[8 + n:]
for name, t in header.items():
    if name == "__metadata__":
        continue
    a, b = t["data_offsets"]
    values = struct.unpack(f"<{(b - a) // 4}f", body[a:b])
    if not all(math.isfinite(x) for x in values):
        sys.exit(f"{name} holds non-finite values")
print(f"all {len(header) - 1} saved tensors are finite")
PY

echo "== ten bad steps in a row: --inject-nonfinite 2 ... 11 (every rank)"
inject=()
for step in $(seq 2 11); do inject+=(--inject-nonfinite "$step"); done
set +e
timeout -k 5 120 "${MPIRUN[@]}" "$CONTROLNET" "${TRAIN[@]}" --max-steps 30 "${inject[@]}" --out "$TMP/ten" \
    >"$TMP/ten.log" 2>&1
status=$?
set -e
grep -v '^step ' "$TMP/ten.log" | tail -n 20
echo "exit status $status"
[ "$status" -ne 0 ] || fail "ten consecutive non-finite steps did not fail the run"
[ "$status" -ne 124 ] || fail "the run hung until timeout stopped it"
grep -q "error: aborting: 10 consecutive steps had a non-finite loss or gradient (last at step 11)" "$TMP/ten.log" \
    || fail "no clear error naming 10 consecutive non-finite steps"
for rank in 0 1; do
    grep -q "^\[rank $rank\] warning: step 10 skipped: non-finite loss or gradient on 2 rank(s) (9 in a row)" "$TMP/ten.log" \
        || fail "rank $rank did not count 9 skips in a row at step 10"
done
[ "$(jq -s -c 'map(.step)' "$TMP/ten/metrics.jsonl")" = "[1]" ] || fail "steps after the abort were logged"
[ ! -e "$TMP/ten/controlnet.safetensors" ] || fail "an aborted run saved weights"
echo "PASS $(basename "$0")"
