#!/usr/bin/env bash
# The link between the two nodes of the namespace cluster cut for good in the middle of training: the job must end
# by itself within --collective-timeout + 10 s with a non-zero status, after rank 0 has named the stalled
# collective, the step and the silent rank 1 on node2; metrics.jsonl must hold the stall; and --resume latest must
# continue from the last committed checkpoint to the same weights as a run that was never cut.
#
# How the job ends: mpirun itself notices that node2 stopped answering on its control connection (its TCP
# keepalive, set here to 25-30 s) and ends the job; were the watchdog to end a rank first, mpirun could not tell
# node2's daemon and would wait for TCP to give up (cluster/README.md, "Stalls and timeouts").
source "$(dirname "$0")/lib.sh"
source "$(dirname "$0")/cluster-lib.sh"
ensure_controlnet
if [ "$(id -u)" != 0 ]; then
    echo "SKIP $(basename "$0"): network namespaces need root"
    exit 0
fi
training_env
export OOB_KEEPALIVE="5 5 5"
TIMEOUT=45
TMP=$(mktemp -d)
trap 'cluster_stop; rm -rf "$TMP"' EXIT

train_tiny_base "$TMP/base"
TRAIN=(train-controlnet --config tiny --resize --data-dir "$REPO_ROOT/data" --base "$TMP/base/unet.safetensors"
    --batch-size 8 --lr 1e-3 --log-every 10 --checkpoint-every 20 --max-steps 300)
run_logged "$TMP/ref.log" "the uninterrupted run" "$REPO_ROOT/cluster/local-cluster.sh" -- "${TRAIN[@]}" --out "$TMP/ref"

cluster_start "$TMP/run.log" "${TRAIN[@]}" --out "$TMP/run" --stall-warning 5 --collective-timeout $TIMEOUT
wait_for_step "$TMP/run" 50 "$TMP/run.log"
cut=$(date +%s.%N)
link down
START=$(now_seconds)
wait_for_end $((TIMEOUT + 30))
grep -v '^  \|^step ' "$TMP/run.log"
echo "exit status $STATUS, $ELAPSED s after the cut (--collective-timeout $TIMEOUT)"
[ "$STATUS" != 124 ] || fail "the job was still running $((TIMEOUT + 30)) s after the cut"
[ "$STATUS" != 0 ] || fail "the job exited 0 although node2 was cut off"
(( $(echo "$ELAPSED < $TIMEOUT + 10" | bc) )) || fail "the job took $ELAPSED s to end (limit $TIMEOUT + 10 s)"
grep -q "^\[rank 0\] warning: stalled for [0-9.]* s in .* at step [0-9]*; silent: rank 1 on node2 (no heartbeat for [0-9.]* s: stopped or hung, or node2 unreachable)" "$TMP/run.log" \
    || fail "rank 0 did not name the stalled all-reduce, its step and the silent rank 1 on node2"
grep -q "ORTE has lost communication with a remote daemon\|has not completed after" "$TMP/run.log" \
    || fail "neither mpirun's lost-node message nor the watchdog's timeout error says why the job ended"
grep -q "^done: " "$TMP/run.log" && fail "a 'done' line although the job was cut off"
stall_records "$TMP/run" | tee "$TMP/stalls.jsonl"
# (jq -e succeeds on empty input, so an empty file must fail first.)
[ -s "$TMP/stalls.jsonl" ] || fail "metrics.jsonl holds no stall record"
jq -e 'select(.event == "started") | .silent == [1]' "$TMP/stalls.jsonl" \
    >/dev/null || fail "metrics.jsonl has no record of the stall naming the silent rank 1"

timeline "$TMP/run" "$cut" "after the cut"
last=$(basename "$(ls -d "$TMP/run/checkpoints"/step-*/manifest.json | sort | tail -n 1 | xargs dirname)")
echo "last committed checkpoint: $last; resuming across a fresh cluster"
run_logged "$TMP/resume.log" "the resumed run" "$REPO_ROOT/cluster/local-cluster.sh" -- "${TRAIN[@]}" --out "$TMP/run" \
    --resume latest
grep "^RESUMING from\|^done:" "$TMP/resume.log"
grep -q "^RESUMING from $TMP/run/checkpoints/$last at step " "$TMP/resume.log" \
    || fail "the resumed run did not continue from the last committed checkpoint $last"
"$CONTROLNET" diff-weights "$TMP/ref/controlnet.safetensors" "$TMP/run/controlnet.safetensors" | tee "$TMP/diff.json"
[ "$(jq .bit_identical "$TMP/diff.json")" = true ] \
    || fail "cut, then resumed: the weights are not bit-identical to the uninterrupted run's"
echo "cut at step $(jq -r 'select(.event == "started") | .step' "$TMP/stalls.jsonl"), job ended after $ELAPSED s, resumed from $last, bit-identical"
echo "PASS $(basename "$0")"
