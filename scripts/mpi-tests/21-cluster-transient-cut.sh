#!/usr/bin/env bash
# A network outage of 20 s between the two nodes of the namespace cluster in the middle of training: both ranks
# stall in an all-reduce; rank 0 must warn (naming the collective, the step and rank 1 on node2) and say when the
# collective completed, metrics.jsonl must record the stall, and after TCP resumes the run must finish
# bit-identical to an uninterrupted run.
source "$(dirname "$0")/lib.sh"
source "$(dirname "$0")/cluster-lib.sh"
ensure_controlnet
if [ "$(id -u)" != 0 ]; then
    echo "SKIP $(basename "$0"): network namespaces need root"
    exit 0
fi
training_env
# mpirun declares a node lost after 25-30 s without an answer on its control connection: longer than this outage.
export OOB_KEEPALIVE="5 5 5"
TMP=$(mktemp -d)
trap 'cluster_stop; rm -rf "$TMP"' EXIT

train_tiny_base "$TMP/base"
TRAIN=(train-controlnet --config tiny --resize --data-dir "$REPO_ROOT/data" --base "$TMP/base/unet.safetensors"
    --batch-size 8 --lr 1e-3 --log-every 10 --checkpoint-every 100 --max-steps 300)
run_logged "$TMP/ref.log" "the uninterrupted run" "$REPO_ROOT/cluster/local-cluster.sh" -- "${TRAIN[@]}" --out "$TMP/ref"

cluster_start "$TMP/run.log" "${TRAIN[@]}" --out "$TMP/run" --stall-warning 5 --collective-timeout 60
wait_for_step "$TMP/run" 50 "$TMP/run.log"
cut=$(date +%s.%N)
link down
sleep 20
link up
START=$(now_seconds)
wait_for_end 120
grep -v '^  \|^step ' "$TMP/run.log"
echo "exit status $STATUS, $ELAPSED s after the link came back"
[ "$STATUS" = 0 ] || fail "the run did not survive a 20 s outage (exit status $STATUS)"

stalled='at step [0-9]*; silent: rank 1 on node2 (no heartbeat for [0-9.]* s: stopped or hung, or node2 unreachable)'
warnings=$(grep -c "^\[rank 0\] warning: stalled for [0-9.]* s in all-reduce .*$stalled" "$TMP/run.log" || true)
[ "$warnings" -ge 3 ] || fail "rank 0 warned $warnings times during a 20 s stall with --stall-warning 5 (expected 3 or 4)"
# Rank 1 names rank 0 as silent. (It once said it had never heard rank 0: rank 0 answered a rank only from its next
# tick on, so a cut within a tick of the start beat the first answer. Rank 0 now answers at once.)
grep -qE "^\[rank 1\] warning: stalled for [0-9.]* s in all-reduce .* at step [0-9]*; silent: rank 0 on node1 \(no heartbeat for" "$TMP/run.log" \
    || fail "rank 1 (node2) did not warn about its own stall"
recovered=$(sed -n 's/^\[rank 0\] warning: all-reduce .* at step [0-9]* completed after \([0-9.]*\) s stalled; the run continues$/\1/p' "$TMP/run.log")
[ -n "$recovered" ] || fail "rank 0 did not say that the stalled collective completed"
stall_records "$TMP/run" | tee "$TMP/stalls.jsonl"
[ "$(jq -r .event "$TMP/stalls.jsonl" | tr '\n' ' ')" = "started recovered " ] \
    || fail "metrics.jsonl should hold one stall, started then recovered"
seconds=$(jq -r 'select(.event == "recovered") | .seconds' "$TMP/stalls.jsonl")
(( $(echo "$seconds >= 15 && $seconds < 60" | bc) )) || fail "the recorded stall lasted $seconds s, expected about 20"
jq -e 'select(.event == "recovered") | .operation | startswith("all-reduce")' "$TMP/stalls.jsonl" >/dev/null \
    || fail "the recorded stall does not name the all-reduce"

"$CONTROLNET" diff-weights "$TMP/ref/controlnet.safetensors" "$TMP/run/controlnet.safetensors" | tee "$TMP/diff.json"
[ "$(jq .bit_identical "$TMP/diff.json")" = true ] || fail "the run that survived the outage is not bit-identical to the uninterrupted one"
for shard in shard-00000-of-00002.safetensors shard-00001-of-00002.safetensors; do
    cmp "$TMP/ref/checkpoints/step-00000300/$shard" "$TMP/run/checkpoints/step-00000300/$shard" \
        || fail "the step-300 $shard differs from the uninterrupted run's"
done
timeline "$TMP/run" "$cut" "after the cut"
echo "outage 20 s: $warnings warnings on rank 0, stall recorded as $seconds s, recovered ($recovered s on rank 0), bit-identical"
echo "PASS $(basename "$0")"
