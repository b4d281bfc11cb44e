#!/usr/bin/env bash
# A rank that stops without dying (SIGSTOP to rank 1 on node2 of the namespace cluster, as a hung process or a
# frozen VM would): rank 0 must warn about the stalled collective naming rank 1 as silent, then end the job within
# --collective-timeout + 10 s with an error naming the operation and the step (exit 75), and record the stall.
source "$(dirname "$0")/lib.sh"
source "$(dirname "$0")/cluster-lib.sh"
ensure_controlnet
if [ "$(id -u)" != 0 ]; then
    echo "SKIP $(basename "$0"): network namespaces need root"
    exit 0
fi
training_env
TIMEOUT=15
TMP=$(mktemp -d)
trap 'cluster_stop; rm -rf "$TMP"' EXIT

train_tiny_base "$TMP/base"
cluster_start "$TMP/run.log" train-controlnet --config tiny --resize --data-dir "$REPO_ROOT/data" \
    --base "$TMP/base/unet.safetensors" --batch-size 8 --lr 1e-3 --log-every 10 --checkpoint-every 20 \
    --max-steps 100000 --out "$TMP/run" --stall-warning 4 --collective-timeout $TIMEOUT
wait_for_step "$TMP/run" 50 "$TMP/run.log"
victim=$(rank_pid 1 "$TMP/run") || fail "could not find rank 1's process"
stopped=$(date +%s.%N)
kill -STOP "$victim"
START=$(now_seconds)
echo "SIGSTOP to rank 1 (pid $victim)"
wait_for_end $((TIMEOUT + 30))
grep -v '^  \|^step ' "$TMP/run.log"
echo "exit status $STATUS, $ELAPSED s after the SIGSTOP (--collective-timeout $TIMEOUT)"
[ "$STATUS" != 124 ] || fail "the job was still running $((TIMEOUT + 30)) s after rank 1 stopped"
[ "$STATUS" = 75 ] || fail "exit status $STATUS, expected 75 (the watchdog's)"
(( $(echo "$ELAPSED < $TIMEOUT + 10" | bc) )) || fail "the job took $ELAPSED s to end (limit $TIMEOUT + 10 s)"
grep -q "^\[rank 0\] warning: stalled for [0-9.]* s in .* at step [0-9]*; silent: rank 1 on node2 (no heartbeat" "$TMP/run.log" \
    || fail "rank 0 did not warn naming the silent rank 1 on node2"
grep -q "^\[rank 0\] error: .* at step [0-9]* has not completed after [0-9.]* s (timeout $TIMEOUT s); silent: rank 1 on node2 (no heartbeat for [0-9.]* s: stopped or hung, or node2 unreachable); ending this rank (exit 75)" "$TMP/run.log" \
    || fail "no timeout error from rank 0 naming the operation, the step and rank 1"
stall_records "$TMP/run" | tee "$TMP/stalls.jsonl"
# (jq -e succeeds on empty input, so an empty file must fail first.)
[ -s "$TMP/stalls.jsonl" ] || fail "metrics.jsonl holds no stall record"
jq -e 'select(.event == "timed_out") | .silent == [1] and .seconds >= '$TIMEOUT "$TMP/stalls.jsonl" >/dev/null \
    || fail "metrics.jsonl has no timed_out stall record naming the silent rank 1"
timeline "$TMP/run" "$stopped" "after the SIGSTOP"
echo "PASS $(basename "$0")"
